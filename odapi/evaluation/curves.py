"""Precision-recall and F1 curves per class, from pycocotools' own arrays.

COCOeval's `precision` (shape [IoU thresholds, recall points, classes, areas, max detections])
is what COCO AP averages, so the PR curves here integrate to exactly the AP that eval prints.
Its `scores` array holds, at each recall point, the score of the detection that reaches it:
with both, precision, recall and F1 follow for any score threshold, and the threshold with the
best F1 is what `predict --threshold best` uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

THRESHOLDS = np.round(np.linspace(0.0, 1.0, 101), 2)  # score thresholds of the F1 curves
DEFAULT_THRESHOLD = 0.5  # when no class has a detection to learn a better one from


@dataclass(frozen=True)
class ScoreThresholds:
    """The score a detection needs to count, per class id, and for every other class."""

    default: float
    per_class: dict[int, float] = field(default_factory=dict)

    def keep(self, classes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        needed = [self.per_class.get(int(c), self.default) for c in np.asarray(classes)]
        return np.asarray(scores) >= np.asarray(needed, dtype=float).reshape(-1)

    def describe(self, names: dict[int, str]) -> str:
        text = f"{self.default:.2f}"
        if self.per_class:
            text += " (" + ", ".join(f"{names.get(i, i)} {t:.2f}"
                                     for i, t in sorted(self.per_class.items())) + ")"
        return text


@dataclass
class ClassCurves:
    name: str
    objects: int  # ground-truth boxes: true positives + misses at every threshold
    precision_50: np.ndarray  # at each recall point, IoU 0.5
    precision_50_95: np.ndarray  # at each recall point, averaged over IoU 0.5:0.95
    precision: np.ndarray  # at each score threshold, IoU 0.5
    recall: np.ndarray  # at each score threshold, IoU 0.5
    f1: np.ndarray  # at each score threshold, IoU 0.5
    best_threshold: float | None  # None: no threshold finds any of the class
    best_f1: float


@dataclass
class Curves:
    recall_points: np.ndarray
    classes: dict[int, ClassCurves]  # classes with ground truth, by id

    def mean(self, attribute: str) -> np.ndarray:
        """The curve averaged over classes, as COCO averages AP."""
        values = [getattr(c, attribute) for c in self.classes.values()]
        size = len(self.recall_points if attribute.startswith("precision_") else THRESHOLDS)
        return np.mean(values, axis=0) if values else np.zeros(size)

    def best_overall(self) -> tuple[float, float]:
        """(threshold, F1) where the mean F1 over classes is highest."""
        mean_f1 = self.mean("f1")
        if not mean_f1.any():
            return DEFAULT_THRESHOLD, 0.0
        return _plateau_middle(mean_f1), float(mean_f1.max())

    def best_thresholds(self) -> ScoreThresholds:
        return ScoreThresholds(self.best_overall()[0], {
            i: c.best_threshold for i, c in self.classes.items()
            if c.best_threshold is not None})

    def thresholds_summary(self) -> dict:
        """What metrics.json and an export's manifest keep for `predict --threshold best`."""
        threshold, f1 = self.best_overall()
        return {"score": threshold, "F1": round(f1, 4), "per_class": {
            c.name: c.best_threshold for c in self.classes.values()
            if c.best_threshold is not None}}

    def as_dict(self) -> dict:
        threshold, f1 = self.best_overall()
        rounded = lambda a: [round(float(v), 4) for v in a]  # noqa: E731
        return {
            "recall": rounded(self.recall_points), "score_thresholds": rounded(THRESHOLDS),
            "best_threshold": threshold, "best_f1": round(f1, 4),
            "overall": {key: rounded(self.mean(key)) for key in
                        ("precision_50", "precision_50_95", "precision", "recall", "f1")},
            "per_class": {c.name: {
                "objects": c.objects, "best_threshold": c.best_threshold,
                "best_f1": round(c.best_f1, 4),
                **{key: rounded(getattr(c, key)) for key in
                   ("precision_50", "precision_50_95", "precision", "recall", "f1")}}
                for c in self.classes.values()},
        }


def curves_from(coco_eval, names: dict[int, str]) -> Curves:
    """The curves of an evaluated and accumulated COCOeval (all areas, most detections)."""
    precision = coco_eval.eval["precision"][:, :, :, 0, -1]
    scores = coco_eval.eval["scores"][:, :, :, 0, -1]
    recall_points = np.asarray(coco_eval.params.recThrs)
    objects = _objects_per_class(coco_eval)
    classes = {}
    for index, category_id in enumerate(coco_eval.params.catIds):
        if not (precision[:, :, index] > -1).any():
            continue  # no ground truth: nothing to recall
        at_50 = precision[0, :, index]
        p, r, f1 = _at_thresholds(at_50, scores[0, :, index], recall_points)
        found = f1.any()
        classes[int(category_id)] = ClassCurves(
            names.get(int(category_id), str(category_id)), objects.get(int(category_id), 0),
            at_50, precision[:, :, index].mean(axis=0), p, r, f1,
            _plateau_middle(f1) if found else None, float(f1.max()))
    return Curves(recall_points, classes)


def _at_thresholds(precision: np.ndarray, scores: np.ndarray, recall_points: np.ndarray):
    """Precision, recall and F1 for each of THRESHOLDS: detections scoring at least the
    threshold reach the last recall point whose detection scores that much."""
    reached = (scores[None, :] >= THRESHOLDS[:, None]) & (precision[None, :] > 0)
    any_reached = reached.any(axis=1)
    last = len(scores) - 1 - np.argmax(reached[:, ::-1], axis=1)
    p = np.where(any_reached, precision[last], 0.0)
    r = np.where(any_reached, recall_points[last], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return p, r, f1


def _plateau_middle(values: np.ndarray) -> float:
    """The threshold in the middle of the first run of thresholds with the highest value: the
    F1 of a few detections is flat between their scores, and its edge is one score away."""
    best = np.flatnonzero(np.isclose(values, values.max()))
    end = best[0]
    while end + 1 < len(values) and end + 1 in best:
        end += 1
    return round(float(THRESHOLDS[(best[0] + end) // 2]), 2)


def _objects_per_class(coco_eval) -> dict[int, int]:
    """Ground-truth boxes COCOeval counted (not crowd, not ignored) per category id."""
    counts: dict[int, int] = {}
    area_all = coco_eval.params.areaRng[0]
    for image in coco_eval.evalImgs:
        if image is not None and image["aRng"] == area_all:
            counts[image["category_id"]] = counts.get(image["category_id"], 0) + int(
                np.sum(~np.asarray(image["gtIgnore"], dtype=bool)))
    return counts


def pr_curve_summaries(curves: Curves) -> list[bytes]:
    """Serialized summaries for TensorBoard's PR-curve plugin, one per class, over the score
    thresholds: the plugin's counts follow from precision, recall and the class's objects."""
    from tensorboard.plugins.pr_curve import summary

    result = []
    for c in curves.classes.values():
        true_positives = c.recall * c.objects
        with np.errstate(invalid="ignore", divide="ignore"):
            false_positives = np.where(c.precision > 0,
                                       true_positives / c.precision - true_positives, 0.0)
        result.append(summary.raw_data_pb(
            f"pr_curve_iou50/{c.name}", true_positive_counts=true_positives,
            false_positive_counts=np.round(false_positives, 3),
            true_negative_counts=np.zeros_like(true_positives),
            false_negative_counts=c.objects - true_positives, precision=c.precision,
            recall=c.recall, num_thresholds=len(THRESHOLDS)).SerializeToString())
    return result
