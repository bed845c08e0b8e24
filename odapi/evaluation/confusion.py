"""The confusion matrix of a detector: which classes it takes for which, what it misses, and
what it finds where nothing is.

Rows are the true class, columns the detected class; the last row and column are background:
a missed object counts in its class's row under background, a detection of nothing in the
background row under its class. Detections pair with objects of their own class first, then
what is left pairs whatever the classes, each time the highest IoU (at least 0.5) first: a
detection of the wrong class lands off the diagonal, and a box a model also reports as another
class (NMS runs per class) is never counted wrong when the right class is found too. As in
COCOeval, an image's detections beyond the most it counts are left out, and detections on a
crowd region count as nothing.
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
    on_crowd: frozenset[int] = frozenset()  # unpaired detections on a crowd region

    @property
    def missed(self) -> list[int]:
        return [t for t in range(len(self.truth)) if t not in self.pairs.values()]

    @property
    def false(self) -> list[int]:
        return [d for d in range(len(self.found))
                if d not in self.pairs and d not in self.on_crowd]

    @property
    def confused(self) -> list[int]:
        """Detections paired with an object of another class."""
        return [d for d, t in self.pairs.items()
                if self.found[d]["category_id"] != self.truth[t]["category_id"]]

    @property
    def errors(self) -> int:
        return len(self.missed) + len(self.false) + len(self.confused)


def judge_image(truth: list[dict], found: list[dict], iou: float = MATCH_IOU,
                crowd: list[dict] = ()) -> ImageVerdict:
    """Pairs detections with objects: of the same class first, then whatever the classes."""
    pairs: dict[int, int] = {}
    if truth and found:
        overlaps = np.asarray(mask_utils.iou([d["bbox"] for d in found],
                                             [t["bbox"] for t in truth], [0] * len(truth)))
        same = np.array([[d["category_id"] == t["category_id"] for t in truth] for d in found])
        for allowed in (same, ~same):
            candidates = sorted(((overlaps[d, t], found[d]["score"], -d, -t) for d, t in
                                 zip(*np.nonzero(allowed & (overlaps >= iou)), strict=True)),
                                reverse=True)
            for _, _, d, t in candidates:
                if -d not in pairs and -t not in pairs.values():
                    pairs[int(-d)] = int(-t)
    return ImageVerdict(truth, found, pairs, _on_crowd(found, pairs, crowd, iou))


def _on_crowd(found: list[dict], pairs: dict[int, int], crowd: list[dict],
              iou: float) -> frozenset[int]:
    """Unpaired detections that a crowd region covers (pycocotools' crowd overlap)."""
    unpaired = [d for d in range(len(found)) if d not in pairs]
    if not crowd or not unpaired:
        return frozenset()
    overlaps = np.asarray(mask_utils.iou([found[d]["bbox"] for d in unpaired],
                                         [c["bbox"] for c in crowd], [1] * len(crowd)))
    return frozenset(d for d, row in zip(unpaired, overlaps, strict=True) if row.max() >= iou)


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
                     thresholds: ScoreThresholds, iou: float = MATCH_IOU,
                     max_detections: int = 100) -> ConfusionMatrix:
    """Count pairs over `image_ids` of COCO ground truth and detections (`coco_dt` None: no
    detections), each image's `max_detections` highest-scoring ones."""
    verdicts = {}
    for image_id in image_ids:
        annotations = coco_gt.imgToAnns.get(image_id, [])
        detected = coco_dt.imgToAnns.get(image_id, []) if coco_dt is not None else []
        detected = sorted(detected, key=lambda d: -d["score"])[:max_detections]
        verdicts[image_id] = judge_image(
            [a for a in annotations if not a.get("iscrowd")],
            [d for d in detected if thresholds.keep([d["category_id"]], [d["score"]])[0]],
            iou, crowd=[a for a in annotations if a.get("iscrowd")])
    class_ids = sorted(set(names) | {a["category_id"] for v in verdicts.values()
                                     for a in (*v.truth, *v.found)})  # and unnamed ones
    index = {class_id: i for i, class_id in enumerate(class_ids)}
    counts = np.zeros((len(class_ids) + 1,) * 2, dtype=np.int64)
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
