"""`odapi export`: a trained run becomes a SavedModel (and optionally TFLite) people can use.

The serving signature returns what TF Object Detection API users' inference code reads:
`detection_boxes` ([ymin, xmin, ymax, xmax], normalized to the original image),
`detection_scores`, `detection_classes` (label-map ids, float32 as in the OD API) and
`num_detections` (float32). Any image size goes in. Next to the model: the label map, the
export's manifest and a README of the signature. The export is written under a staging name and
renamed when complete; the checkpoint is pinned while it is read, so an evaluation that
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
from odapi.errors import OdapiError
from odapi.model_dir.checkpoints import (
    checkpoint_step,
    latest_checkpoint,
    pin_checkpoint,
    resolve_checkpoint,
)
from odapi.model_dir.manifest import load_run, now
from odapi.model_dir.metrics import MetricsStore
from odapi.saving import signatures_only

INPUT_TYPES = ("image_tensor", "image_bytes", "tf_example")
SAVED_MODEL, TFLITE, TFLITE_QUANTIZED = "saved_model", "model.tflite", "model_quantized.tflite"


@dataclass
class ExportResult:
    out: Path
    checkpoint: str
    step: int | None
    input_type: str
    tflite: list[Path] = field(default_factory=list)
    tflite_checks: dict[str, dict] = field(default_factory=dict)


def choose_checkpoint(model_dir: Path, which: str) -> tuple[str, dict | None]:
    """`best` (highest eval AP recorded by odapi eval), `latest`, or a path; with the
    evaluation that made it the best, for `best`."""
    if which == "best":
        best = MetricsStore(model_dir).best()
        if best is None:
            raise OdapiError("no evaluation is recorded, so there is no best checkpoint; run "
                             "`odapi eval` first or export with --checkpoint latest",
                             where=str(model_dir))
        return resolve_checkpoint(best["checkpoint"]), best
    if which == "latest":
        latest = latest_checkpoint(model_dir)
        if latest is None:
            raise OdapiError("the run has no checkpoint yet", where=str(model_dir))
        return latest, None
    return resolve_checkpoint(which), None


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


def _serving_module(params, input_type: str, batch_size: int | None):
    """Model Garden's DetectionModule with outputs in the OD API's form, for every model type."""
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
                                input_type=input_type)


def _readme(input_type: str, label_map, params, result_step, tflite: list[Path]) -> str:
    inputs = {
        "image_tensor": "`inputs`: uint8 tensor [batch, height, width, 3], any size (RGB)",
        "image_bytes": "`inputs`: string tensor [batch] of encoded JPEG or PNG images",
        "tf_example": "`inputs`: string tensor [batch] of serialized tf.train.Example "
                      "(image/encoded)",
    }[input_type]
    classes = "\n".join(f"| {i} | {n} |" for i, n in sorted(label_map.names_by_id.items()))
    size = params.task.model.input_size[:2]
    lite = "".join(f"\n- `{p.name}`" for p in tflite)
    tflite_text = (f"""
## TFLite
{lite}

Input: uint8 [1, {size[0]}, {size[1]}, 3], an RGB image resized to the model's input size.
Outputs: the same four tensors. The models use TensorFlow ops beyond TFLite's built-ins (Select
TF ops): the `tensorflow` Python package runs them as they are; on Android or iOS add the
Select TF ops runtime.
""" if tflite else "")
    return f"""# odapi export

A detector exported by odapi from step {result_step}. Load it without odapi:

```python
import tensorflow as tf
detect = tf.saved_model.load("saved_model").signatures["serving_default"]
out = detect(inputs=tf.constant(image[None], tf.uint8))  # image: uint8 [height, width, 3]
```

## Signature `serving_default`

{inputs}

| output | shape, dtype | meaning |
|---|---|---|
| `detection_boxes` | [batch, N, 4] float32 | [ymin, xmin, ymax, xmax] in [0, 1] of the image |
| `detection_scores` | [batch, N] float32 | confidence, highest first |
| `detection_classes` | [batch, N] float32 | label-map ids (see below) |
| `num_detections` | [batch] float32 | how many of the N rows are detections |

Boxes are relative to the image you pass in, whatever its size: the model resizes it to
{size[0]}x{size[1]} internally, keeping its aspect ratio, and maps its boxes back.
{tflite_text}
## Classes (`label_map.pbtxt`)

| id | name |
|---:|---|
{classes}
"""


def export_model(model_dir: Path, out: Path, checkpoint: str = "best",
                 input_type: str = "image_tensor", tflite: bool = False, quantize: bool = False,
                 overwrite: bool = False, log: Callable[[str], None] = print) -> ExportResult:
    from official.modeling import performance

    model_dir, out = Path(model_dir), Path(out)
    if input_type not in INPUT_TYPES:
        raise OdapiError(f"unknown input type {input_type!r}; choose {', '.join(INPUT_TYPES)}")
    if quantize and not tflite:
        raise OdapiError("--quantize applies to the TFLite model: add --tflite")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OdapiError("the export folder exists and is not empty; pass --overwrite to "
                         "replace it, or choose another --out", where=str(out))
    params, label_map, manifest = load_run(model_dir)
    performance.set_mixed_precision_policy("float32")  # export float32 weights and math
    params.override({"runtime": {"mixed_precision_dtype": "float32"}})

    with contextlib.ExitStack() as stack:  # the workspace goes, whatever happens
        workspace = stack.enter_context(PrivateFolder(out.parent, f".{out.name}.partial-"))
        pinned, prefix, evaluation = _pin_choice(stack, model_dir, checkpoint, workspace)
        log(f"exporting {prefix} ({input_type}) to {out}")
        result = ExportResult(out, prefix, checkpoint_step(prefix), input_type)
        staging = workspace / "export"
        staging.mkdir()
        _write_models(staging, params, pinned, result, tflite, quantize, model_dir, log)
        label_map.write(staging / "label_map.pbtxt")
        export_manifest = {
            "created": now(), "source_model_dir": str(model_dir.resolve()),
            "checkpoint": prefix, "step": result.step, "input_type": input_type,
            "input_size": list(params.task.model.input_size[:2]),
            "eval": evaluation, "tflite": result.tflite_checks, "run": manifest,
        }
        (staging / "manifest.json").write_text(json.dumps(export_manifest, indent=2,
                                                          default=str))
        (staging / "README.md").write_text(_readme(input_type, label_map, params, result.step,
                                                   [staging / p.name for p in result.tflite]))
        if out.exists():
            os.replace(out, workspace / "replaced")  # removed with the workspace
        os.replace(staging, out)
    return result


def _write_models(staging: Path, params, checkpoint: str, result: ExportResult, tflite: bool,
                  quantize: bool, model_dir: Path, log: Callable[[str], None]) -> None:
    """The SavedModel, and the TFLite models each checked against it, into `staging`."""
    import tensorflow as tf
    from official.core import export_base

    module = _serving_module(params, result.input_type, batch_size=None)
    with signatures_only():
        export_base.export(
            module, function_keys=[result.input_type],
            export_savedmodel_dir=str(staging / SAVED_MODEL), checkpoint_path=checkpoint,
            checkpoint=tf.train.Checkpoint(**module.model.checkpoint_items), timestamped=False,
            save_options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
    if not tflite:
        return
    from odapi.tflite import check_against_saved_model, convert_to_tflite, save_for_conversion

    variants = [(TFLITE, False)] + ([(TFLITE_QUANTIZED, True)] if quantize else [])
    fixed = _serving_module(params, "image_tensor", batch_size=1)
    tf.train.Checkpoint(**fixed.model.checkpoint_items).read(checkpoint).expect_partial()
    fixed_size = save_for_conversion(fixed, params, staging.parent / "tflite_source")
    reference = tf.saved_model.load(str(staging / SAVED_MODEL)).signatures["serving_default"]
    for name, quantized in variants:
        log(f"converting to TFLite{' (dynamic-range quantized)' if quantized else ''}")
        path = staging / name
        path.write_bytes(convert_to_tflite(fixed_size, quantized))
        check = check_against_saved_model(path, reference, params, model_dir, quantized,
                                          result.input_type)
        result.tflite.append(result.out / name)
        result.tflite_checks[name] = check
