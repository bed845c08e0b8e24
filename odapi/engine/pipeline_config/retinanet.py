"""SSD, EfficientDet and CenterNet heads as Model Garden's RetinaNet.

Model Garden's RetinaNet has one norm_activation for the whole model, anchors of one size per
level, a head shared across levels, focal and Huber losses on unscaled box offsets, and an
argmax matcher. What the OD API configures per layer or per feature map is mapped onto those,
and where that changes the model the fate says how.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from odapi.engine.pipeline_config.draft import Draft, clean_float
from odapi.engine.pipeline_config.fates import APPLIED, APPROXIMATED, IGNORED
from odapi.engine.pipeline_config.post_processing import translate_post_processing
from odapi.engine.pipeline_config.reading import EnumName, format_value

if TYPE_CHECKING:
    from odapi.protos import model_parts_pb2, model_pb2

    ConvolutionalPredictor = (model_parts_pb2.WeightSharedConvolutionalBoxPredictor
                              | model_parts_pb2.ConvolutionalBoxPredictor)

ACTIVATIONS = {"RELU": "relu", "RELU_6": "relu6", "SWISH": "swish"}
MODEL_GARDEN_CLASS_BIAS = -4.595  # RetinaNet's head: -log((1 - 0.01) / 0.01)


def translate_retinanet(draft: Draft, config: model_pb2.Ssd | model_pb2.CenterNet, prefix: str,
                        kind: str) -> None:
    """Everything of an SSD or CenterNet block but its backbone, levels and input size."""
    _norm_activation(draft, config, prefix)
    if kind == "center_net":
        draft.mark(f"{prefix}.object_center_params.max_box_predictions", APPLIED,
                   "task.model.detection_generator.max_num_detections")
        draft.set("task.model.detection_generator.max_num_detections",
                  config.object_center_params.max_box_predictions)
        return
    _anchors(draft, config.anchor_generator, f"{prefix}.anchor_generator")
    _head(draft, config.box_predictor, f"{prefix}.box_predictor")
    _losses(draft, config.loss, f"{prefix}.loss")
    translate_post_processing(draft, config.post_processing, f"{prefix}.post_processing",
                              "SIGMOID")
    _matcher(draft, config.matcher.argmax_matcher, f"{prefix}.matcher.argmax_matcher")
    draft.mark(f"{prefix}.similarity_calculator", APPLIED, "IoU, as in Model Garden")
    draft.mark(f"{prefix}.box_coder", APPROXIMATED,
               "Model Garden's RetinaNet encodes box offsets unscaled; its Huber delta 0.1 "
               "and box loss weight 50 are tuned for that")
    draft.mark(f"{prefix}.normalize_loss_by_num_matches",
               APPLIED if config.normalize_loss_by_num_matches else IGNORED,
               "Model Garden divides the losses by the number of matched anchors")
    draft.mark(f"{prefix}.freeze_batchnorm", APPLIED if not config.freeze_batchnorm
               else IGNORED, "batch norm trains, as in Model Garden")


def _norm_activation(draft: Draft, config: model_pb2.Ssd | model_pb2.CenterNet,
                     prefix: str) -> None:
    """One norm_activation and l2_weight_decay for the whole model, from the extractor's."""
    extractor = config.feature_extractor
    own = f"{prefix}.feature_extractor.conv_hyperparams"
    if not hasattr(extractor, "conv_hyperparams") or \
            not extractor.HasField("conv_hyperparams"):
        return
    hyper = extractor.conv_hyperparams
    values: dict[str, Any] = {}  # what was taken from the extractor, by path inside the block
    if hyper.HasField("activation"):
        written = hyper.Activation.Name(hyper.activation)
        name = ACTIVATIONS.get(written)
        if name:
            values["activation"] = EnumName(written)
            draft.set("task.model.norm_activation.activation", name)
            draft.mark(f"{own}.activation", APPLIED,
                       f"task.model.norm_activation.activation {name!r}")
    if hyper.HasField("batch_norm"):
        for name, key in (("decay", "norm_momentum"), ("epsilon", "norm_epsilon")):
            if hyper.batch_norm.HasField(name):
                value = clean_float(getattr(hyper.batch_norm, name))
                values[f"batch_norm.{name}"] = value
                draft.set(f"task.model.norm_activation.{key}", value)
                draft.mark(f"{own}.batch_norm.{name}", APPLIED,
                           f"task.model.norm_activation.{key}")
    weight = f"{own}.regularizer.l2_regularizer.weight"
    if draft.has(weight):
        value = clean_float(hyper.regularizer.l2_regularizer.weight)
        values["regularizer.l2_regularizer.weight"] = value
        draft.set("task.losses.l2_weight_decay", value)
        draft.mark(weight, APPROXIMATED, "task.losses.l2_weight_decay, on every weight of "
                   "the model where the OD API regularizes the layers this block configures")
    draft.mark(f"{prefix}.feature_extractor.override_base_feature_extractor_hyperparams",
               APPROXIMATED, "Model Garden applies norm_activation to the whole model, "
               "backbone included")
    # the box predictor's own conv_hyperparams: the same settings, or overruled
    for f in draft.fields:
        match = re.fullmatch(rf"{re.escape(prefix)}\.box_predictor\.\w+\.conv_hyperparams\."
                             r"(activation|batch_norm\.\w+|regularizer\.l2_regularizer\.weight)",
                             f.path)
        if match and match.group(1) in values:
            same = format_value(values[match.group(1)]) == f.shown()
            draft.mark(f.path, APPLIED if same else APPROXIMATED,
                       "the same as the feature extractor's, which Model Garden applies to "
                       "the whole model" if same else "Model Garden has one setting for the "
                       "whole model: the feature extractor's")


def _anchors(draft: Draft, generator: model_parts_pb2.AnchorGenerator, path: str) -> None:
    which = generator.WhichOneof("anchor_generator_oneof")
    if which == "multiscale_anchor_generator":
        multiscale = generator.multiscale_anchor_generator
        draft.set("task.model.anchor", {
            "anchor_size": clean_float(multiscale.anchor_scale),
            "num_scales": multiscale.scales_per_octave,
            "aspect_ratios": [clean_float(r) for r in multiscale.aspect_ratios]
            or [0.5, 1.0, 2.0]})
        for name, key in (("anchor_scale", "anchor_size"),
                          ("scales_per_octave", "num_scales"),
                          ("aspect_ratios", "aspect_ratios")):
            draft.mark(f"{path}.{which}.{name}", APPLIED, f"task.model.anchor.{key}")
    elif which == "ssd_anchor_generator":
        ratios = [clean_float(r) for r in generator.ssd_anchor_generator.aspect_ratios]
        if ratios:
            draft.set("task.model.anchor.aspect_ratios", ratios)
        draft.mark(f"{path}.{which}.aspect_ratios", APPLIED,
                   "task.model.anchor.aspect_ratios, at every location of every level")
        draft.mark(f"{path}.{which}", APPROXIMATED,
                   "SSD's anchor scales (min_scale to max_scale of the image over num_layers "
                   "maps) are not expressible in Model Garden, whose anchors are anchor_size "
                   "x each level's stride: the base experiment's anchor sizes on levels 3-7")


def _head(draft: Draft, predictor: model_parts_pb2.BoxPredictor, path: str) -> None:
    """The box predictor as RetinaNet's head: one tower of convolutions shared by every level."""
    which = predictor.WhichOneof("box_predictor_oneof")
    base = f"{path}.{which}"
    if which == "weight_shared_convolutional_box_predictor":
        shared = predictor.weight_shared_convolutional_box_predictor
        draft.apply_fields(shared, base, {"depth": "task.model.head.num_filters"})
        draft.set("task.model.head.num_convs", shared.num_layers_before_predictor)
        draft.set("task.model.head.use_separable_conv", shared.use_depthwise)
        draft.mark(f"{base}.num_layers_before_predictor", APPLIED, "task.model.head.num_convs")
        draft.mark(f"{base}.use_depthwise", APPLIED, "task.model.head.use_separable_conv")
        _kernel_size(draft, shared, base)
        _class_bias(draft, shared, f"{base}.class_prediction_bias_init")
        draft.mark(f"{base}.share_prediction_tower", IGNORED,
                   "Model Garden's RetinaNet head has separate class and box towers")
    elif which == "convolutional_box_predictor":
        conv = predictor.convolutional_box_predictor
        draft.set("task.model.head.num_convs", conv.num_layers_before_predictor)
        draft.mark(f"{base}.num_layers_before_predictor", APPROXIMATED,
                   f"task.model.head.num_convs {conv.num_layers_before_predictor}; Model "
                   "Garden shares one head across levels where SSD has one per feature map")
        _kernel_size(draft, conv, base)
        draft.mark(f"{base}.min_depth", APPLIED, "no extra layer before the predictors")
        draft.mark(f"{base}.max_depth", APPLIED if conv.max_depth == 0 else IGNORED,
                   "no extra layer before the predictors, as in Model Garden")
        draft.mark(f"{base}.use_dropout", APPLIED if not conv.use_dropout else IGNORED,
                   "Model Garden's head has no dropout")
        draft.mark(f"{base}.dropout_keep_probability", IGNORED,
                   "Model Garden's head has no dropout")
        draft.mark(f"{base}.box_code_size", APPLIED if conv.box_code_size == 4 else IGNORED,
                   "4 box coordinates, as in Model Garden")
        draft.mark(f"{base}.apply_sigmoid_to_scores", APPLIED, "scores are logits until "
                   "post-processing, as in Model Garden")
        _class_bias(draft, conv, f"{base}.class_prediction_bias_init")


def _kernel_size(draft: Draft, predictor: ConvolutionalPredictor, base: str) -> None:
    draft.mark(f"{base}.kernel_size", APPLIED if predictor.kernel_size == 3 else APPROXIMATED,
               "Model Garden's head uses 3x3 convolutions")


def _class_bias(draft: Draft, predictor: ConvolutionalPredictor, path: str) -> None:
    close = abs(predictor.class_prediction_bias_init - MODEL_GARDEN_CLASS_BIAS) < 0.01
    draft.mark(path, APPLIED if close else APPROXIMATED,
               "Model Garden's head starts class logits at -4.6 (a 1% prior)" if close else
               "Model Garden's head starts class logits at -4.6 (a 1% prior) regardless")


def _losses(draft: Draft, loss: model_parts_pb2.Loss, path: str) -> None:
    """Focal loss as it is, plain sigmoid as focal loss without focus, the weights as one."""
    which = loss.classification_loss.WhichOneof("classification_loss")
    if which == "weighted_sigmoid_focal":
        draft.apply_fields(loss.classification_loss.weighted_sigmoid_focal,
                           f"{path}.classification_loss.{which}",
                           {"alpha": "task.losses.focal_loss_alpha",
                            "gamma": "task.losses.focal_loss_gamma"})
    elif which == "weighted_sigmoid":
        draft.set("task.losses.focal_loss_gamma", 0.0)
        draft.set("task.losses.focal_loss_alpha", 0.5)
        draft.mark(f"{path}.classification_loss", APPROXIMATED,
                   "Model Garden's RetinaNet always uses focal loss: gamma 0 and alpha 0.5 "
                   "make it sigmoid cross-entropy at half the weight")
    draft.mark(f"{path}.localization_loss", APPROXIMATED,
               "Model Garden's Huber loss on unscaled offsets, huber_loss_delta 0.1 (kept): "
               "the same shape as delta 1.0 on the OD API's 10x-scaled offsets")
    cls, loc = loss.classification_weight, loss.localization_weight
    if cls > 0 and abs(loc / cls - 1.0) > 1e-6:
        weight = clean_float(50 * loc / cls)
        draft.set("task.losses.box_loss_weight", weight)
        note = (f"task.losses.box_loss_weight {weight}: Model Garden's 50 for "
                "its unscaled offsets, times localization_weight / classification_weight")
    else:
        note = ("Model Garden balances the losses with box_loss_weight 50 for its unscaled "
                "offsets (kept)")
    draft.mark(f"{path}.classification_weight", APPROXIMATED, note)
    draft.mark(f"{path}.localization_weight", APPROXIMATED, note)


def _matcher(draft: Draft, matcher: model_parts_pb2.ArgMaxMatcher, path: str) -> None:
    draft.apply_fields(matcher, path, {
        "matched_threshold": "task.train_data.parser.match_threshold",
        "unmatched_threshold": "task.train_data.parser.unmatched_threshold"})
    draft.mark(f"{path}.ignore_thresholds", APPLIED if not matcher.ignore_thresholds
               else IGNORED, "Model Garden's matcher uses both thresholds")
    draft.mark(f"{path}.negatives_lower_than_unmatched",
               APPLIED if matcher.negatives_lower_than_unmatched else IGNORED,
               "as in Model Garden: below unmatched_threshold is background, between the "
               "thresholds ignored")
    draft.mark(f"{path}.force_match_for_each_row",
               APPLIED if matcher.force_match_for_each_row else APPROXIMATED,
               "Model Garden matches every box to at least one anchor")
