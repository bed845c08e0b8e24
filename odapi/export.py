"""`odapi export`: a trained run becomes models people can deploy, each measured.

The SavedModel's serving signature returns what TF Object Detection API users' inference code
reads: `detection_boxes` ([ymin, xmin, ymax, xmax], normalized to the original image),
`detection_scores`, `detection_classes` (label-map ids, float32 as in the OD API) and
`num_detections` (float32). Any image size goes in. ONNX (`onnx_model`) and TFLite (`tflite`)
models are converted beside it, and every model is measured on the run's validation images
(`measure`) before the export is declared done. Next to the models: the label map, the
export's manifest and a README (`export_readme`). The export is written under a staging name
and renamed when complete; the checkpoint is pinned while it is read, so an evaluation that
replaces best/ meanwhile changes neither the weights exported nor what the manifest says.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from odapi.atomic import PrivateFolder
from odapi.data.boxes import in_original_image
from odapi.detectors import SAVED_MODEL
from odapi.errors import OdapiError
from odapi.export_readme import readme
from odapi.measure import Measurement
from odapi.model_dir.checkpoints import (
    checkpoint_step,
    latest_checkpoint,
    pin_checkpoint,
    resolve_checkpoint,
)
from odapi.model_dir.manifest import load_run, now
from odapi.model_dir.metrics import MetricsStore
from odapi.onnx_model import ONNX, convert_to_onnx
from odapi.saving import signatures_only

INPUT_TYPES = ("image_tensor", "image_bytes", "tf_example")


@dataclass
class ExportResult:
    out: Path
    checkpoint: str
    step: int | None
    input_type: str
    models: list[Measurement] = field(default_factory=list)  # the SavedModel's first
    measured_on: str = ""  # "12 validation images"
    tflite_input_size: list[int] | None = None  # [height, width] of the TFLite models' input
    int8_output: str = "float32"  # the int8 model's output type


def choose_checkpoint(model_dir: Path, which: str) -> tuple[str, dict | None]:
    """`best` (highest eval AP recorded by odapi eval), `latest`, or a path; with its
    evaluation's summary (None: its step was not evaluated)."""
    if which == "best":
        best = MetricsStore(model_dir).best()
        if best is None:
            raise OdapiError("no evaluation is recorded, so there is no best checkpoint; run "
                             "`odapi eval` first or export with --checkpoint latest",
                             where=str(model_dir))
        return resolve_checkpoint(best["checkpoint"]), best
    if which == "latest":
        prefix = latest_checkpoint(model_dir)
        if prefix is None:
            raise OdapiError("the run has no checkpoint yet", where=str(model_dir))
    else:
        prefix = resolve_checkpoint(which)
        if Path(prefix).parent.resolve() != Path(model_dir).resolve():
            return prefix, None  # another run's step numbers say nothing of this one's
    return prefix, MetricsStore(model_dir).summary_of(checkpoint_step(prefix))


def _pin_choice(stack: contextlib.ExitStack, model_dir: Path, which: str,
                folder: Path) -> tuple[str, str, dict | None]:
    """The chosen checkpoint pinned in `folder` for the export (pinned prefix, its own
    prefix, its evaluation): an evaluation that finds a new best replaces best/ meanwhile."""
    for _ in range(3):
        prefix, evaluation = choose_checkpoint(model_dir, which)
        try:
            return stack.enter_context(pin_checkpoint(prefix, folder)), prefix, evaluation
        except FileNotFoundError:
            continue  # replaced between reading metrics.json and pinning: choose again
    raise OdapiError(f"the {which} checkpoint kept changing while odapi read it; try again",
                     where=str(model_dir))


def _serving_module(params, input_type: str, batch_size: int | None, model=None):
    """Model Garden's DetectionModule with outputs in the OD API's form, for every model type;
    around `model` when given (built and restored once for every format), else a new one."""
    import tensorflow as tf
    from official.vision.serving import detection

    class OdApiDetectionModule(detection.DetectionModule):
        def serve(self, images):
            outputs = super().serve(images)
            return {
                "detection_boxes": in_original_image(outputs["detection_boxes"],
                                                     outputs["image_info"]),
                "detection_scores": outputs["detection_scores"],
                "detection_classes": tf.cast(outputs["detection_classes"], tf.float32),
                "num_detections": tf.cast(outputs["num_detections"], tf.float32),
            }

    return OdApiDetectionModule(params, batch_size=batch_size,
                                input_image_size=list(params.task.model.input_size[:2]),
                                input_type=input_type, model=model)


@dataclass
class ExportOptions:
    checkpoint: str = "best"  # best, latest or a checkpoint path
    input_type: str = "image_tensor"  # what the SavedModel takes
    tflite: bool = False  # the float TFLite model
    quantize: tuple[str, ...] = ()  # dynamic, fp16, int8: quantized TFLite models besides
    int8_io: str = "uint8"  # the int8 model's input type
    int8_output: str = "float32"  # the int8 model's output type: float32, uint8 or int8
    calibration_images: int = 100  # training images int8 calibrates its ranges on
    check_images: int | None = None  # validation images every model is measured on; None: all
    onnx: bool = False  # model.onnx, from the SavedModel

    def validate(self) -> None:
        from odapi.tflite import INT8_IO, INT8_OUTPUTS, QUANTIZATIONS

        if self.input_type not in INPUT_TYPES:
            raise OdapiError(f"unknown input type {self.input_type!r}; choose "
                             f"{', '.join(INPUT_TYPES)}")
        if self.onnx and self.input_type != "image_tensor":
            raise OdapiError("the ONNX model takes image tensors (tf2onnx has no image "
                             "decoding): export it with --input-type image_tensor")
        unknown = [q for q in self.quantize if q not in QUANTIZATIONS]
        if unknown or self.int8_io not in INT8_IO:
            raise OdapiError(f"unknown quantization {(unknown or [self.int8_io])[0]!r}; choose "
                             f"{', '.join(QUANTIZATIONS)} (int8 input: {', '.join(INT8_IO)})")
        if self.int8_output not in INT8_OUTPUTS:
            raise OdapiError(f"unknown int8 output type {self.int8_output!r}; choose "
                             f"{', '.join(INT8_OUTPUTS)}")
        if self.int8_output != "float32" and "int8" not in self.quantize:
            raise OdapiError(f"--int8-output {self.int8_output} is the int8 model's output "
                             "type: add --quantize int8")


def export_model(model_dir: Path, out: Path, options: ExportOptions | None = None,
                 overwrite: bool = False, log: Callable[[str], None] = print) -> ExportResult:
    """The SavedModel and the ONNX and TFLite models asked for, each measured on the run's
    validation images, written to `out` only once all are within tolerance of the
    SavedModel."""
    from official.modeling import performance

    options = options or ExportOptions()
    options.validate()
    model_dir, out = Path(model_dir), Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OdapiError("the export folder exists and is not empty; pass --overwrite to "
                         "replace it, or choose another --out", where=str(out))
    params, label_map, manifest = load_run(model_dir)
    _check_int8_possible(params, options)
    checked = _images_to_check(params, options, log)
    performance.set_mixed_precision_policy("float32")  # export float32 weights and math
    params.override({"runtime": {"mixed_precision_dtype": "float32"}})

    with contextlib.ExitStack() as stack:  # the workspace goes, whatever happens
        workspace = stack.enter_context(PrivateFolder(out.parent, f".{out.name}.partial-"))
        pinned, prefix, evaluation = _pin_choice(stack, model_dir, options.checkpoint,
                                                 workspace)
        log(f"exporting {prefix} ({options.input_type}) to {out}")
        result = ExportResult(out, prefix, checkpoint_step(prefix), options.input_type,
                              int8_output=options.int8_output)
        staging = workspace / "export"
        staging.mkdir()
        label_map.write(staging / "label_map.pbtxt")
        result.tflite_input_size = _write_models(staging, params, pinned, options, log)
        _measure_models(staging, checked, model_dir, options, label_map, result, log)
        export_manifest = {
            "created": now(), "source_model_dir": str(model_dir.resolve()),
            "checkpoint": prefix, "step": result.step, "input_type": options.input_type,
            "input_size": list(params.task.model.input_size[:2]),
            "keep_aspect_ratio": bool(params.task.train_data.parser.keep_aspect_ratio),
            "tflite_input_size": result.tflite_input_size,
            "int8_output": result.int8_output if "int8" in options.quantize else None,
            "eval": evaluation,
            "models": [m.as_dict() for m in result.models], "measured_on": result.measured_on,
            "run": manifest,
        }
        (staging / "manifest.json").write_text(json.dumps(export_manifest, indent=2,
                                                          default=str))
        (staging / "README.md").write_text(readme(options.input_type, label_map, params,
                                                  result))
        if out.exists():
            os.replace(out, workspace / "replaced")  # removed with the workspace
        os.replace(staging, out)
    return result


def _check_int8_possible(params, options: ExportOptions) -> None:
    from odapi.tflite import has_detection_postprocess

    if "int8" in options.quantize and not has_detection_postprocess(params):
        raise OdapiError(f"int8 is built for RetinaNet models (integer ops up to TFLite's "
                         f"detection post-processing), not {type(params.task.model).__name__} "
                         "models; use --quantize dynamic or fp16")
    if options.int8_output == "float32":
        return
    model = params.task.model
    largest = {"a 0-based class": model.num_classes - 2,
               "a count": model.detection_generator.max_num_detections}
    too_large = {what: value for what, value in largest.items() if value > 255}
    if too_large:
        what, value = next(iter(too_large.items()))
        raise OdapiError(f"--int8-output {options.int8_output}: {what} may reach {value}, "
                         "more than 8 bits hold whole (255); keep --int8-output float32")


def _write_models(staging: Path, params, checkpoint: str, options: ExportOptions,
                  log: Callable[[str], None]) -> list[int] | None:
    """The SavedModel, and the ONNX and TFLite models asked for, into `staging`; the TFLite
    models' input size."""
    import tensorflow as tf
    from official.core import export_base

    module = _serving_module(params, options.input_type, batch_size=None)
    with signatures_only():
        export_base.export(
            module, function_keys=[options.input_type],
            export_savedmodel_dir=str(staging / SAVED_MODEL), checkpoint_path=checkpoint,
            checkpoint=tf.train.Checkpoint(**module.model.checkpoint_items), timestamped=False,
            save_options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
    if options.onnx:
        log(f"converting to {ONNX}")
        convert_to_onnx(staging / SAVED_MODEL, staging / ONNX)
    if options.tflite or options.quantize:
        return _write_tflite(staging, params, module.model, options, log)
    return None


def _write_tflite(staging: Path, params, model, options: ExportOptions,
                  log: Callable[[str], None]) -> list[int]:
    """One source function saved once, converted for every precision asked for; RetinaNet's
    int8 model from a second one whose boxes are not clipped before NMS (tflite.py says why).
    `model` is the SavedModel's, restored: the TFLite sources trace it for one image."""
    from odapi import tflite

    fixed = _serving_module(params, "image_tensor", batch_size=1, model=model)
    source = int8_source = staging.parent / "tflite_source"
    if tflite.has_detection_postprocess(params):
        tflite.save_postprocess_source(fixed, params, source)
        if "int8" in options.quantize:
            int8_source = tflite.save_postprocess_source(
                fixed, params, staging.parent / "tflite_source_int8", clip_boxes=False)
    else:
        tflite.save_fixed_size_source(fixed, source)
    calibration = tflite.calibration_images(params, tflite.input_size(fixed),
                                            options.calibration_images) \
        if "int8" in options.quantize else None
    for quantize in (None, *dict.fromkeys(options.quantize)):
        log(f"converting to TFLite ({quantize or 'float32'})")
        model, flex = tflite.convert_model(int8_source if quantize == "int8" else source,
                                           quantize, calibration, options.int8_io,
                                           options.int8_output)
        name = tflite.tflite_name(quantize, flex)
        if flex:
            log(f"the converter could not express this model in TFLite's builtin ops: {name} "
                "keeps TensorFlow ops (Flex)")
        (staging / name).write_bytes(model)
    return list(tflite.input_size(fixed))


def _images_to_check(params, options: ExportOptions, log: Callable[[str], None]):
    """The images every model is measured on, with their split; None when the run's records
    are gone and only the SavedModel is asked for (converted models are not declared done
    unchecked: then the export stops here, before any work)."""
    from odapi import measure

    try:
        return measure.check_images(params, options.check_images)
    except OdapiError as e:
        if options.onnx or options.tflite or options.quantize:
            raise
        log(f"note: the SavedModel will not be measured: {e}")
        return None


def _measure_models(staging: Path, checked, model_dir: Path, options: ExportOptions,
                    label_map, result: ExportResult, log: Callable[[str], None]) -> None:
    """Every model measured on the `checked` images; raises with the table when one falls
    more than its tolerance below the SavedModel."""
    from odapi import measure
    from odapi.detectors import SavedModelDetector

    if checked is None:
        return
    others = [(staging / ONNX, "onnxruntime", "float32")] if (staging / ONNX).exists() else []
    for path in sorted(staging.glob("*.tflite"), key=_model_order):
        flex = path.name.startswith("model_flex")
        others.append((path, "TensorFlow Lite + Flex" if flex else "LiteRT", _precision(path)))
    images, split = checked
    result.measured_on = f"{len(images)} {split} images"
    log(f"measuring each model on {result.measured_on}")
    result.models.append(measure.measure(
        SavedModelDetector(staging / SAVED_MODEL, options.input_type, label_map),
        staging / SAVED_MODEL, images, "TensorFlow", "float32", sorted(label_map.names_by_id),
        reference=True))
    result.models += measure.measure_files(others, model_dir, options.check_images, log)
    failed = measure.failures(result.models)
    if failed:
        hint = "try more --calibration-images, or leave that model out" if any(
            "int8" in line.split(":")[0] for line in failed) else "leave that model out"
        raise OdapiError("an exported model is less accurate than allowed, so the export was "
                         "not kept:\n  " + "\n  ".join(failed) + "\n" + measure.table(
                             result.models) + f"\n{hint}")


def _precision(path: Path) -> str:
    stem = path.stem.removeprefix("model").removeprefix("_flex").lstrip("_")
    return stem or "float32"


def _model_order(path: Path) -> tuple:
    order = ("float32", "fp16", "dynamic", "int8")
    return path.name.startswith("model_flex"), order.index(_precision(path))
