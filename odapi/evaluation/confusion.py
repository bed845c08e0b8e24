"""The confusion matrix of a detector: which classes it takes for which, what it misses, and
what it finds where nothing is.

Rows are the true class, columns the detected class; the last row and column are background:
a missed object counts in its class's row under background, a detection of nothing in the
background row under its class. Detections and objects are paired whatever their classes, the
highest IoU first (at least 0.5), so a detection of the wrong class lands off the diagonal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from odapi.evaluation.curves import ScoreThresholds

MATCH_IOU = 0.5
BACKGROUND = "background"


@dataclass
class ImageVerdict:
    """One image's objects and kept detections, and which detection was paired with which
    object: what the matrix counts, and what the worst images show."""

    truth: list[dict]  # COCO annotations (pixel bbox), crowd regions left out
    found: list[dict]  # COCO detections at or above the thresholds
    pairs: dict[int, int]  # detection index -> object index

    @property
    def missed(self) -> list[int]:
        return [t for t in range(len(self.truth)) if t not in self.pairs.values()]

    @property
    def false(self) -> list[int]:
        return [d for d in range(len(self.found)) if d not in self.pairs]

    @property
    def confused(self) -> list[int]:
        """Detections paired with an object of another class."""
        return [d for d, t in self.pairs.items()
                if self.found[d]["category_id"] != self.truth[t]["category_id"]]

    @property
    def errors(self) -> int:
        return len(self.missed) + len(self.false) + len(self.confused)


def judge_image(truth: list[dict], found: list[dict], iou: float = MATCH_IOU) -> ImageVerdict:
    """Pairs detections and objects whatever their classes, the highest IoU first."""
    pairs: dict[int, int] = {}
    if truth and found:
        overlaps = np.asarray(mask_utils.iou([d["bbox"] for d in found],
                                             [t["bbox"] for t in truth], [0] * len(truth)))
        paired_truth = set()
        for d, t in zip(*np.unravel_index(np.argsort(-overlaps, axis=None), overlaps.shape),
                        strict=True):
            if overlaps[d, t] < iou:
                break
            if d not in pairs and t not in paired_truth:
                pairs[int(d)] = int(t)
                paired_truth.add(t)
    return ImageVerdict(truth, found, pairs)


@dataclass
class ConfusionMatrix:
    class_ids: list[int]
    names: list[str]  # the classes', then background
    counts: np.ndarray  # [classes + 1, classes + 1] ints: true class by detected class
    iou: float
    thresholds: ScoreThresholds
    verdicts: dict[int, ImageVerdict]  # by image id

    def worst(self, count: int) -> list[int]:
        """The ids of the images with the most errors (misses, false and confused
        detections), most first; images without errors are left out."""
        ranked = sorted((-v.errors, image_id) for image_id, v in self.verdicts.items()
                        if v.errors)
        return [image_id for _, image_id in ranked[:count]]

    def normalized(self) -> np.ndarray:
        """Each row divided by its total: where the objects of a class end up."""
        totals = self.counts.sum(axis=1, keepdims=True)
        return np.divide(self.counts, totals, out=np.zeros(self.counts.shape),
                         where=totals > 0)

    def as_dict(self) -> dict:
        names = dict(zip(self.class_ids, self.names, strict=False))
        return {"rows": "true class", "columns": "detected class", "labels": self.names,
                "iou": self.iou, "score_threshold": self.thresholds.default,
                "class_score_thresholds": {names[i]: t for i, t in
                                           sorted(self.thresholds.per_class.items())},
                "counts": self.counts.tolist(),
                "normalized": np.round(self.normalized(), 4).tolist()}


def confusion_matrix(coco_gt, coco_dt, image_ids: list, names: dict[int, str],
                     thresholds: ScoreThresholds, iou: float = MATCH_IOU) -> ConfusionMatrix:
    """Count pairs over `image_ids` of COCO ground truth and detections (`coco_dt` None: no
    detections); crowd regions pair with nothing and are left out."""
    truth = {i: [a for a in coco_gt.imgToAnns.get(i, []) if not a.get("iscrowd")]
             for i in image_ids}
    found = {i: [d for d in (coco_dt.imgToAnns.get(i, []) if coco_dt is not None else [])
                 if thresholds.keep([d["category_id"]], [d["score"]])[0]] for i in image_ids}
    class_ids = sorted(set(names) | {a["category_id"] for image in (*truth.values(),
                                                                    *found.values())
                                     for a in image})  # and classes the label map lacks
    index = {class_id: i for i, class_id in enumerate(class_ids)}
    counts = np.zeros((len(class_ids) + 1,) * 2, dtype=np.int64)
    verdicts = {i: judge_image(truth[i], found[i], iou) for i in image_ids}
    for verdict in verdicts.values():
        _count(verdict, index, counts)
    labels = [names.get(i, str(i)) for i in class_ids] + [BACKGROUND]
    return ConfusionMatrix(class_ids, labels, counts, iou, thresholds, verdicts)


def _count(verdict: ImageVerdict, index: dict[int, int], counts: np.ndarray) -> None:
    """Pairs in their cells; the last row and column are background."""
    for d, t in verdict.pairs.items():
        counts[index[verdict.truth[t]["category_id"]], index[verdict.found[d]["category_id"]]] \
            += 1
    for t in verdict.missed:
        counts[index[verdict.truth[t]["category_id"]], -1] += 1
    for d in verdict.false:
        counts[-1, index[verdict.found[d]["category_id"]]] += 1
