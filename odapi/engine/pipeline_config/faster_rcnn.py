"""A Faster R-CNN block as Model Garden's Faster R-CNN: anchors, proposals, losses, box head.

Model Garden's Faster R-CNN always has an FPN (levels 2-6) and crops proposals with ROIAlign,
where the OD API's crops ResNet's stride-16 features and max-pools; the fates say where that
shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from odapi.engine.pipeline_config.draft import Draft, clean_float
from odapi.engine.pipeline_config.fates import APPLIED, APPROXIMATED, IGNORED
from odapi.engine.pipeline_config.post_processing import translate_post_processing

if TYPE_CHECKING:
    from odapi.protos import model_pb2

# first-stage settings: each is both the training and the test value of the RPN's proposals
PROPOSAL_KEYS = {
    "first_stage_nms_score_threshold": ("roi_generator.pre_nms_score_threshold",
                                        "roi_generator.test_pre_nms_score_threshold"),
    "first_stage_nms_iou_threshold": ("roi_generator.nms_iou_threshold",
                                      "roi_generator.test_nms_iou_threshold"),
    "first_stage_max_proposals": ("roi_generator.num_proposals",
                                  "roi_generator.test_num_proposals"),
}


def translate_faster_rcnn(draft: Draft, config: model_pb2.FasterRcnn, prefix: str) -> None:
    """Everything of a faster_rcnn block but its backbone and input size."""
    draft.apply_fields(config.feature_extractor, f"{prefix}.feature_extractor",
                       {"batch_norm_trainable": "task.model.backbone.resnet.bn_trainable"})
    grid = config.first_stage_anchor_generator.grid_anchor_generator
    path = f"{prefix}.first_stage_anchor_generator.grid_anchor_generator"
    if grid.aspect_ratios:
        draft.set("task.model.anchor.aspect_ratios", [clean_float(r) for r in grid.aspect_ratios])
        draft.mark(f"{path}.aspect_ratios", APPLIED, "task.model.anchor.aspect_ratios")
    draft.mark(path, APPROXIMATED, "one anchor size per FPN level 2-6 (32 to 512 px) in "
               "place of several scales of 256 px at stride 16 (64 to 512 px)")
    for name, keys in PROPOSAL_KEYS.items():
        if config.HasField(name):
            value = getattr(config, name)
            for key in keys:
                draft.set(f"task.model.{key}",
                          clean_float(value) if isinstance(value, float) else value)
            draft.mark(f"{prefix}.{name}", APPLIED,
                       " and ".join(f"task.model.{key}" for key in keys))
    draft.apply_fields(config, prefix, {
        "first_stage_localization_loss_weight": "task.losses.rpn_box_weight",
        "first_stage_objectness_loss_weight": "task.losses.rpn_score_weight",
        "second_stage_localization_loss_weight": "task.losses.frcnn_box_weight",
        "second_stage_classification_loss_weight": "task.losses.frcnn_class_weight"})
    if config.HasField("initial_crop_size"):
        stride = config.maxpool_stride or 1
        crop = max(1, config.initial_crop_size // stride)
        draft.set("task.model.roi_aligner.crop_size", crop)
        note = (f"task.model.roi_aligner.crop_size {crop}: Model Garden's ROIAlign crops "
                f"{crop}x{crop} directly, where the OD API crops "
                f"{config.initial_crop_size}x{config.initial_crop_size} and max-pools")
        for name in ("initial_crop_size", "maxpool_kernel_size", "maxpool_stride"):
            draft.mark(f"{prefix}.{name}", APPROXIMATED, note)
    box = config.second_stage_box_predictor.mask_rcnn_box_predictor
    path = f"{prefix}.second_stage_box_predictor.mask_rcnn_box_predictor"
    draft.apply_fields(box, path, {
        "share_box_across_classes": "task.model.detection_head.class_agnostic_bbox_pred"})
    draft.mark(f"{path}.use_dropout", APPLIED if not box.use_dropout else IGNORED,
               "Model Garden's box head has no dropout")
    draft.mark(f"{path}.dropout_keep_probability", IGNORED,
               "Model Garden's box head has no dropout")
    translate_post_processing(draft, config.second_stage_post_processing,
                              f"{prefix}.second_stage_post_processing", "SOFTMAX")
