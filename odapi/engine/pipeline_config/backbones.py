"""Which Model Garden backbone is closest to an OD API feature extractor, and how close.

SSD and EfficientDet extractors go into RetinaNet, Faster R-CNN's into Faster R-CNN, and
CenterNet's into RetinaNet too (official.vision has no CenterNet). Each choice carries its
fate (applied or approximated, and how) and the Model Garden checkpoint to fine-tune from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from odapi.engine.pipeline_config.fates import APPLIED, APPROXIMATED, FateKind
from odapi.errors import OdapiError

if TYPE_CHECKING:
    from odapi.protos import model_pb2

CHECKPOINTS = {  # what to fine-tune each mapped architecture from instead (odapi.zoo's names)
    "retinanet_resnet50": "Fine-tune from retinanet-resnet50fpn-coco (RetinaNet ResNet-50 FPN, "
                          "COCO; --init-checkpoint coco, downloaded on first use) instead",
    "fasterrcnn_resnet50": "Fine-tune from resnet50-imagenet (ResNet-50, ImageNet; "
                           "--init-checkpoint resnet50-imagenet) instead",
    "mobile": "Model Garden publishes no checkpoint for this MobileNet RetinaNet: remove "
              "fine_tune_checkpoint to train it from scratch, or use odapi's retinanet_mobile "
              "preset with --init-checkpoint coco (spinenet49mobile-coco: RetinaNet "
              "SpineNet-Mobile-49, COCO)",
    "other": "Model Garden publishes no checkpoint for this backbone: remove "
             "fine_tune_checkpoint to train it from scratch, or use feature_extractor type "
             "ssd_resnet50_v1_fpn_keras with --init-checkpoint coco (retinanet-resnet50fpn-coco: "
             "RetinaNet ResNet-50 FPN, COCO)",
}


@dataclass(frozen=True)
class Backbone:
    """The Model Garden backbone (and decoder) closest to an OD API feature extractor."""

    experiment: str
    backbone: dict
    decoder: dict | None
    name: str  # for the summary, e.g. "MobileNetV2 with FPN"
    fate: FateKind
    note: str
    checkpoint: str  # key of CHECKPOINTS

    @property
    def checkpoint_advice(self) -> str:
        """What to fine-tune from, where the file names an OD API model-zoo checkpoint."""
        return CHECKPOINTS[self.checkpoint]


def _mobilenet(model_id: str, fpn_filters: int, separable: bool, fate: FateKind, note: str,
               depth_multiplier: float = 1.0) -> Backbone:
    return Backbone(
        "retinanet_mobile_coco",
        {"type": "mobilenet", "mobilenet": {"model_id": model_id,
                                            "filter_size_scale": depth_multiplier}},
        {"type": "fpn", "fpn": {"num_filters": fpn_filters, "use_separable_conv": separable}},
        f"{model_id} with FPN", fate, note, "mobile")


def _resnet(depth: int, fpn_filters: int, fate: FateKind, note: str,
            experiment: str = "retinanet_resnetfpn_coco") -> Backbone:
    return Backbone(
        experiment, {"type": "resnet", "resnet": {"model_id": depth}},
        {"type": "fpn", "fpn": {"num_filters": fpn_filters}}, f"ResNet-{depth} with FPN",
        fate, note,
        ("retinanet_resnet50" if "retinanet" in experiment else "fasterrcnn_resnet50")
        if depth == 50 else "other")


def ssd_backbone(extractor: model_pb2.SsdFeatureExtractor, where: str) -> Backbone:
    """SSD and EfficientDet feature extractors, by their `type`."""
    kind = extractor.type.removesuffix("_keras")
    uses_fpn = extractor.HasField("fpn")
    fpn_filters = extractor.fpn.additional_layer_depth if uses_fpn else 128
    separable = extractor.use_depthwise if uses_fpn else True
    ssd_layers = ("SSD's extra feature layers become an FPN (levels 3-7, 128 filters, separable "
                  "convolutions, as in SSD MobileNet FPNLite): Model Garden's RetinaNet has no "
                  "SSD feature maps")
    match = re.fullmatch(r"ssd_mobilenet_v([123])(_large|_small)?(_fpn)?", kind)
    if match:
        version = {"1": "MobileNetV1", "2": "MobileNetV2",
                   "3": f"MobileNetV3{(match.group(2) or '_large')[1:].title()}"}[match.group(1)]
        if match.group(3):
            return _mobilenet(version, fpn_filters, separable, APPLIED,
                              f"RetinaNet with Model Garden's {version} backbone and FPN",
                              extractor.depth_multiplier)
        return _mobilenet(version, 128, True, APPROXIMATED,
                          f"RetinaNet with Model Garden's {version} backbone; {ssd_layers}",
                          extractor.depth_multiplier)
    if kind == "ssd_inception_v2":
        return _mobilenet("MobileNetV2", 128, True, APPROXIMATED,
                          "Model Garden has no Inception backbone; the closest is MobileNetV2 "
                          "(COCO mAP in the OD API's zoo: SSD Inception v2 24, SSD MobileNet v2 "
                          f"22), in RetinaNet; {ssd_layers}")
    if kind == "ssd_inception_v3":
        return _resnet(50, 256, APPROXIMATED, "Model Garden has no Inception backbone; the "
                       "closest is ResNet-50 (similar size and ImageNet accuracy), in RetinaNet "
                       "with an FPN")
    match = re.fullmatch(r"ssd_resnet(50|101|152)_v1_fpn", kind)
    if match:
        return _resnet(int(match.group(1)), fpn_filters, APPLIED,
                       f"RetinaNet with Model Garden's ResNet-{match.group(1)} backbone and FPN")
    match = re.fullmatch(r"ssd_efficientnet-b(\d)_bifpn", kind)
    if match:
        model_id = f"b{match.group(1)}"
        filters = extractor.bifpn.num_filters or 64
        return Backbone(
            "retinanet_resnetfpn_coco",
            {"type": "efficientnet", "efficientnet": {"model_id": model_id}},
            {"type": "fpn", "fpn": {"num_filters": filters}},
            f"EfficientNet-{model_id} with FPN", APPROXIMATED,
            f"EfficientDet-d{match.group(1)}: Model Garden's EfficientNet-{model_id} backbone in "
            "RetinaNet with an FPN in place of the BiFPN, which Model Garden's RetinaNet lacks",
            "other")
    known = ("ssd_mobilenet_v1/v2/v3_large/v3_small[_fpn][_keras], ssd_inception_v2/v3, "
             "ssd_resnet50/101/152_v1_fpn[_keras], ssd_efficientnet-b0..b7_bifpn_keras")
    raise OdapiError(f"feature_extractor type {extractor.type!r} has no Model Garden "
                     f"counterpart odapi knows; supported: {known}", where=where)


def faster_rcnn_backbone(extractor: model_pb2.FasterRcnnFeatureExtractor,
                         where: str) -> Backbone:
    """Faster R-CNN feature extractors: ResNets as they are, Inceptions as ResNets."""
    kind = extractor.type.removesuffix("_keras")
    match = re.fullmatch(r"faster_rcnn_resnet(50|101|152)(_v1)?(_fpn)?", kind)
    experiment = "fasterrcnn_resnetfpn_coco"
    if match:
        depth = int(match.group(1))
        if match.group(3):
            return _resnet(depth, 256, APPLIED, f"Faster R-CNN with Model Garden's "
                           f"ResNet-{depth} backbone and FPN", experiment)
        return _resnet(depth, 256, APPROXIMATED, f"Faster R-CNN with Model Garden's "
                       f"ResNet-{depth} backbone; the OD API crops proposals from ResNet's "
                       "stride-16 features, Model Garden from an FPN (levels 2-6)", experiment)
    substitutes = {"faster_rcnn_inception_resnet_v2": 101, "faster_rcnn_inception_v2": 50}
    if kind in substitutes:
        depth = substitutes[kind]
        return _resnet(depth, 256, APPROXIMATED, f"Model Garden has no Inception backbone; the "
                       f"closest is ResNet-{depth}, in Faster R-CNN with an FPN", experiment)
    raise OdapiError(f"feature_extractor type {extractor.type!r} has no Model Garden "
                     "counterpart odapi knows; supported: faster_rcnn_resnet50/101/152[_v1]"
                     "[_fpn][_keras], faster_rcnn_inception_v2, "
                     "faster_rcnn_inception_resnet_v2", where=where)


def center_net_backbone(extractor: model_pb2.CenterNetFeatureExtractor,
                        where: str) -> Backbone:
    """CenterNet feature extractors, for the RetinaNet that stands in for CenterNet."""
    centernet = ("CenterNet (objects as center-heatmap peaks, no anchors) has no Model Garden "
                 "counterpart in official.vision: trained as RetinaNet")
    kind = extractor.type
    match = re.fullmatch(r"resnet_v[12]_(50|101)(_fpn)?", kind)
    if match:
        return _resnet(int(match.group(1)), 256, APPROXIMATED,
                       f"{centernet} with ResNet-{match.group(1)} and FPN")
    match = re.fullmatch(r"hourglass_(104|52)\w*", kind)
    if match:
        depth = 101 if match.group(1) == "104" else 50
        return _resnet(depth, 256, APPROXIMATED, f"{centernet}; Model Garden has no Hourglass "
                       f"backbone, the closest is ResNet-{depth} with FPN")
    if kind.startswith("mobilenet_v2"):
        return _mobilenet("MobileNetV2", 128, True, APPROXIMATED,
                          f"{centernet} with MobileNetV2 and FPN")
    raise OdapiError(f"feature_extractor type {kind!r} has no Model Garden counterpart odapi "
                     "knows; supported: hourglass_104/52, resnet_v1/v2_50/101[_fpn], "
                     "mobilenet_v2_fpn", where=where)
