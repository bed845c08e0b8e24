"""TFLite conversion of an export, checked against the SavedModel before it is declared done."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from odapi.data.boxes import iou
from odapi.data.examples import from_tf_example
from odapi.data.records import read_records, record_files
from odapi.errors import OdapiError
from odapi.saving import signatures_only

CHECK_IMAGES = 4
SCORE_FLOOR = 0.3  # detections compared: those either model scores at least this high
TOLERANCE = {False: {"score": 0.02, "iou": 0.9}, True: {"score": 0.1, "iou": 0.75}}


def save_for_conversion(module, params, into: Path) -> Path:
    """The serving function at the model's input size, batch 1, uint8 RGB in, saved into
    `into` once for every TFLite variant. (The converter given the concrete function saves the
    whole module itself, a traced copy of every Keras layer included, and loads it back, for
    each variant: 125 s a variant against 40 s from this folder, measured on the demo preset.)
    Signatures only, as export saves its SavedModel."""
    import tensorflow as tf

    height, width = params.task.model.input_size[:2]
    serve = tf.function(module.serve, input_signature=[
        tf.TensorSpec([1, height, width, 3], tf.uint8, name="inputs")])
    with signatures_only():
        tf.saved_model.save(module, str(into), signatures={"serving_default": serve},
                            options=tf.saved_model.SaveOptions(
                                experimental_custom_gradients=False))
    return into


def convert_to_tflite(saved_model: Path, quantized: bool) -> bytes:
    """`saved_model` (save_for_conversion's) as a TFLite model, dynamic-range quantized or not."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                           tf.lite.OpsSet.SELECT_TF_OPS]
    if quantized:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic-range quantization
    try:
        return converter.convert()
    except Exception as e:  # the converter raises its own ConverterError
        raise OdapiError(f"TFLite conversion failed: {str(e).splitlines()[0]}") from None


def _check_images(model_dir: Path, params) -> list[tuple[str, np.ndarray]]:
    """A few validation images, resized to the model's input size."""
    height, width = params.task.model.input_size[:2]
    images = []
    files = record_files(params.task.validation_data.input_path) or \
        record_files(params.task.train_data.input_path)
    for serialized in read_records(files[:1]):
        example = from_tf_example(serialized)
        picture = Image.open(io.BytesIO(example.encoded)).convert("RGB").resize((width, height))
        images.append((example.filename, np.asarray(picture, np.uint8)))
        if len(images) == CHECK_IMAGES:
            break
    if not images:
        raise OdapiError("no images to check the TFLite model on (the run's records are gone)",
                         where=str(model_dir))
    return images


def _detections(outputs: dict) -> list[tuple[int, float, np.ndarray]]:
    count = int(np.asarray(outputs["num_detections"]).reshape(-1)[0])
    boxes = np.asarray(outputs["detection_boxes"])[0][:count]
    scores = np.asarray(outputs["detection_scores"])[0][:count]
    classes = np.asarray(outputs["detection_classes"])[0][:count]
    return [(int(c), float(s), b) for c, s, b in zip(classes, scores, boxes, strict=True)]


def _saved_model_input(image: np.ndarray, input_type: str):
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


def check_against_saved_model(tflite_path: Path, serve, params, model_dir: Path,
                              quantized: bool, input_type: str = "image_tensor") -> dict:
    """Every detection either model scores >= 0.3 has a twin in the other: same class, boxes
    overlapping by the tolerance's IoU, scores within its difference. Raises when not.
    `serve` is the SavedModel's serving signature, loaded once for every variant."""
    import tensorflow as tf

    tolerance = TOLERANCE[quantized]
    with warnings.catch_warnings():  # TF 2.20 points at LiteRT, whose wheel lacks Select TF ops
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(tflite_path))
    runner = interpreter.get_signature_runner()
    worst = {"score_difference": 0.0, "iou": 1.0, "compared": 0}
    for name, image in _check_images(model_dir, params):
        reference = _detections(serve(inputs=_saved_model_input(image, input_type)))
        lite = _detections(runner(inputs=image[None]))
        for ours, theirs, side in ((reference, lite, "TFLite"), (lite, reference, "SavedModel")):
            for cls, score, box in (d for d in ours if d[1] >= SCORE_FLOOR):
                twins = [(abs(score - s), iou(box, b)) for c, s, b in theirs if c == cls]
                best = max(twins, key=lambda t: t[1], default=None)
                if best is None or best[1] < tolerance["iou"] or \
                        best[0] > tolerance["score"]:
                    raise OdapiError(
                        f"the TFLite model disagrees with the SavedModel on {name}: a class "
                        f"{cls} detection (score {score:.3f}) has no match in the {side} "
                        f"output within score +-{tolerance['score']} and IoU >= "
                        f"{tolerance['iou']}; the .tflite file was not kept")
                worst["score_difference"] = max(worst["score_difference"], best[0])
                worst["iou"] = min(worst["iou"], best[1])
                worst["compared"] += 1
    return {"images": CHECK_IMAGES, "tolerance": tolerance, "compared": worst["compared"],
            "max_score_difference": float(worst["score_difference"]),
            "min_iou": float(worst["iou"])}
