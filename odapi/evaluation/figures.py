"""The evaluation's figures as PNG: the confusion matrix, and precision-recall and F1 curves.

Drawn with matplotlib's object API (no pyplot and its global figure state), so that evaluation
in a training process or a thread leaves nothing behind.
"""

from __future__ import annotations

import io

import numpy as np

from odapi.evaluation.confusion import ConfusionMatrix
from odapi.evaluation.curves import THRESHOLDS, Curves

MOST_CURVES = 12  # classes drawn one by one; beyond, only the mean is legible


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def confusion_png(matrix: ConfusionMatrix) -> bytes:
    """Counts and row-normalised shares side by side."""
    size = len(matrix.names)
    side = min(4 + 0.45 * size, 14)
    figure = _figure(2 * side + 1, side)
    for axes, values, title in zip(
            figure.subplots(1, 2), (matrix.counts, matrix.normalized()),
            ("counts", "share of each true class"), strict=True):
        image = axes.imshow(values, cmap="Blues", vmin=0)
        figure.colorbar(image, ax=axes, shrink=0.8)
        axes.set_xticks(range(size), matrix.names, rotation=90)
        axes.set_yticks(range(size), matrix.names)
        axes.set_xlabel("detected")
        axes.set_ylabel("true")
        axes.set_title(f"{title} (IoU {matrix.iou:g}, score \u2265 "
                       f"{matrix.thresholds.default:.2f})")
        if size <= 30:
            top = values.max() or 1
            for (row, column), value in np.ndenumerate(values):
                if value:
                    axes.text(column, row, f"{value:.2f}" if values.dtype.kind == "f"
                              else str(value), ha="center", va="center", fontsize=8,
                              color="white" if value > top / 2 else "black")
    return _png(figure)


def curves_png(curves: Curves) -> bytes:
    """Precision against recall at IoU 0.5 and 0.5:0.95, and F1 against score threshold."""
    figure = _figure(15, 5)
    pr50, pr_all, f1 = figure.subplots(1, 3)
    shown = list(curves.classes.values())[:MOST_CURVES]
    for axes, key, title in ((pr50, "precision_50", "precision-recall, IoU 0.5"),
                             (pr_all, "precision_50_95", "precision-recall, IoU 0.5:0.95")):
        for c in shown:
            axes.plot(curves.recall_points, getattr(c, key), linewidth=1, alpha=0.6,
                      label=c.name)
        mean = curves.mean(key)
        axes.plot(curves.recall_points, mean, color="black", linewidth=2.5,
                  label=f"all classes (AP {mean.mean():.3f})")
        axes.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1),
                 ylim=(0, 1.02))
        axes.legend(fontsize=7, loc="lower left")
    for c in shown:
        f1.plot(THRESHOLDS, c.f1, linewidth=1, alpha=0.6, label=c.name)
    threshold, best = curves.best_overall()
    f1.plot(THRESHOLDS, curves.mean("f1"), color="black", linewidth=2.5,
            label=f"all classes (best {best:.2f} at {threshold:.2f})")
    f1.axvline(threshold, color="gray", linestyle="--", linewidth=1)
    f1.set(xlabel="score threshold", ylabel="F1 (IoU 0.5)", title="F1 against score threshold",
           xlim=(0, 1), ylim=(0, 1.02))
    f1.legend(fontsize=7, loc="lower left")
    return _png(figure)


def png_to_array(png: bytes) -> np.ndarray:
    """An RGB array of a PNG, as TensorBoard's image summaries take."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))
