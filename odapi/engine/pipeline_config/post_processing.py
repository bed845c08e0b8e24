"""Post-processing (score converter and non-max suppression) as Model Garden's NMS settings.

Shared by both heads: SSD's `post_processing` block becomes RetinaNet's detection generator,
Faster R-CNN's `second_stage_post_processing` becomes Faster R-CNN's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from odapi.engine.pipeline_config.draft import Draft
from odapi.engine.pipeline_config.fates import APPLIED, APPROXIMATED, IGNORED

if TYPE_CHECKING:
    from odapi.protos import model_parts_pb2

GENERATOR = "task.model.detection_generator"


def translate_post_processing(draft: Draft, post: model_parts_pb2.PostProcessing, path: str,
                              converter: str) -> None:
    """`converter` is the score converter Model Garden's model uses: SIGMOID or SOFTMAX."""
    draft.apply_fields(post.batch_non_max_suppression, f"{path}.batch_non_max_suppression", {
        "score_threshold": f"{GENERATOR}.pre_nms_score_threshold",
        "iou_threshold": f"{GENERATOR}.nms_iou_threshold",
        "max_total_detections": f"{GENERATOR}.max_num_detections"})
    draft.mark(f"{path}.batch_non_max_suppression.max_detections_per_class", IGNORED,
               "Model Garden caps detections per image, not per class")
    name = post.ScoreConverter.Name(post.score_converter)
    draft.mark(f"{path}.score_converter", APPLIED if name == converter else APPROXIMATED,
               f"Model Garden's scores are {converter.lower()} probabilities")
