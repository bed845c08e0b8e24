"""The export's SavedModel as ONNX (tf2onnx), for onnxruntime (where odapi checks it) and other
ONNX runtimes: the same input (a batch of uint8 RGB images, any size) and the same four
outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from odapi.errors import OdapiError

ONNX = "model.onnx"
OPSET = 17  # onnxruntime 1.14 and later


def convert_to_onnx(saved_model: Path, out: Path) -> None:
    """tf2onnx's converter, in a process of its own: it loads and freezes the whole graph,
    and its memory goes back when it ends.

    Its graph optimizers run without the copy of the graph tf2onnx otherwise takes before
    each, to carry on without one that fails (TF2ONNX_CATCH_ERRORS=FALSE): the same model, a
    fifth sooner (67 s instead of 85 for the demo's). Only if that conversion fails is it run
    again the careful way."""
    result = _tf2onnx(saved_model, out, careful=False)
    if result.returncode != 0 or not out.is_file():
        result = _tf2onnx(saved_model, out, careful=True)
    if result.returncode != 0 or not out.is_file():
        errors = [line for line in result.stderr.splitlines() if "Error" in line]
        raise OdapiError("ONNX conversion (tf2onnx) failed: "
                         f"{(errors or result.stderr.splitlines() or ['no output'])[-1]}")


def _tf2onnx(saved_model: Path, out: Path, careful: bool) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_model),
               "--signature_def", "serving_default", "--opset", str(OPSET),
               "--output", str(out)]
    env = {name: value for name, value in os.environ.items() if name != "TF2ONNX_CATCH_ERRORS"}
    if not careful:
        env["TF2ONNX_CATCH_ERRORS"] = "FALSE"
    return subprocess.run(command, capture_output=True, text=True, check=False, env=env)
