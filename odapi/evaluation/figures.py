"""The evaluation's figures as PNG: the confusion matrix, and precision-recall and F1 curves.

Drawn with matplotlib's object API (no pyplot and its global figure state), so that evaluation
in a training process or a thread leaves nothing behind.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from odapi.atomic import atomic_write_bytes, atomic_write_text, replace_folder
from odapi.evaluation.confusion import ConfusionMatrix
from odapi.evaluation.curves import THRESHOLDS, Curves

MOST_CURVES = 12  # classes drawn one by one; beyond, only the mean is legible
CONFUSION = "confusion_matrix"  # confusion_matrix.png and .json
CURVES = "pr_f1_curves"  # pr_f1_curves.png and .json
WORST = "worst"  # worst/: the worst images and worst.json


class WorstImage(NamedTuple):
    filename: str
    errors: str  # in words
    picture: np.ndarray  # RGB, its errors drawn


def render(confusion: ConfusionMatrix, curves: Curves) -> dict[str, tuple[bytes, dict]]:
    """Each figure's name, PNG and numbers."""
    return {CONFUSION: (confusion_png(confusion), confusion.as_dict()),
            CURVES: (curves_png(curves), curves.as_dict())}


def write_figures(folder: Path, rendered: dict[str, tuple[bytes, dict]],
                  step: int | None = None) -> list[str]:
    """NAME.png and NAME.json (with the step evaluated, if any) in `folder`; the PNGs' paths."""
    written = []
    for name, (png, numbers) in rendered.items():
        atomic_write_text(folder / f"{name}.json", json.dumps(
            numbers if step is None else {"step": step, **numbers}))
        atomic_write_bytes(folder / f"{name}.png", png)
        written.append(str(folder / f"{name}.png"))
    return written


def write_worst(folder: Path, step: int, worst: list[WorstImage]) -> str:
    """The worst images as JPEGs, worst first, and worst.json listing them, replacing the
    folder whole."""
    from PIL import Image

    def write(new: Path) -> None:
        listing = []
        for rank, image in enumerate(worst, start=1):
            name = f"{rank:02d}-{Path(image.filename).stem}.jpg"
            Image.fromarray(image.picture).save(new / name, quality=90)
            listing.append({"file": name, "image": image.filename, "errors": image.errors})
        (new / "worst.json").write_text(json.dumps({"step": step, "images": listing}))

    replace_folder(folder, write)
    return str(folder)


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
        score = "each class's best-F1 score" if matrix.thresholds.per_class else \
            f"score \u2265 {matrix.thresholds.default:.2f}"
        axes.set_title(f"{title} (IoU {matrix.iou:g}, {score})")
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
