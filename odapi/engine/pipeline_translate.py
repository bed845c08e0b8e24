"""From an OD API pipeline.config to a Model Garden experiment, with each field's fate.

The result is the tree `odapi.engine.config.resolve` reads from a YAML config (`experiment`,
`label_map`, `task`, `trainer`), so everything after it (`--set`, the label map's class count,
the device policy, checks) works the same. Each field the file sets gets a fate: applied,
approximated (how) or ignored (why). SSD and EfficientDet become RetinaNet, Faster R-CNN
stays Faster R-CNN, CenterNet is approximated by RetinaNet; the feature extractor becomes the
closest Model Garden backbone.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from odapi.engine.pipeline_backbones import (
    APPLIED,
    APPROXIMATED,
    CHECKPOINTS,
    center_net_backbone,
    faster_rcnn_backbone,
    ssd_backbone,
)
from odapi.engine.pipeline_config import (
    EnumName,
    PipelineFile,
    SetField,
    check_placeholders,
    find_path,
    format_value,
    read_pipeline_config,
)
from odapi.errors import OdapiError

IGNORED = "ignored"

ACTIVATIONS = {"RELU": "relu", "RELU_6": "relu6", "SWISH": "swish"}
MODEL_GARDEN_CLASS_BIAS = -4.595  # RetinaNet's head: -log((1 - 0.01) / 0.01)

# Fields that change nothing in Model Garden, matched on the path without list indices.
WHY_IGNORED: list[tuple[str, str]] = [
    (r".*\.initializer\..*", "Model Garden's layers use their own initializers"),
    (r".*\.conv_hyperparams\.(op|force_use_bias)",
     "Model Garden's layers choose their own convolution type and biases"),
    (r".*\.batch_norm\.(train|scale|center)",
     "Model Garden's batch norm layers always train, scale and center"),
    (r"model\.ssd\.feature_extractor\.min_depth",
     "Model Garden's backbones have fixed minimum widths"),
    (r"model\.ssd\.(encode_background_as_zeros|add_background_class)",
     "Model Garden scores each class with a sigmoid and keeps class 0 for the background; the "
     "class count comes from the label map"),
    (r"model\.ssd\.inplace_batchnorm_update",
     "TensorFlow 2 updates batch norm statistics in place anyway"),
    (r"model\.ssd\.loss\.hard_example_miner\..*",
     "Model Garden's RetinaNet uses focal loss over all anchors instead of hard example mining"),
    (r"model\.ssd\.normalize_loc_loss_by_codesize",
     "Model Garden does not divide the box loss by the code size; box_loss_weight sets its "
     "scale"),
    (r"model\.ssd\.matcher\.argmax_matcher\.use_matmul_gather",
     "a TPU implementation switch; Model Garden chooses its own ops"),
    (r"model\.faster_rcnn\.(use_static_shapes|use_matmul_crop_and_resize|clip_anchors_to_image"
     r"|use_static_balanced_label_sampler|use_matmul_gather_in_matcher)",
     "a TPU implementation switch; Model Garden chooses its own ops"),
    (r"model\.faster_rcnn\.first_stage_box_predictor_conv_hyperparams\..*",
     "Model Garden's RPN head uses its own initializer and the model-wide l2_weight_decay"),
    (r"model\.faster_rcnn\.second_stage_box_predictor\.mask_rcnn_box_predictor\."
     r"fc_hyperparams\..*",
     "Model Garden's box head uses its own initializer and the model-wide l2_weight_decay"),
    (r"model\.center_net\.feature_extractor\.(channel_means|channel_stds|bgr_ordering)",
     "Model Garden normalizes RGB images with ImageNet's mean and standard deviation"),
    (r"model\.center_net\.(object_detection_task|object_center_params)\..*",
     "CenterNet's heatmap and size losses have no place in RetinaNet, which uses focal and "
     "Huber losses"),
    (r"train_config\.(sync_replicas|startup_delay_steps|replicas_to_aggregate)",
     "odapi trains synchronously on every GPU it sees (MirroredStrategy)"),
    (r"train_config\.use_bfloat16",
     "odapi picks the precision per device (float16 on GPU, float32 on CPU); set "
     "runtime.mixed_precision_dtype with --set to choose"),
    (r"train_config\.unpad_groundtruth_tensors",
     "Model Garden pads ground truth to max_num_instances boxes"),
    (r"train_config\.fine_tune_checkpoint_version",
     "odapi reads TF2 object-based checkpoints and refuses TF1 ones"),
    (r"train_config\.data_augmentation_options\.(random_adjust_\w+|random_absolute_pad_image)"
     r"(\..*)?", "Model Garden's detection input pipelines have no such augmentation"),
    (r"(train|eval)_input_reader\.num_readers",
     "Model Garden reads record files in parallel with tf.data's autotuning"),
    (r"eval_config\.max_evals",
     "odapi evaluates every --eval-every N steps, or each checkpoint with `odapi eval "
     "--follow`, until the last step"),
]


@dataclass
class Fate:
    """What became of one field of the file."""

    path: str
    value: str
    line: int | None
    fate: str  # APPLIED, APPROXIMATED or IGNORED
    note: str  # how it maps, or why it does not
    warn: bool = False  # worth telling the user when training starts


@dataclass
class Translation:
    """A pipeline.config as odapi's experiment tree, with what happened to each field."""

    source: Path
    experiment: str
    summary: str  # e.g. "RetinaNet, MobileNetV2 backbone with FPN, 384x384 input"
    tree: dict  # experiment, label_map, task, trainer: what a YAML config holds
    fates: list[Fate]
    num_classes: int | None = None  # as the file says (without background)
    num_classes_where: str = ""
    train_data: str | None = None
    val_data: str | None = None
    label_map: str | None = None
    init_checkpoint: str | None = None
    eval_every_nth: int = 1
    max_eval_examples: int | None = None

    def warnings(self) -> list[str]:
        return [f"{', '.join(paths)}: {note}" for note, paths in
                _by_note(f for f in self.fates if f.warn).items()]

    def counts(self) -> dict[str, int]:
        return {kind: sum(f.fate == kind for f in self.fates)
                for kind in (APPLIED, APPROXIMATED, IGNORED)}

    def check_label_map(self, labels, path: Path) -> None:
        """num_classes as the OD API counts it (no background) must match the label map."""
        if self.num_classes is None or self.num_classes == labels.max_id:
            return
        raise OdapiError(
            f"num_classes is {self.num_classes}, but the label map {path} has {len(labels)} "
            f"classes with ids up to {labels.max_id}: set num_classes: {labels.max_id} (odapi "
            f"gives Model Garden {labels.max_id + 1} classes, counting the background)",
            where=self.num_classes_where)

    def table(self) -> str:
        from tabulate import tabulate

        rows = [[f.line or "", _wrap_path(f.path, 46), f.value, f.fate, f.note]
                for f in self.fates]
        return tabulate(rows, headers=["line", "field", "value", "fate", "how / why"],
                        tablefmt="simple", maxcolwidths=[None, None, 20, None, 56])

    def to_yaml(self) -> str:
        """The experiment as an odapi YAML config, its fates summarized in comments."""
        import textwrap

        import yaml

        counts = self.counts()
        lines = [f"Converted by `odapi config convert` from {self.source}", self.summary,
                 f"{len(self.fates)} fields: {counts[APPLIED]} applied, "
                 f"{counts[APPROXIMATED]} approximated, {counts[IGNORED]} ignored "
                 "(`odapi config explain` lists them).", "Approximated:"]
        for note, paths in _by_note(f for f in self.fates if f.fate == APPROXIMATED).items():
            lines += textwrap.wrap(f"{', '.join(paths)}: {note}", 96, initial_indent="- ",
                                   subsequent_indent="  ")
        if self.eval_every_nth > 1:
            lines.append("Not expressible here: the evaluation sample; pass "
                         f"--sample-1-of-n-eval-examples {self.eval_every_nth} to odapi train.")
        if self.max_eval_examples:
            lines.append(f"Not expressible here: eval_config.num_examples "
                         f"{self.max_eval_examples} (odapi train with this YAML evaluates every "
                         "validation example).")
        body = yaml.safe_dump(self.tree, sort_keys=False, default_flow_style=None, width=100)
        return "".join(f"# {line}\n" for line in lines) + body


def _by_note(fates) -> dict[str, list[str]]:
    """Fields that share a note, in file order: one line for the four box coder scales."""
    grouped: dict[str, list[str]] = {}
    for fate in fates:
        grouped.setdefault(fate.note, []).append(fate.path)
    return grouped


def _wrap_path(path: str, width: int) -> str:
    """A field path broken at dots to fit a table column."""
    lines = [""]
    for part in re.split(r"(?<=\.)", path):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    return "\n".join(lines)


def _zoo_checkpoint(value: str, found: str | None) -> str | None:
    """How `value` shows itself to be an OD API model-zoo checkpoint, or None."""
    path = Path(value)
    if path.name.startswith("model.ckpt"):
        return "a TF1 model-zoo checkpoint (model.ckpt)"
    if path.name == "ckpt-0" and path.parent.name == "checkpoint":
        return "a TF2 model-zoo checkpoint (checkpoint/ckpt-0)"
    if found:
        from odapi.engine.checkpoints import od_api_layout

        layout = od_api_layout(found)
        if layout:
            return f"a {layout} checkpoint of the OD API"
    return None


def _set(tree: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[last] = value


def _f(value: float) -> float:
    return float(f"{value:.6g}")


class _Translator:
    """Walks the file section by section, building the tree and each field's fate."""

    def __init__(self, file: PipelineFile, bases: list[Path], given: dict[str, str]):
        self.file = file
        self.message = file.message
        self.bases = bases
        self.given = given  # "train_data", "val_data", "label_map", "init_checkpoint"
        self.fields: list[SetField] = file.fields()
        self.fates: dict[str, Fate] = {}
        self.tree: dict = {}
        self.result = Translation(source=file.path, experiment="", summary="", tree=self.tree,
                                  fates=[])
        self.missing: list[str] = []  # paths that exist nowhere, reported together
        self.checkpoint_hint = CHECKPOINTS["other"]  # set once the backbone is chosen

    # --- bookkeeping -------------------------------------------------------------------
    def set(self, dotted: str, value: Any) -> None:
        _set(self.tree, dotted, value)

    def mark(self, prefix: str, fate: str, note: str, warn: bool = False) -> None:
        """Give `prefix` (a field, or every not yet decided field in a block) its fate."""
        for f in self.fields:
            inside = f.path == prefix or f.path.startswith((prefix + ".", prefix + "["))
            if inside and f.path not in self.fates:
                self.fates[f.path] = Fate(f.path, f.shown(), f.line, fate, note, warn)

    def has(self, prefix: str) -> bool:
        return any(f.path == prefix or f.path.startswith(prefix + ".") for f in self.fields)

    def where(self, path: str) -> str:
        return self.file.where(path)

    # --- the whole file ----------------------------------------------------------------
    def translate(self) -> Translation:
        skip = tuple(key for flag, key in (
            ("train_data", "train_input_reader.tf_record_input_reader"),
            ("val_data", "eval_input_reader.tf_record_input_reader"),
            ("label_map", "train_input_reader.label_map_path"),
            ("label_map", "eval_input_reader.label_map_path"),
            ("init_checkpoint", "train_config.fine_tune_checkpoint"),
        ) if flag in self.given)
        check_placeholders(self.file, skip)
        kind = self.message.model.WhichOneof("model")
        self.model(kind)
        self.train_config(kind)
        self.inputs()
        self.eval_config()
        if self.missing:
            looked = " and ".join(str(base) for base in self.bases)
            raise OdapiError(f"paths in the config that exist nowhere (looked in {looked}; "
                             "--data adds a folder to look in):\n" + "\n".join(self.missing),
                             where=str(self.file.path))
        self.trainer_defaults()
        for f in self.fields:  # whatever the sections left: a known reason, or none
            if f.path not in self.fates:
                why = next((why for pattern, why in WHY_IGNORED if re.fullmatch(pattern, f.key)),
                           "odapi has no Model Garden setting for it")
                self.fates[f.path] = Fate(f.path, f.shown(), f.line, IGNORED, why)
        self.result.fates = [self.fates[f.path] for f in self.fields]
        order = ("experiment", "label_map", "task", "trainer")
        self.result.tree = {key: self.tree[key] for key in order if key in self.tree}
        return self.result

    # --- model -------------------------------------------------------------------------
    def model(self, kind: str) -> None:
        config = getattr(self.message.model, kind)
        prefix = f"model.{kind}"
        extractor_path = f"{prefix}.feature_extractor.type"
        chooser = {"ssd": ssd_backbone, "faster_rcnn": faster_rcnn_backbone,
                   "center_net": center_net_backbone}[kind]
        choice = chooser(config.feature_extractor, self.where(extractor_path))
        self.result.experiment = choice.experiment
        self.checkpoint_hint = CHECKPOINTS[choice.checkpoint]
        self.tree["experiment"] = choice.experiment
        self.set("task.model.backbone", choice.backbone)
        if choice.decoder:
            self.set("task.model.decoder", choice.decoder)
        self.mark(extractor_path, choice.fate, choice.note, warn=choice.fate != APPLIED)

        if config.HasField("num_classes"):
            self.result.num_classes = config.num_classes
            self.result.num_classes_where = self.where(f"{prefix}.num_classes")
            self.mark(f"{prefix}.num_classes", APPLIED,
                      "checked against the label map; Model Garden's num_classes is the label "
                      "map's largest id + 1 (background)")
        if kind == "faster_rcnn":
            min_level, max_level = 2, 6
            self.faster_rcnn(config, prefix)
        else:
            min_level, max_level = self.levels(config, prefix)
            self.retinanet(config, prefix, kind)
        size = self.input_size(config, prefix, 2 ** max_level, kind)
        arch = "Faster R-CNN" if kind == "faster_rcnn" else "RetinaNet"
        self.result.summary = (f"{arch} ({choice.experiment}), {choice.name} backbone, levels "
                               f"{min_level}-{max_level}"
                               + (f", {size[0]}x{size[1]} input" if size else ""))
        self.pyramid(config, f"{prefix}.feature_extractor")
        self.mark(prefix + ".feature_extractor.depth_multiplier",
                  APPLIED if choice.backbone["type"] == "mobilenet" else IGNORED,
                  "backbone.mobilenet.filter_size_scale"
                  if choice.backbone["type"] == "mobilenet" else
                  "only MobileNet backbones have a width multiplier in Model Garden")

    def pyramid(self, config, path: str) -> None:
        """The feature extractor's FPN or BiFPN settings, as Model Garden's FPN decoder."""
        extractor = config.feature_extractor
        uses_fpn = hasattr(extractor, "fpn") and extractor.HasField("fpn")
        self.mark(f"{path}.fpn.additional_layer_depth", APPLIED,
                  "task.model.decoder.fpn.num_filters")
        self.mark(f"{path}.use_depthwise", APPLIED if uses_fpn else APPROXIMATED,
                  "task.model.decoder.fpn.use_separable_conv" if uses_fpn else
                  "separable convolutions in the FPN that replaces SSD's extra layers")
        self.mark(f"{path}.bifpn.num_filters", APPROXIMATED,
                  "task.model.decoder.fpn.num_filters, of the FPN in place of the BiFPN")
        self.mark(f"{path}.bifpn.num_iterations", IGNORED, "an FPN makes one top-down pass; "
                  "BiFPN's repeated passes have no Model Garden counterpart")

    def levels(self, config, prefix: str) -> tuple[int, int]:
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
                    self.mark(f"{path}.{name}", APPLIED, f"task.model.{name}")
        self.set("task.model.min_level", min_level)
        self.set("task.model.max_level", max_level)
        return min_level, max_level

    def input_size(self, config, prefix: str, multiple: int, kind: str) -> list[int] | None:
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
        self.set("task.model.input_size", [*size, 3])
        for name in names:
            if size == asked:
                self.mark(f"{path}.{which}.{name}", APPLIED,
                          f"task.model.input_size {[*size, 3]}")
            else:
                self.mark(f"{path}.{which}.{name}", APPROXIMATED,
                          f"rounded up to {size[0]}x{size[1]}: Model Garden needs sides "
                          f"divisible by {multiple} (2^max_level)", warn=True)
        if which == "fixed_shape_resizer":
            if kind == "faster_rcnn":
                self.mark(path, APPROXIMATED, "Model Garden's Faster R-CNN keeps the aspect "
                          "ratio and pads where the OD API stretches")
            else:
                self.set("task.train_data.parser.keep_aspect_ratio", False)
                self.set("task.validation_data.parser.keep_aspect_ratio", False)
        else:
            keep = resizer.keep_aspect_ratio_resizer
            self.mark(f"{path}.{which}.pad_to_max_dimension",
                      APPLIED if keep.pad_to_max_dimension else APPROXIMATED,
                      "Model Garden pads to the square input size" if keep.pad_to_max_dimension
                      else "Model Garden pads to the square input size regardless")
            same = keep.min_dimension == keep.max_dimension
            self.mark(f"{path}.{which}.min_dimension", APPLIED if same else APPROXIMATED,
                      "the longer side fits max_dimension, as with min = max" if same else
                      "Model Garden fits the longer side to max_dimension and does not scale "
                      "the shorter side up to min_dimension")
        return size

    def retinanet(self, config, prefix: str, kind: str) -> None:
        self.norm_activation(config, prefix)
        if kind == "center_net":
            self.mark(f"{prefix}.object_center_params.max_box_predictions", APPLIED,
                      "task.model.detection_generator.max_num_detections")
            self.set("task.model.detection_generator.max_num_detections",
                     config.object_center_params.max_box_predictions)
            return
        self.anchors(config.anchor_generator, f"{prefix}.anchor_generator")
        self.head(config.box_predictor, f"{prefix}.box_predictor")
        self.ssd_losses(config, prefix)
        self.post_processing(config.post_processing, f"{prefix}.post_processing", "SIGMOID")
        self.matcher(config, prefix)
        self.mark(f"{prefix}.similarity_calculator", APPLIED, "IoU, as in Model Garden")
        self.mark(f"{prefix}.box_coder", APPROXIMATED,
                  "Model Garden's RetinaNet encodes box offsets unscaled; its Huber delta 0.1 "
                  "and box loss weight 50 are tuned for that")
        self.mark(f"{prefix}.normalize_loss_by_num_matches",
                  APPLIED if config.normalize_loss_by_num_matches else IGNORED,
                  "Model Garden divides the losses by the number of matched anchors")
        self.mark(f"{prefix}.freeze_batchnorm", APPLIED if not config.freeze_batchnorm
                  else IGNORED, "batch norm trains, as in Model Garden")

    def matcher(self, config, prefix: str) -> None:
        matcher = config.matcher.argmax_matcher
        path = f"{prefix}.matcher.argmax_matcher"
        for name, key in (("matched_threshold", "match_threshold"),
                          ("unmatched_threshold", "unmatched_threshold")):
            if matcher.HasField(name):
                self.set(f"task.train_data.parser.{key}", _f(getattr(matcher, name)))
                self.mark(f"{path}.{name}", APPLIED, f"task.train_data.parser.{key}")
        self.mark(f"{path}.ignore_thresholds", APPLIED if not matcher.ignore_thresholds
                  else IGNORED, "Model Garden's matcher uses both thresholds")
        self.mark(f"{path}.negatives_lower_than_unmatched",
                  APPLIED if matcher.negatives_lower_than_unmatched else IGNORED,
                  "as in Model Garden: below unmatched_threshold is background, between the "
                  "thresholds ignored")
        self.mark(f"{path}.force_match_for_each_row",
                  APPLIED if matcher.force_match_for_each_row else APPROXIMATED,
                  "Model Garden matches every box to at least one anchor")

    def anchors(self, generator, path: str) -> None:
        which = generator.WhichOneof("anchor_generator_oneof")
        if which == "multiscale_anchor_generator":
            multiscale = generator.multiscale_anchor_generator
            self.set("task.model.anchor", {
                "anchor_size": _f(multiscale.anchor_scale),
                "num_scales": multiscale.scales_per_octave,
                "aspect_ratios": [_f(r) for r in multiscale.aspect_ratios] or [0.5, 1.0, 2.0]})
            for name, key in (("anchor_scale", "anchor_size"),
                              ("scales_per_octave", "num_scales"),
                              ("aspect_ratios", "aspect_ratios")):
                self.mark(f"{path}.{which}.{name}", APPLIED, f"task.model.anchor.{key}")
        elif which == "ssd_anchor_generator":
            ratios = [_f(r) for r in generator.ssd_anchor_generator.aspect_ratios]
            if ratios:
                self.set("task.model.anchor.aspect_ratios", ratios)
            self.mark(f"{path}.{which}.aspect_ratios", APPLIED,
                      "task.model.anchor.aspect_ratios, at every location of every level")
            self.mark(f"{path}.{which}", APPROXIMATED,
                      "SSD's anchor scales (min_scale to max_scale of the image over num_layers "
                      "maps) are not expressible in Model Garden, whose anchors are anchor_size "
                      "x each level's stride: the base experiment's anchor sizes on levels 3-7")

    def head(self, predictor, path: str) -> None:
        which = predictor.WhichOneof("box_predictor_oneof")
        if which == "weight_shared_convolutional_box_predictor":
            shared = predictor.weight_shared_convolutional_box_predictor
            base = f"{path}.{which}"
            if shared.HasField("depth"):
                self.set("task.model.head.num_filters", shared.depth)
                self.mark(f"{base}.depth", APPLIED, "task.model.head.num_filters")
            self.set("task.model.head.num_convs", shared.num_layers_before_predictor)
            self.set("task.model.head.use_separable_conv", shared.use_depthwise)
            self.mark(f"{base}.num_layers_before_predictor", APPLIED,
                      "task.model.head.num_convs")
            self.mark(f"{base}.use_depthwise", APPLIED, "task.model.head.use_separable_conv")
            self.mark(f"{base}.kernel_size", APPLIED if shared.kernel_size == 3 else
                      APPROXIMATED, "Model Garden's head uses 3x3 convolutions")
            self.class_bias(shared, f"{base}.class_prediction_bias_init")
            self.mark(f"{base}.share_prediction_tower", IGNORED,
                      "Model Garden's RetinaNet head has separate class and box towers")
        elif which == "convolutional_box_predictor":
            conv = predictor.convolutional_box_predictor
            base = f"{path}.{which}"
            self.set("task.model.head.num_convs", conv.num_layers_before_predictor)
            self.mark(f"{base}.num_layers_before_predictor", APPROXIMATED,
                      f"task.model.head.num_convs {conv.num_layers_before_predictor}; Model "
                      "Garden shares one head across levels where SSD has one per feature map")
            self.mark(f"{base}.kernel_size", APPLIED if conv.kernel_size == 3 else
                      APPROXIMATED, "Model Garden's head uses 3x3 convolutions")
            self.mark(f"{base}.min_depth", APPLIED, "no extra layer before the predictors")
            self.mark(f"{base}.max_depth", APPLIED if conv.max_depth == 0 else IGNORED,
                      "no extra layer before the predictors, as in Model Garden")
            self.mark(f"{base}.use_dropout", APPLIED if not conv.use_dropout else IGNORED,
                      "Model Garden's head has no dropout")
            self.mark(f"{base}.dropout_keep_probability", IGNORED,
                      "Model Garden's head has no dropout")
            self.mark(f"{base}.box_code_size", APPLIED if conv.box_code_size == 4 else IGNORED,
                      "4 box coordinates, as in Model Garden")
            self.mark(f"{base}.apply_sigmoid_to_scores", APPLIED, "scores are logits until "
                      "post-processing, as in Model Garden")
            self.class_bias(conv, f"{base}.class_prediction_bias_init")

    def class_bias(self, predictor, path: str) -> None:
        bias = predictor.class_prediction_bias_init
        close = abs(bias - MODEL_GARDEN_CLASS_BIAS) < 0.01
        self.mark(path, APPLIED if close else APPROXIMATED,
                  "Model Garden's head starts class logits at -4.6 (a 1% prior)" if close else
                  "Model Garden's head starts class logits at -4.6 (a 1% prior) regardless")

    def norm_activation(self, config, prefix: str) -> None:
        """One norm_activation and l2_weight_decay for the whole model, from the extractor's."""
        extractor = config.feature_extractor
        own = f"{prefix}.feature_extractor.conv_hyperparams"
        if not hasattr(extractor, "conv_hyperparams") or \
                not extractor.HasField("conv_hyperparams"):
            return
        hyper = extractor.conv_hyperparams
        values: dict[str, Any] = {}
        if hyper.HasField("activation"):
            written = hyper.Activation.Name(hyper.activation)
            name = ACTIVATIONS.get(written)
            if name:
                values["activation"] = EnumName(written)
                self.set("task.model.norm_activation.activation", name)
                self.mark(f"{own}.activation", APPLIED,
                          f"task.model.norm_activation.activation {name!r}")
        if hyper.HasField("batch_norm"):
            for name, key in (("decay", "norm_momentum"), ("epsilon", "norm_epsilon")):
                if hyper.batch_norm.HasField(name):
                    value = _f(getattr(hyper.batch_norm, name))
                    values[f"batch_norm.{name}"] = value
                    self.set(f"task.model.norm_activation.{key}", value)
                    self.mark(f"{own}.batch_norm.{name}", APPLIED,
                              f"task.model.norm_activation.{key}")
        weight = f"{own}.regularizer.l2_regularizer.weight"
        if self.has(weight):
            value = _f(hyper.regularizer.l2_regularizer.weight)
            values["regularizer.l2_regularizer.weight"] = value
            self.set("task.losses.l2_weight_decay", value)
            self.mark(weight, APPROXIMATED, "task.losses.l2_weight_decay, on every weight of "
                      "the model where the OD API regularizes the layers this block configures")
        self.mark(f"{prefix}.feature_extractor.override_base_feature_extractor_hyperparams",
                  APPROXIMATED, "Model Garden applies norm_activation to the whole model, "
                  "backbone included")
        # the box predictor's own conv_hyperparams: the same settings, or overruled
        for f in self.fields:
            match = re.fullmatch(rf"{re.escape(prefix)}\.box_predictor\.\w+\.conv_hyperparams\."
                                 r"(activation|batch_norm\.\w+|regularizer\.l2_regularizer\.weight)",
                                 f.path)
            if match and match.group(1) in values:
                same = format_value(values[match.group(1)]) == f.shown()
                self.mark(f.path, APPLIED if same else APPROXIMATED,
                          "the same as the feature extractor's, which Model Garden applies to "
                          "the whole model" if same else "Model Garden has one setting for the "
                          "whole model: the feature extractor's")

    def ssd_losses(self, config, prefix: str) -> None:
        loss = config.loss
        path = f"{prefix}.loss"
        which = loss.classification_loss.WhichOneof("classification_loss")
        if which == "weighted_sigmoid_focal":
            focal = loss.classification_loss.weighted_sigmoid_focal
            for name, key in (("alpha", "focal_loss_alpha"), ("gamma", "focal_loss_gamma")):
                if focal.HasField(name):
                    self.set(f"task.losses.{key}", _f(getattr(focal, name)))
                    self.mark(f"{path}.classification_loss.{which}.{name}", APPLIED,
                              f"task.losses.{key}")
        elif which == "weighted_sigmoid":
            self.set("task.losses.focal_loss_gamma", 0.0)
            self.set("task.losses.focal_loss_alpha", 0.5)
            self.mark(f"{path}.classification_loss", APPROXIMATED,
                      "Model Garden's RetinaNet always uses focal loss: gamma 0 and alpha 0.5 "
                      "make it sigmoid cross-entropy at half the weight")
        self.mark(f"{path}.localization_loss", APPROXIMATED,
                  "Model Garden's Huber loss on unscaled offsets, huber_loss_delta 0.1 (kept): "
                  "the same shape as delta 1.0 on the OD API's 10x-scaled offsets")
        cls, loc = loss.classification_weight, loss.localization_weight
        if cls > 0 and abs(loc / cls - 1.0) > 1e-6:
            self.set("task.losses.box_loss_weight", _f(50 * loc / cls))
            note = (f"task.losses.box_loss_weight {_f(50 * loc / cls)}: Model Garden's 50 for "
                    "its unscaled offsets, times localization_weight / classification_weight")
        else:
            note = ("Model Garden balances the losses with box_loss_weight 50 for its unscaled "
                    "offsets (kept)")
        self.mark(f"{path}.classification_weight", APPROXIMATED, note)
        self.mark(f"{path}.localization_weight", APPROXIMATED, note)

    def post_processing(self, post, path: str, converter: str,
                        generator: str = "task.model.detection_generator") -> None:
        nms = post.batch_non_max_suppression
        base = f"{path}.batch_non_max_suppression"
        for name, key in (("score_threshold", "pre_nms_score_threshold"),
                          ("iou_threshold", "nms_iou_threshold"),
                          ("max_total_detections", "max_num_detections")):
            if nms.HasField(name):
                value = getattr(nms, name)
                self.set(f"{generator}.{key}", _f(value) if isinstance(value, float) else value)
                self.mark(f"{base}.{name}", APPLIED, f"{generator}.{key}")
        self.mark(f"{base}.max_detections_per_class", IGNORED,
                  "Model Garden caps detections per image, not per class")
        name = post.ScoreConverter.Name(post.score_converter)
        self.mark(f"{path}.score_converter", APPLIED if name == converter else APPROXIMATED,
                  f"Model Garden's scores are {converter.lower()} probabilities")

    def faster_rcnn(self, config, prefix: str) -> None:
        extractor = config.feature_extractor
        if extractor.HasField("batch_norm_trainable"):
            self.set("task.model.backbone.resnet.bn_trainable", extractor.batch_norm_trainable)
            self.mark(f"{prefix}.feature_extractor.batch_norm_trainable", APPLIED,
                      "task.model.backbone.resnet.bn_trainable")
        grid = config.first_stage_anchor_generator.grid_anchor_generator
        path = f"{prefix}.first_stage_anchor_generator.grid_anchor_generator"
        if grid.aspect_ratios:
            self.set("task.model.anchor.aspect_ratios", [_f(r) for r in grid.aspect_ratios])
            self.mark(f"{path}.aspect_ratios", APPLIED, "task.model.anchor.aspect_ratios")
        self.mark(path, APPROXIMATED, "one anchor size per FPN level 2-6 (32 to 512 px) in "
                  "place of several scales of 256 px at stride 16 (64 to 512 px)")
        for name, keys in (
                ("first_stage_nms_score_threshold",
                 ("roi_generator.pre_nms_score_threshold",
                  "roi_generator.test_pre_nms_score_threshold")),
                ("first_stage_nms_iou_threshold",
                 ("roi_generator.nms_iou_threshold", "roi_generator.test_nms_iou_threshold")),
                ("first_stage_max_proposals",
                 ("roi_generator.num_proposals", "roi_generator.test_num_proposals"))):
            if config.HasField(name):
                value = getattr(config, name)
                for key in keys:
                    self.set(f"task.model.{key}", _f(value) if isinstance(value, float)
                             else value)
                self.mark(f"{prefix}.{name}", APPLIED,
                          " and ".join(f"task.model.{key}" for key in keys))
        for name, key in (("first_stage_localization_loss_weight", "rpn_box_weight"),
                          ("first_stage_objectness_loss_weight", "rpn_score_weight"),
                          ("second_stage_localization_loss_weight", "frcnn_box_weight"),
                          ("second_stage_classification_loss_weight", "frcnn_class_weight")):
            if config.HasField(name):
                self.set(f"task.losses.{key}", _f(getattr(config, name)))
                self.mark(f"{prefix}.{name}", APPLIED, f"task.losses.{key}")
        if config.HasField("initial_crop_size"):
            stride = config.maxpool_stride or 1
            crop = max(1, config.initial_crop_size // stride)
            self.set("task.model.roi_aligner.crop_size", crop)
            note = (f"task.model.roi_aligner.crop_size {crop}: Model Garden's ROIAlign crops "
                    f"{crop}x{crop} directly, where the OD API crops "
                    f"{config.initial_crop_size}x{config.initial_crop_size} and max-pools")
            for name in ("initial_crop_size", "maxpool_kernel_size", "maxpool_stride"):
                self.mark(f"{prefix}.{name}", APPROXIMATED, note)
        box = config.second_stage_box_predictor.mask_rcnn_box_predictor
        path = f"{prefix}.second_stage_box_predictor.mask_rcnn_box_predictor"
        if box.HasField("share_box_across_classes"):
            self.set("task.model.detection_head.class_agnostic_bbox_pred",
                     box.share_box_across_classes)
            self.mark(f"{path}.share_box_across_classes", APPLIED,
                      "task.model.detection_head.class_agnostic_bbox_pred")
        self.mark(f"{path}.use_dropout", APPLIED if not box.use_dropout else IGNORED,
                  "Model Garden's box head has no dropout")
        self.mark(f"{path}.dropout_keep_probability", IGNORED,
                  "Model Garden's box head has no dropout")
        self.post_processing(config.second_stage_post_processing,
                             f"{prefix}.second_stage_post_processing", "SOFTMAX")

    # --- train_config ------------------------------------------------------------------
    def train_config(self, kind: str) -> None:
        train = self.message.train_config
        if train.HasField("batch_size"):
            self.set("task.train_data.global_batch_size", train.batch_size)
            self.mark("train_config.batch_size", APPLIED, "task.train_data.global_batch_size")
        if train.num_steps:
            self.set("trainer.train_steps", train.num_steps)
            self.mark("train_config.num_steps", APPLIED,
                      "trainer.train_steps (--num-train-steps overrides it)")
        else:
            self.mark("train_config.num_steps", IGNORED, "0 trains forever in the OD API; "
                      "odapi needs a last step: pass --num-train-steps N")
        if train.HasField("max_number_of_boxes"):
            self.set("task.train_data.parser.max_num_instances", train.max_number_of_boxes)
            self.mark("train_config.max_number_of_boxes", APPLIED,
                      "task.train_data.parser.max_num_instances")
        self.optimizer(train.optimizer, "train_config.optimizer")
        self.augmentation(train, kind)
        self.fine_tune_checkpoint(train)

    def optimizer(self, optimizer, path: str) -> None:
        which = optimizer.WhichOneof("optimizer")
        if which is None:
            return
        config = getattr(optimizer, which)
        base = f"{path}.{which}"
        key = "trainer.optimizer_config.optimizer"
        if which == "momentum_optimizer":
            self.set(key, {"type": "sgd",
                           "sgd": {"momentum": _f(config.momentum_optimizer_value)}})
            self.mark(f"{base}.momentum_optimizer_value", APPLIED, f"{key}.sgd.momentum")
        elif which == "rms_prop_optimizer":
            self.set(key, {"type": "rmsprop", "rmsprop": {
                "momentum": _f(config.momentum_optimizer_value), "rho": _f(config.decay),
                "epsilon": _f(config.epsilon)}})
            self.mark(f"{base}.momentum_optimizer_value", APPLIED, f"{key}.rmsprop.momentum")
            self.mark(f"{base}.decay", APPLIED, f"{key}.rmsprop.rho")
            self.mark(f"{base}.epsilon", APPROXIMATED, f"{key}.rmsprop.epsilon; Keras adds it "
                      "outside the square root, TF1's RMSProp inside")
        else:
            self.set(key, {"type": "adam", "adam": {"epsilon": _f(config.epsilon)}})
            self.mark(f"{base}.epsilon", APPLIED, f"{key}.adam.epsilon")
        self.learning_rate(config.learning_rate, f"{base}.learning_rate")
        self.mark(f"{path}.use_moving_average",
                  IGNORED if optimizer.use_moving_average else APPLIED,
                  "odapi evaluates and exports the trained weights, not a moving average"
                  if optimizer.use_moving_average else "no moving average of the weights")

    def learning_rate(self, rate, path: str) -> None:
        which = rate.WhichOneof("learning_rate")
        if which is None:
            return
        config = getattr(rate, which)
        base = f"{path}.{which}"
        key = "trainer.optimizer_config"
        warmup: dict = {"type": None}
        if which == "constant_learning_rate":
            schedule = {"type": "constant",
                        "constant": {"learning_rate": _f(config.learning_rate)}}
            self.mark(f"{base}.learning_rate", APPLIED, f"{key}.learning_rate.constant")
        elif which == "exponential_decay_learning_rate":
            schedule = {"type": "exponential", "exponential": {
                "initial_learning_rate": _f(config.initial_learning_rate),
                "decay_steps": config.decay_steps, "decay_rate": _f(config.decay_factor),
                "staircase": config.staircase, "offset": config.burnin_steps}}
            for name in ("initial_learning_rate", "decay_steps", "staircase"):
                self.mark(f"{base}.{name}", APPLIED, f"{key}.learning_rate.exponential.{name}")
            self.mark(f"{base}.decay_factor", APPLIED,
                      f"{key}.learning_rate.exponential.decay_rate")
            if config.burnin_steps:
                warmup = {"type": "linear", "linear": {
                    "warmup_steps": config.burnin_steps,
                    "warmup_learning_rate": _f(config.burnin_learning_rate)}}
                self.mark(f"{base}.burnin_steps", APPROXIMATED, "a linear warmup from "
                          "burnin_learning_rate over burnin_steps, where the OD API holds it")
                self.mark(f"{base}.burnin_learning_rate", APPROXIMATED, "the warmup's start")
            self.mark(f"{base}.min_learning_rate", IGNORED,
                      "Model Garden's exponential decay has no floor")
        elif which == "cosine_decay_learning_rate":
            lead = config.warmup_steps + config.hold_base_rate_steps
            schedule = {"type": "cosine", "cosine": {
                "initial_learning_rate": _f(config.learning_rate_base),
                "decay_steps": max(1, config.total_steps - lead), "offset": lead}}
            if config.warmup_steps:
                warmup = {"type": "linear", "linear": {
                    "warmup_steps": config.warmup_steps,
                    "warmup_learning_rate": _f(config.warmup_learning_rate)}}
            self.mark(f"{base}.learning_rate_base", APPLIED,
                      f"{key}.learning_rate.cosine.initial_learning_rate")
            self.mark(f"{base}.total_steps", APPLIED, f"{key}.learning_rate.cosine.decay_steps"
                      " (after the warmup) and offset")
            for name in ("warmup_steps", "warmup_learning_rate"):
                self.mark(f"{base}.{name}", APPLIED, f"{key}.warmup.linear.{name}")
            self.mark(f"{base}.hold_base_rate_steps",
                      APPLIED if not config.hold_base_rate_steps else APPROXIMATED,
                      "the decay starts after it; Model Garden's cosine dips slightly while "
                      "holding")
        else:
            steps = [(s.step, _f(s.learning_rate)) for s in config.schedule]
            schedule = {"type": "stepwise", "stepwise": {
                "boundaries": [step for step, _ in steps],
                "values": [_f(config.initial_learning_rate)] + [lr for _, lr in steps]}}
            self.mark(f"{base}.initial_learning_rate", APPLIED,
                      f"{key}.learning_rate.stepwise.values[0]")
            self.mark(f"{base}.schedule", APPLIED,
                      f"{key}.learning_rate.stepwise.boundaries and values")
            self.mark(f"{base}.warmup", APPLIED if not config.warmup else IGNORED,
                      "Model Garden's stepwise schedule has no ramp to the first step's rate")
        self.set(f"{key}.learning_rate", schedule)
        self.set(f"{key}.warmup", warmup)

    def augmentation(self, train, kind: str) -> None:
        """The file's list replaces the base experiment's augmentation entirely."""
        parser = "task.train_data.parser"
        flip, scale_min, scale_max, crop = False, 1.0, 1.0, None
        for index, step in enumerate(train.data_augmentation_options):
            which = step.WhichOneof("preprocessing_step")
            path = f"train_config.data_augmentation_options[{index}].{which}"
            if which == "random_horizontal_flip":
                flip = True
                self.mark(path, APPLIED, f"{parser}.aug_rand_hflip")
            elif which == "random_scale_crop_and_pad_to_square":
                jitter = step.random_scale_crop_and_pad_to_square
                scale_min = min(scale_min, _f(jitter.scale_min))
                scale_max = max(scale_max, _f(jitter.scale_max))
                self.mark(f"{path}.scale_min", APPLIED, f"{parser}.aug_scale_min")
                self.mark(f"{path}.scale_max", APPLIED, f"{parser}.aug_scale_max")
                self.mark(f"{path}.output_size", APPLIED, "the input size comes from "
                          "image_resizer, which Model Garden's jitter crops or pads to")
            elif which == "ssd_random_crop" and kind != "faster_rcnn":
                crop = {"type": "ssd_random_crop"}
                self.mark(path, APPLIED, f"{parser}.aug_type ssd_random_crop: Model Garden's "
                          "SSD crop, the same seven crops as the OD API's default")
            elif which in ("ssd_random_crop", "random_crop_image"):
                area = step.random_crop_image.min_area if which == "random_crop_image" else 0.25
                zoom = _f(min(2.0, 1 / math.sqrt(max(area, 0.01))))
                scale_max = max(scale_max, zoom)
                self.mark(path, APPROXIMATED, f"scale jitter up to {zoom}x ({parser}."
                          f"aug_scale_max), which crops like a random crop of {area:g} of the "
                          "image or more")
        self.set(f"{parser}.aug_rand_hflip", flip)
        self.set(f"{parser}.aug_scale_min", scale_min)
        self.set(f"{parser}.aug_scale_max", scale_max)
        if kind != "faster_rcnn":
            self.set(f"{parser}.aug_type", crop)

    def fine_tune_checkpoint(self, train) -> None:
        path = "train_config.fine_tune_checkpoint"
        note = ("odapi restores what fits: backbone and decoder, or every part with the same "
                "class count")
        self.mark("train_config.fine_tune_checkpoint_type", APPROXIMATED, note)
        self.mark("train_config.from_detection_checkpoint", APPROXIMATED, note)
        if "init_checkpoint" in self.given:
            self.mark(path, IGNORED, f"replaced by --init-checkpoint "
                      f"{self.given['init_checkpoint']}")
            return
        value = train.fine_tune_checkpoint
        if not value:
            return
        found = find_path(value, self.bases)
        zoo = _zoo_checkpoint(value, found)
        if zoo:
            raise OdapiError(
                f"train_config.fine_tune_checkpoint {value!r} is {zoo}: its variables are laid "
                "out for the OD API's own model classes and do not map onto Model Garden "
                f"models. {self.checkpoint_hint}; downloads are listed in odapi's README "
                "(Fine-tune from a checkpoint)", where=self.where(path))
        if found is None:
            self.missing.append(self._missing(path, value))
            return
        self.set("task.init_checkpoint", found)
        self.result.init_checkpoint = found
        self.mark(path, APPLIED, "restored before the first step (odapi's --init-checkpoint)")

    # --- inputs and evaluation ---------------------------------------------------------
    def _missing(self, path: str, value: str) -> str:
        return f"  line {self.file.line_of(path)}: {path} = {value!r}"

    def _paths(self, reader, path: str) -> str | None:
        values = list(reader.tf_record_input_reader.input_path)
        found = []
        for value in values:
            hit = find_path(value, self.bases)
            if hit is None:
                self.missing.append(self._missing(f"{path}.tf_record_input_reader.input_path",
                                                  value))
            found.append(hit)
        return ",".join(f for f in found if f) if values and all(found) else None

    def inputs(self) -> None:
        train = self.message.train_input_reader
        key = "train_input_reader.tf_record_input_reader.input_path"
        if "train_data" in self.given:
            self.mark(key, IGNORED, f"replaced by --train-data {self.given['train_data']}")
        elif train.tf_record_input_reader.input_path:
            self.result.train_data = self._paths(train, "train_input_reader")
            self.set("task.train_data.input_path", self.result.train_data)
            self.mark(key, APPLIED, "task.train_data.input_path")
        self.mark("train_input_reader.shuffle", APPLIED if train.shuffle else IGNORED,
                  "Model Garden shuffles training examples")
        self.mark("train_input_reader.num_epochs", APPLIED if not train.num_epochs else IGNORED,
                  "training reads the records until the last step")
        self.mark("train_input_reader.sample_1_of_n_examples", IGNORED,
                  "odapi trains on every training example")

        label_maps = [("train_input_reader.label_map_path", train.label_map_path)]
        for index, reader in enumerate(self.message.eval_input_reader):
            prefix = f"eval_input_reader[{index}]"
            if index:
                self.mark(prefix, IGNORED, "odapi evaluates on the first eval_input_reader")
                continue
            label_maps.append((f"{prefix}.label_map_path", reader.label_map_path))
            key = f"{prefix}.tf_record_input_reader.input_path"
            if "val_data" in self.given:
                self.mark(key, IGNORED, f"replaced by --val-data {self.given['val_data']}")
            elif reader.tf_record_input_reader.input_path:
                self.result.val_data = self._paths(reader, prefix)
                self.set("task.validation_data.input_path", self.result.val_data)
                self.mark(key, APPLIED, "task.validation_data.input_path")
            self.mark(f"{prefix}.shuffle", APPLIED if not reader.shuffle else IGNORED,
                      "Model Garden reads validation examples in order")
            self.mark(f"{prefix}.num_epochs", APPLIED, "each validation example is evaluated "
                      "once")
            if reader.HasField("sample_1_of_n_examples"):
                self.result.eval_every_nth = max(1, reader.sample_1_of_n_examples)
                self.mark(f"{prefix}.sample_1_of_n_examples", APPLIED, "every Nth validation "
                          "example is written to the model dir and evaluated "
                          "(--sample-1-of-n-eval-examples overrides it)")
        self.label_map(label_maps)

    def label_map(self, label_maps: list[tuple[str, str]]) -> None:
        if "label_map" in self.given:
            for path, _ in label_maps:
                self.mark(path, IGNORED, f"replaced by --label-map {self.given['label_map']}")
            return
        chosen: tuple[str, str] | None = None
        for path, value in label_maps:
            if not value:
                continue
            found = find_path(value, self.bases)
            if found is None:
                self.missing.append(self._missing(path, value))
                continue
            if chosen is None:
                chosen = (path, found)
                self.mark(path, APPLIED, "odapi's label_map: class names and the class count")
            elif found != chosen[1]:
                from odapi.labelmap import LabelMap

                if LabelMap.read(Path(found)) != LabelMap.read(Path(chosen[1])):
                    raise OdapiError(f"{path} {value!r} differs from {chosen[0]}: training and "
                                     "evaluation must use the same label map",
                                     where=self.where(path))
                self.mark(path, APPLIED, f"the same classes as {chosen[0]}")
            else:
                self.mark(path, APPLIED, f"the same file as {chosen[0]}")
        if chosen:
            self.tree["label_map"] = chosen[1]
            self.result.label_map = chosen[1]

    def eval_config(self) -> None:
        evaluation = self.message.eval_config
        if evaluation.HasField("num_examples"):
            self.result.max_eval_examples = evaluation.num_examples
            self.mark("eval_config.num_examples", APPLIED, "at most this many validation "
                      "examples are evaluated (a sample is written to the model dir if fewer "
                      "than the records hold)")
        for index, metric in enumerate(evaluation.metrics_set):
            path = "eval_config.metrics_set"
            if metric == "coco_detection_metrics":
                fate, note = APPLIED, "odapi's COCO evaluation, with per-class AP"
            elif metric.startswith("pascal_voc") or metric.startswith("oid_"):
                fate, note = APPROXIMATED, "odapi reports COCO metrics: AP50 is the PASCAL VOC "\
                    "measure"
            else:
                fate, note = IGNORED, "odapi reports COCO metrics"
            if index == 0:
                self.mark(path, fate, note)
        self.mark("eval_config.use_moving_averages",
                  APPLIED if not evaluation.use_moving_averages else IGNORED,
                  "odapi evaluates the trained weights")
        if evaluation.HasField("batch_size"):
            self.set("task.validation_data.global_batch_size", evaluation.batch_size)
            self.mark("eval_config.batch_size", APPLIED,
                      "task.validation_data.global_batch_size")

    def trainer_defaults(self) -> None:
        """Loop and checkpoint cadence as odapi's presets have it (Model Garden's are COCO's)."""
        for key, value in (("steps_per_loop", 100), ("summary_interval", 100),
                           ("checkpoint_interval", 1000), ("max_to_keep", 5)):
            self.set(f"trainer.{key}", value)


def translate(path: Path, data: Path | None = None,
              given: dict[str, str] | None = None) -> Translation:
    """Parse and translate the pipeline.config at `path`.

    Relative paths in it are looked up beside the config, then in `data`. `given` names what
    the command line supplies instead (train_data, val_data, label_map, init_checkpoint):
    those fields are neither checked nor used.
    """
    file = read_pipeline_config(Path(path))
    bases = [Path(path).resolve().parent] + ([Path(data).resolve()] if data else [])
    result = _Translator(file, bases, dict(given or {})).translate()
    if result.label_map:
        from odapi.labelmap import LabelMap

        result.check_label_map(LabelMap.read(Path(result.label_map)), Path(result.label_map))
    return result
