"""An exported model, whatever its format, behind one call: uint8 RGB images in; boxes
normalized to each image, scores and label-map ids out, boxes without area in the image left out.

The SavedModel takes any image size and resizes inside. TFLite models take the model's
fixed input size: images are letterboxed here (`letterbox`) and boxes mapped back, and
quantized inputs and outputs are converted with the scales the model carries.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from odapi.errors import OdapiError
from odapi.labelmap import LabelMap
from odapi.letterbox import letterbox, to_image

SAVED_MODEL = "saved_model"


def export_folder(path: Path) -> Path:
    """The export folder of `path`: the folder itself, or the folder a model file is in."""
    path = Path(path)
    return path if path.is_dir() and path.name != SAVED_MODEL else path.parent


def read_manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        reason = "is missing" if isinstance(e, FileNotFoundError) else f"is unreadable ({e})"
        raise OdapiError(f"not a complete odapi export: manifest.json {reason}, which says "
                         "what the model takes; export the run again with `odapi export`",
                         where=str(folder)) from None


def load_detector(path: Path):
    """An `odapi export` folder (its SavedModel), or one of its models: saved_model/, a
    .tflite or the .onnx file. The label map and manifest are read from the export folder."""
    path = Path(path)
    folder = export_folder(path)
    model = folder / SAVED_MODEL if path == folder else path
    if path.suffix not in (".tflite", ".onnx") and not model.is_dir():
        raise OdapiError("not an odapi export (no saved_model/ inside) nor a model of one "
                         "(.tflite, .onnx); create one with `odapi export`", where=str(path))
    if not model.exists():
        raise OdapiError("no such model file", where=str(path))
    manifest = read_manifest(folder)
    label_map = LabelMap.read(folder / "label_map.pbtxt")
    if model.suffix == ".tflite":
        fit = manifest.get("input_size")
        return TFLiteDetector(model, label_map, tuple(fit) if fit else None,
                              manifest.get("keep_aspect_ratio", True))
    if model.suffix == ".onnx":
        return OnnxDetector(model, label_map)
    return SavedModelDetector(model, manifest.get("input_type", "image_tensor"), label_map)


def _results(outputs: dict, count: int, class_offset: int = 0) -> list[dict]:
    results = []
    for i in range(count):
        found = int(np.asarray(outputs["num_detections"]).reshape(-1)[i])
        results.append({"boxes": np.asarray(outputs["detection_boxes"][i][:found], np.float32),
                        "scores": np.asarray(outputs["detection_scores"][i][:found], np.float32),
                        "classes": np.rint(outputs["detection_classes"][i][:found]).astype(int)
                        + class_offset})
    return results


# A side shorter than this (normalized) is none: a hundredth of a pixel of a 100-pixel image.
# TFLite's boxes clipped to nothing keep a sliver (tflite._clipped), 1e-5 of the image or so.
NO_SIDE = 1e-4


def _on_the_image(result: dict) -> dict:
    """`result` without its boxes of no area in the image: boxes wholly in the padding around a
    letterboxed image or past its edges, clipped to the edge. They find nothing, and which of
    them a model keeps differs by format: the SavedModel clips to the image before its NMS,
    where a box of no area overlaps nothing and survives; the TFLite models clip to their
    padded input."""
    boxes = result["boxes"].reshape(-1, 4)
    keep = (boxes[:, 2] - boxes[:, 0] > NO_SIDE) & (boxes[:, 3] - boxes[:, 1] > NO_SIDE)
    return {key: value[keep] for key, value in result.items()}


def encoded_input(image: np.ndarray, input_type: str):
    """One image as the SavedModel's `inputs` for its input type (a batch of one)."""
    import tensorflow as tf

    if input_type == "image_tensor":
        return tf.constant(image[None])
    encoded = io.BytesIO()
    Image.fromarray(image).save(encoded, "PNG")  # lossless: the same pixels arrive
    if input_type == "image_bytes":
        return tf.constant([encoded.getvalue()])
    feature = {"image/encoded": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[encoded.getvalue()]))}
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return tf.constant([example.SerializeToString()])


class SavedModelDetector:
    """The export's SavedModel signature: any size, batches of one size at once."""

    def __init__(self, path: Path, input_type: str, label_map: LabelMap):
        import tensorflow as tf

        self.path, self.input_type, self.label_map = Path(path), input_type, label_map
        self.serve = tf.saved_model.load(str(path)).signatures["serving_default"]

    def __call__(self, images: list[np.ndarray]) -> list[dict]:
        """Detections for a batch of same-size uint8 RGB arrays."""
        import tensorflow as tf

        if self.input_type == "image_tensor":
            outputs = self.serve(inputs=tf.constant(np.stack(images)))
        else:
            outputs = self.serve(inputs=tf.concat(
                [encoded_input(image, self.input_type) for image in images], axis=0))
        return [_on_the_image(result) for result in
                _results({k: v.numpy() for k, v in outputs.items()}, len(images))]


class TFLiteDetector:
    """A .tflite model of an export, one image at a time at its input size. A builtin-op
    model runs in LiteRT, TFLite's runtime without TF ops; a Flex model in TensorFlow's
    interpreter, which has them. On one thread: with 2 to N threads, TFLite's per-class NMS
    drops the class whose index equals the thread count (tensorflow/tensorflow#56058, seen
    with LiteRT 2.3)."""

    def __init__(self, path: Path, label_map: LabelMap, fit: tuple[int, int] | None = None,
                 keep_aspect_ratio: bool = True):
        """`fit`: the size images are scaled to (the run's input size; the model's input,
        padded to its strides, when not given), keeping their aspect ratio or not, as the
        run's parser did."""
        from odapi.tflite import DETECTION_POSTPROCESS, operators

        self.path, self.label_map = Path(path), label_map
        self.keep_aspect_ratio = keep_aspect_ratio
        used = operators(self.path.read_bytes())
        self.class_offset = 1 if DETECTION_POSTPROCESS in used else 0  # 0-based classes
        if any(op.startswith("Flex") for op in used):
            import tensorflow as tf
            interpreter_class = tf.lite.Interpreter
        else:
            from ai_edge_litert.interpreter import Interpreter as interpreter_class
        with warnings.catch_warnings():  # TF 2.20 points at LiteRT, which lacks Flex
            warnings.simplefilter("ignore", UserWarning)
            interpreter = interpreter_class(model_path=str(path), num_threads=1)
        self.runner = interpreter.get_signature_runner()
        self.input = self.runner.get_input_details()["inputs"]
        self.outputs = self.runner.get_output_details()
        self.size = tuple(int(n) for n in self.input["shape"][1:3])
        self.fit = fit or self.size

    def _quantize(self, canvas: np.ndarray) -> np.ndarray:
        dtype = self.input["dtype"]
        if dtype == np.float32:
            return canvas
        scale, zero_point = self.input["quantization"]
        info = np.iinfo(dtype)
        quantized = np.rint(canvas / (scale or 1.0) + zero_point)
        return np.clip(quantized, info.min, info.max).astype(dtype)

    def _dequantize(self, name: str, values: np.ndarray) -> np.ndarray:
        scale, zero_point = self.outputs[name]["quantization"]
        if np.issubdtype(values.dtype, np.floating) or not scale:
            return values
        return (values.astype(np.float32) - zero_point) * scale

    def __call__(self, images: list[np.ndarray]) -> list[dict]:
        results = []
        for image in images:
            canvas, scales = letterbox(image, self.fit, self.size, self.keep_aspect_ratio)
            raw = self.runner(inputs=self._quantize(canvas)[None])
            outputs = {name: self._dequantize(name, value) for name, value in raw.items()}
            result = _results(outputs, 1, self.class_offset)[0]
            result["boxes"] = to_image(result["boxes"], image.shape, canvas.shape, scales)
            results.append(_on_the_image(result))
        return results


class OnnxDetector:
    """The ONNX model of an export in onnxruntime: any size, batches of one size at once."""

    def __init__(self, path: Path, label_map: LabelMap):
        import onnxruntime

        self.path, self.label_map = Path(path), label_map
        self.session = onnxruntime.InferenceSession(str(path),
                                                    providers=["CPUExecutionProvider"])
        self.names = [output.name for output in self.session.get_outputs()]

    def __call__(self, images: list[np.ndarray]) -> list[dict]:
        outputs = self.session.run(None, {"inputs": np.stack(images)})
        return [_on_the_image(result) for result in
                _results(dict(zip(self.names, outputs, strict=True)), len(images))]
