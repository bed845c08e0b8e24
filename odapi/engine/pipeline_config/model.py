"""The model block: which Model Garden experiment and backbone, its levels and input size.

`model { ssd | faster_rcnn | center_net { ... } }` becomes an experiment with the closest
backbone (`backbones`): SSD, EfficientDet and CenterNet become RetinaNet (`retinanet` maps
their heads), Faster R-CNN stays Faster R-CNN (`faster_rcnn`). What is common to all of them
is here: the class count, the pyramid levels, and an input size Model Garden can take.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from odapi.engine.pipeline_config.backbones import (
    center_net_backbone,
    faster_rcnn_backbone,
    ssd_backbone,
)
from odapi.engine.pipeline_config.draft import Draft
from odapi.engine.pipeline_config.faster_rcnn import translate_faster_rcnn
from odapi.engine.pipeline_config.fates import APPLIED, APPROXIMATED, IGNORED
from odapi.engine.pipeline_config.retinanet import translate_retinanet
from odapi.errors import OdapiError

if TYPE_CHECKING:
    from odapi.protos import model_pb2

    AnyModel = model_pb2.Ssd | model_pb2.FasterRcnn | model_pb2.CenterNet
    AnyExtractor = (model_pb2.SsdFeatureExtractor | model_pb2.FasterRcnnFeatureExtractor
                    | model_pb2.CenterNetFeatureExtractor)

CHOOSE_BACKBONE = {"ssd": ssd_backbone, "faster_rcnn": faster_rcnn_backbone,
                   "center_net": center_net_backbone}


@dataclass(frozen=True)
class ModelOutline:
    """What the rest of the translation needs to know of the model block."""

    summary: str  # e.g. "RetinaNet (retinanet_mobile_coco), MobileNetV2 with FPN backbone, ..."
    checkpoint_advice: str  # what to fine-tune from instead of an OD API model-zoo checkpoint
    num_classes: int | None  # as the file says (without background)
    num_classes_where: str


def translate_model(draft: Draft, model: model_pb2.DetectionModel,
                    kind: str | None) -> ModelOutline:
    """`kind` is the meta-architecture the file chose: ssd, faster_rcnn or center_net."""
    if kind is None:
        raise OdapiError("the model block names no architecture; it needs one of "
                         "`ssd { ... }`, `faster_rcnn { ... }` or `center_net { ... }`, as in "
                         "the OD API's sample configs", where=draft.where("model"))
    config = getattr(model, kind)
    prefix = f"model.{kind}"
    extractor_path = f"{prefix}.feature_extractor.type"
    choice = CHOOSE_BACKBONE[kind](config.feature_extractor, draft.where(extractor_path))
    draft.set("experiment", choice.experiment)
    draft.set("task.model.backbone", choice.backbone)
    if choice.decoder:
        draft.set("task.model.decoder", choice.decoder)
    draft.mark(extractor_path, choice.fate, choice.note, warn=choice.fate != APPLIED)

    num_classes, num_classes_where = None, ""
    if config.HasField("num_classes"):
        num_classes = config.num_classes
        num_classes_where = draft.where(f"{prefix}.num_classes")
        draft.mark(f"{prefix}.num_classes", APPLIED,
                   "checked against the label map; Model Garden's num_classes is the label "
                   "map's largest id + 1 (background)")
    if kind == "faster_rcnn":
        min_level, max_level = 2, 6
        translate_faster_rcnn(draft, config, prefix)
    else:
        min_level, max_level = _levels(draft, config, prefix)
        translate_retinanet(draft, config, prefix, kind)
    size = _input_size(draft, config, prefix, 2 ** max_level, kind)
    arch = "Faster R-CNN" if kind == "faster_rcnn" else "RetinaNet"
    summary = (f"{arch} ({choice.experiment}), {choice.name} backbone, levels "
               f"{min_level}-{max_level}" + (f", {size[0]}x{size[1]} input" if size else ""))
    _pyramid(draft, config.feature_extractor, f"{prefix}.feature_extractor")
    mobilenet = choice.backbone["type"] == "mobilenet"
    draft.mark(f"{prefix}.feature_extractor.depth_multiplier", APPLIED if mobilenet else IGNORED,
               "backbone.mobilenet.filter_size_scale" if mobilenet else
               "only MobileNet backbones have a width multiplier in Model Garden")
    return ModelOutline(summary, choice.checkpoint_advice, num_classes, num_classes_where)


def _pyramid(draft: Draft, extractor: AnyExtractor, path: str) -> None:
    """The feature extractor's FPN or BiFPN settings, as Model Garden's FPN decoder."""
    uses_fpn = hasattr(extractor, "fpn") and extractor.HasField("fpn")
    draft.mark(f"{path}.fpn.additional_layer_depth", APPLIED,
               "task.model.decoder.fpn.num_filters")
    draft.mark(f"{path}.use_depthwise", APPLIED if uses_fpn else APPROXIMATED,
               "task.model.decoder.fpn.use_separable_conv" if uses_fpn else
               "separable convolutions in the FPN that replaces SSD's extra layers")
    draft.mark(f"{path}.bifpn.num_filters", APPROXIMATED,
               "task.model.decoder.fpn.num_filters, of the FPN in place of the BiFPN")
    draft.mark(f"{path}.bifpn.num_iterations", IGNORED, "an FPN makes one top-down pass; "
               "BiFPN's repeated passes have no Model Garden counterpart")


def _levels(draft: Draft, config: AnyModel, prefix: str) -> tuple[int, int]:
    """Pyramid levels from the anchors or the FPN; RetinaNet's 3-7 otherwise."""
    min_level, max_level = 3, 7
    sources = [(config.anchor_generator.multiscale_anchor_generator,
                f"{prefix}.anchor_generator.multiscale_anchor_generator")] \
        if hasattr(config, "anchor_generator") else []
    if hasattr(config.feature_extractor, "fpn"):
        sources += [(config.feature_extractor.fpn, f"{prefix}.feature_extractor.fpn"),
                    (config.feature_extractor.bifpn, f"{prefix}.feature_extractor.bifpn")]
    for source, path in sources:
        if source.HasField("min_level") or source.HasField("max_level"):
            min_level, max_level = source.min_level, source.max_level
            for name in ("min_level", "max_level"):
                draft.mark(f"{path}.{name}", APPLIED, f"task.model.{name}")
    draft.set("task.model.min_level", min_level)
    draft.set("task.model.max_level", max_level)
    return min_level, max_level


def _input_size(draft: Draft, config: AnyModel, prefix: str, multiple: int,
                kind: str) -> list[int] | None:
    """Model Garden needs sides divisible by 2**max_level: rounded up, and said so."""
    resizer = config.image_resizer
    path = f"{prefix}.image_resizer"
    which = resizer.WhichOneof("image_resizer_oneof")
    if which is None:
        return None
    if which == "fixed_shape_resizer":
        asked = [resizer.fixed_shape_resizer.height, resizer.fixed_shape_resizer.width]
        names = ["height", "width"]
    else:
        keep = resizer.keep_aspect_ratio_resizer
        asked = [keep.max_dimension] * 2
        names = ["max_dimension"]
    size = [math.ceil(side / multiple) * multiple for side in asked]
    draft.set("task.model.input_size", [*size, 3])
    for name in names:
        if size == asked:
            draft.mark(f"{path}.{which}.{name}", APPLIED, f"task.model.input_size {[*size, 3]}")
        else:
            draft.mark(f"{path}.{which}.{name}", APPROXIMATED,
                       f"rounded up to {size[0]}x{size[1]}: Model Garden needs sides "
                       f"divisible by {multiple} (2^max_level)", warn=True)
    if which == "fixed_shape_resizer":
        if kind == "faster_rcnn":
            draft.mark(path, APPROXIMATED, "Model Garden's Faster R-CNN keeps the aspect "
                       "ratio and pads where the OD API stretches")
        else:
            draft.set("task.train_data.parser.keep_aspect_ratio", False)
            draft.set("task.validation_data.parser.keep_aspect_ratio", False)
    else:
        keep = resizer.keep_aspect_ratio_resizer
        draft.mark(f"{path}.{which}.pad_to_max_dimension",
                   APPLIED if keep.pad_to_max_dimension else APPROXIMATED,
                   "Model Garden pads to the square input size" if keep.pad_to_max_dimension
                   else "Model Garden pads to the square input size regardless")
        same = keep.min_dimension == keep.max_dimension
        draft.mark(f"{path}.{which}.min_dimension", APPLIED if same else APPROXIMATED,
                   "the longer side fits max_dimension, as with min = max" if same else
                   "Model Garden fits the longer side to max_dimension and does not scale "
                   "the shorter side up to min_dimension")
    return size
