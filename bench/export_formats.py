"""What each export format costs: the demo model exported in every format, side by side.

`configs/demo.yaml` trained --steps steps on the demo's data (340 synthetic training images,
60 held out), then `odapi export` with every format: the SavedModel, ONNX, and TFLite in
float32, fp16, dynamic-range and int8; then int8 again with 8-bit outputs. The export
measures each model itself (COCO AP50 and AP on the 60 held-out images, size, median latency
one image at a time on this CPU); this script publishes its table.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import arguments, describe, machine, publish  # noqa: E402


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--steps", type=int, default=300, help="training steps of the model")
    args = parser.parse_args()

    from odapi.data.convert import ConvertOptions
    from odapi.demo import DEMO_SPLIT
    from odapi.engine.job import TrainRequest, run_training
    from odapi.engine.length import Length
    from odapi.export import ExportOptions, export_model
    from odapi.measure import table
    from odapi.quiet import quiet_model_garden

    quiet_model_garden(False)
    work = args.work or Path(tempfile.mkdtemp(prefix="odapi-bench-export-"))
    model_dir = work / "model"
    if not (model_dir / "checkpoint").exists():
        run_training(TrainRequest(model_dir, config="demo", data=work / "data",
                                  demo_if_empty=True,
                                  reading=ConvertOptions(split=DEMO_SPLIT, progress=False),
                                  length=Length(steps=args.steps)),
                     log=lambda m: print(f"[train] {m}"), progress=False)
    options = ExportOptions(checkpoint="latest", tflite=True, onnx=True,
                            quantize=("fp16", "dynamic", "int8"))
    result = export_model(model_dir, work / "export", options, overwrite=True)
    eight_bit = export_model(model_dir, work / "export-uint8-outputs", ExportOptions(
        checkpoint="latest", quantize=("int8",), int8_output="uint8"), overwrite=True)
    (int8,) = [m for m in eight_bit.models if m.file == "model_int8.tflite"]

    info = machine()
    markdown = f"""## Export formats (`bench/export_formats.py`)

The demo model (`configs/demo.yaml`, {args.steps} steps on the demo's synthetic images)
exported in every format by one `odapi export`, which measured each model on the run's
{result.measured_on} (held out): COCO AP50 and AP, file size, and the median milliseconds
per image, one image at a time (TFLite on one thread, LiteRT's
default). The SavedModel and ONNX resize inside and take any size; TFLite takes the model's
input size, letterboxed. Tolerances are AP50 below the SavedModel's that would fail the
export.

Measured {describe(info)}.

{table(result.models, markdown=True)}

The int8 model with 8-bit outputs (`--int8-output uint8`: boxes and scores in steps of
1/255), from a second export of the same checkpoint (its latency measured apart from
the table's, so not comparable to it within a few ms): AP50 {int8.AP50:.3f}, AP {int8.AP:.3f},
{int8.ms_per_image:.1f} ms/image.
"""
    if not args.no_publish:
        publish("export_formats", markdown, {
            "machine": info, "steps": args.steps, "measured_on": result.measured_on,
            "models": [m.as_dict() for m in result.models],
            "int8_uint8_outputs": int8.as_dict()})
    print(markdown)


if __name__ == "__main__":
    main()
