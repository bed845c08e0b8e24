"""COCO box metrics (AP, AP50, AP75, APs/m/l, AR@1/10/100) and per-class AP.

Model Garden's COCOEvaluator gathers ground truth and detections from its input pipeline's
batches; its per-class numbers need a patched pycocotools (`category_stats`). odapi keeps the
gathering and computes per-class AP itself from stock pycocotools' precision array.
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
from official.vision.evaluation import coco_evaluator, coco_utils
from pycocotools import cocoeval

METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
                "ARmax1", "ARmax10", "ARmax100", "ARs", "ARm", "ARl")


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
    """Model Garden's evaluator without an annotation file, plus per-class AP."""

    def __init__(self, max_detections: int = 100):
        super().__init__(annotation_file=None, include_mask=False,
                         max_num_eval_detections=max_detections)
        self.per_class: dict[int, dict[str, float]] = {}

    def evaluate(self) -> dict[str, float]:
        gt_dataset = coco_utils.convert_groundtruths_to_coco_dataset(self._groundtruths)
        coco_gt = coco_utils.COCOWrapper(eval_type="box", gt_dataset=gt_dataset)
        predictions = coco_utils.convert_predictions_to_coco_annotations(self._predictions)
        if not predictions:  # pycocotools cannot load an empty result set
            self.per_class = {}
            return dict.fromkeys(METRIC_NAMES, 0.0)
        coco_dt = coco_gt.loadRes(predictions=predictions)
        image_ids = sorted({p["image_id"] for p in predictions} | set(coco_gt.getImgIds()))
        metrics, self.per_class = coco_metrics(coco_gt, coco_dt, image_ids,
                                               self.max_num_eval_detections)
        return metrics


def coco_metrics(coco_gt, coco_dt, image_ids: list, max_detections: int = 100
                 ) -> tuple[dict[str, float], dict[int, dict[str, float]]]:
    """pycocotools' box metrics of detections `coco_dt` against `coco_gt` on `image_ids`,
    and AP per category id."""
    coco_eval = cocoeval.COCOeval(coco_gt, coco_dt, iouType="bbox")
    coco_eval.params.imgIds = image_ids
    coco_eval.params.maxDets[2] = max_detections
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its table
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    metrics = {name: float(value) for name, value in zip(METRIC_NAMES, coco_eval.stats,
                                                         strict=True)}
    return metrics, per_class_ap(coco_eval)


def coco_bbox(box, height: int, width: int) -> list[float]:
    """A normalized [ymin, xmin, ymax, xmax] box as COCO's pixel [x, y, width, height]."""
    ymin, xmin, ymax, xmax = (float(v) for v in np.asarray(box) * ([height, width] * 2))
    return [xmin, ymin, xmax - xmin, ymax - ymin]


def evaluate_detections(images: list[dict], annotations: list[dict], results: list[dict],
                        category_ids: list[int]) -> tuple[dict[str, float],
                                                          dict[int, dict[str, float]]]:
    """COCO metrics of detections in COCO results format against ground truth given as COCO
    `images` and `annotations` (ids, sizes, pixel boxes, area, iscrowd)."""
    from pycocotools.coco import COCO

    coco_gt = COCO()
    coco_gt.dataset = {"images": images, "annotations": annotations,
                       "categories": [{"id": i} for i in category_ids]}
    if not results:
        return dict.fromkeys(METRIC_NAMES, 0.0), {}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it indexes
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
    return coco_metrics(coco_gt, coco_dt, [image["id"] for image in images])


def metrics_table(metrics: dict[str, float], per_class: dict[str, dict[str, float]]) -> str:
    """The COCO metrics, then AP and AP50 per class: what eval, predict and the demo print."""
    from tabulate import tabulate

    overall = tabulate([[name, f"{value:.3f}"] for name, value in metrics.items()],
                       tablefmt="plain")
    classes = tabulate([[name, f"{v['AP']:.3f}", f"{v['AP50']:.3f}"]
                        for name, v in per_class.items()], headers=["class", "AP", "AP50"])
    return f"{overall}\n{classes}"
