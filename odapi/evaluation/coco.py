"""COCO box metrics (AP, AP50, AP75, APs/m/l, AR@1/10/100) and per-class AP.

Model Garden's COCOEvaluator gathers ground truth and detections from its input pipeline's
batches; its per-class numbers need a patched pycocotools (`category_stats`). odapi keeps the
gathering and computes per-class AP itself from stock pycocotools' precision array.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass

import numpy as np
from official.vision.evaluation import coco_evaluator, coco_utils
from pycocotools import cocoeval

from odapi.evaluation.confusion import ConfusionMatrix, confusion_matrix
from odapi.evaluation.curves import Curves, ScoreThresholds, curves_from

METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
                "ARmax1", "ARmax10", "ARmax100", "ARs", "ARm", "ARl")


@dataclass
class COCOResult:
    metrics: dict[str, float]
    per_class: dict[int, dict[str, float]]  # AP and AP50 by category id
    curves: Curves
    confusion: ConfusionMatrix


def per_class_ap(coco_eval: cocoeval.COCOeval) -> dict[int, dict[str, float]]:
    """AP and AP50 per category id, averaged as COCO does (all areas, 100 detections).

    `precision` has shape [IoU thresholds, recall points, categories, areas, max dets]; -1
    marks what cannot be computed (a class without ground truth): those classes are left out.
    """
    precision = coco_eval.eval["precision"]
    result = {}
    for index, category_id in enumerate(coco_eval.params.catIds):
        all_iou = precision[:, :, index, 0, -1]
        at_50 = precision[0, :, index, 0, -1]
        if (all_iou > -1).any():
            result[int(category_id)] = {
                "AP": float(np.mean(all_iou[all_iou > -1])),
                "AP50": float(np.mean(at_50[at_50 > -1])) if (at_50 > -1).any() else math.nan,
            }
    return result


class PerClassCOCOEvaluator(coco_evaluator.COCOEvaluator):
    """Model Garden's evaluator without an annotation file, plus per-class AP, curves and the
    confusion matrix (`coco_result` after `evaluate`)."""

    def __init__(self, names: dict[int, str], max_detections: int = 100):
        super().__init__(annotation_file=None, include_mask=False,
                         max_num_eval_detections=max_detections)
        self.names = names
        self.coco_result: COCOResult | None = None

    def evaluate(self) -> dict[str, float]:
        gt_dataset = coco_utils.convert_groundtruths_to_coco_dataset(self._groundtruths)
        coco_gt = coco_utils.COCOWrapper(eval_type="box", gt_dataset=gt_dataset)
        predictions = coco_utils.convert_predictions_to_coco_annotations(self._predictions)
        coco_dt = coco_gt.loadRes(predictions=predictions) if predictions else None
        image_ids = sorted({p["image_id"] for p in predictions} | set(coco_gt.getImgIds()))
        self.coco_result = coco_metrics(coco_gt, coco_dt, image_ids, self.names,
                                   self.max_num_eval_detections)
        return self.coco_result.metrics


def coco_metrics(coco_gt, coco_dt, image_ids: list, names: dict[int, str],
                 max_detections: int = 100,
                 thresholds: ScoreThresholds | None = None) -> COCOResult:
    """pycocotools' box metrics of detections `coco_dt` (None: there are none) against
    `coco_gt` on `image_ids`, with AP, curves per category id and the confusion matrix at
    `thresholds` (by default, where F1 is best)."""
    coco_eval = cocoeval.COCOeval(coco_gt, coco_dt or _no_detections(coco_gt), iouType="bbox")
    coco_eval.params.imgIds = image_ids
    coco_eval.params.maxDets[2] = max_detections
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its table
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    metrics = {name: max(float(value), 0.0) if coco_dt is None else float(value)
               for name, value in zip(METRIC_NAMES, coco_eval.stats, strict=True)}
    curves = curves_from(coco_eval, names)
    confusion = confusion_matrix(coco_gt, coco_dt, image_ids, names,
                                 thresholds or curves.best_thresholds(),
                                 max_detections=max_detections)
    return COCOResult(metrics, per_class_ap(coco_eval), curves, confusion)


def _no_detections(coco_gt):
    """An empty result set: pycocotools' loadRes refuses one, COCOeval takes it."""
    from pycocotools.coco import COCO

    empty = COCO()
    empty.dataset = {"images": coco_gt.dataset["images"], "annotations": [],
                     "categories": coco_gt.dataset.get("categories", [])}
    with contextlib.redirect_stdout(io.StringIO()):
        empty.createIndex()
    return empty


def evaluate_detections(images: list[dict], annotations: list[dict], results: list[dict],
                        names: dict[int, str],
                        thresholds: ScoreThresholds | None = None) -> COCOResult:
    """COCO metrics of detections in COCO results format against ground truth given as COCO
    `images` and `annotations` (ids, sizes, pixel boxes, area, iscrowd)."""
    from pycocotools.coco import COCO

    coco_gt = COCO()
    coco_gt.dataset = {"images": images, "annotations": annotations,
                       "categories": [{"id": i} for i in names]}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it indexes
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results) if results else None
    return coco_metrics(coco_gt, coco_dt, [image["id"] for image in images], names,
                        thresholds=thresholds)


def metrics_table(metrics: dict[str, float], per_class: dict[str, dict[str, float]]) -> str:
    """The COCO metrics, then AP and AP50 per class: what eval, predict and the demo print."""
    from tabulate import tabulate

    overall = tabulate([[name, f"{value:.3f}"] for name, value in metrics.items()],
                       tablefmt="plain")
    classes = tabulate([[name, f"{v['AP']:.3f}", f"{v['AP50']:.3f}"]
                        for name, v in per_class.items()], headers=["class", "AP", "AP50"])
    return f"{overall}\n{classes}"
