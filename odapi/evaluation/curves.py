"""Precision-recall and F1 curves per class, from pycocotools' own arrays.

COCOeval's `precision` (shape [IoU thresholds, recall points, classes, areas, max detections])
is what COCO AP averages, so the PR curves here integrate to exactly the AP that eval prints.
Precision, recall and F1 at a score threshold count the detections COCOeval matched at IoU 0.5
(its `evalImgs`, which `accumulate` sorts into that array) scoring at least the threshold; the
threshold with the best F1 is what `predict --threshold best` uses.
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
    recall_points = np.asarray(coco_eval.params.recThrs)
    counted = _matches_at_50(coco_eval)
    classes = {}
    for index, category_id in enumerate(coco_eval.params.catIds):
        if not (precision[:, :, index] > -1).any():
            continue  # no ground truth: nothing to recall
        objects, scores, true = counted.get(int(category_id), (0, np.zeros(0), np.zeros(0)))
        p, r, f1 = _at_thresholds(objects, scores, true)
        classes[int(category_id)] = ClassCurves(
            names.get(int(category_id), str(category_id)), objects, precision[0, :, index],
            precision[:, :, index].mean(axis=0), p, r, f1,
            _plateau_middle(f1) if f1.any() else None, float(f1.max()))
    return Curves(recall_points, classes)


def _matches_at_50(coco_eval) -> dict[int, tuple[int, np.ndarray, np.ndarray]]:
    """Per category id: the objects COCOeval counts, and the score of each detection it does
    not ignore with whether it found one at IoU 0.5: what `accumulate` sorts into its
    precision array, kept here for exact counts at any score threshold."""
    gathered: dict[int, list] = {}
    area_all, most = coco_eval.params.areaRng[0], coco_eval.params.maxDets[-1]
    for image in coco_eval.evalImgs:
        if image is None or image["aRng"] != area_all or image["maxDet"] != most:
            continue
        objects, scores, true = gathered.setdefault(image["category_id"], [0, [], []])
        kept = ~np.asarray(image["dtIgnore"], dtype=bool)[0]
        gathered[image["category_id"]] = [
            objects + int(np.sum(~np.asarray(image["gtIgnore"], dtype=bool))),
            scores + list(np.asarray(image["dtScores"])[kept]),
            true + list(np.asarray(image["dtMatches"])[0][kept] > 0)]
    return {k: (v[0], np.asarray(v[1], dtype=float), np.asarray(v[2], dtype=bool))
            for k, v in gathered.items()}


def _at_thresholds(objects: int, scores: np.ndarray, true: np.ndarray):
    """Precision, recall and F1 for each of THRESHOLDS, counting the detections scoring at
    least the threshold (precision 0 where none does)."""
    kept = scores[None, :] >= THRESHOLDS[:, None]
    true_positives = (kept & true[None, :]).sum(axis=1)
    detections = kept.sum(axis=1)
    p = np.divide(true_positives, detections, out=np.zeros(len(THRESHOLDS)),
                  where=detections > 0)
    r = true_positives / objects if objects else np.zeros(len(THRESHOLDS))
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


def pr_curve_summaries(curves: Curves) -> list[bytes]:
    """Serialized summaries for TensorBoard's PR-curve plugin, one per class, over the score
    thresholds: the plugin's counts follow from precision, recall and the class's objects."""
    from tensorboard.plugins.pr_curve import summary

    result = []
    for c in curves.classes.values():
        true_positives = np.round(c.recall * c.objects)
        with np.errstate(invalid="ignore", divide="ignore"):
            false_positives = np.where(c.precision > 0,
                                       np.round(true_positives / c.precision) - true_positives,
                                       0.0)
        result.append(summary.raw_data_pb(
            f"pr_curve_iou50/{c.name}", true_positive_counts=true_positives,
            false_positive_counts=false_positives,
            true_negative_counts=np.zeros_like(true_positives),
            false_negative_counts=c.objects - true_positives, precision=c.precision,
            recall=c.recall, num_thresholds=len(THRESHOLDS)).SerializeToString())
    return result
