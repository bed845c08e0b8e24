"""TFLite models of a run: builtin ops where the model allows it, quantized as asked.

RetinaNet models become builtin-op models ending in TFLite's own `TFLite_Detection_PostProcess`
(what the OD API's TFLite detectors end in): they run on the plain TFLite runtime (LiteRT),
its delegates and accelerators, without TensorFlow. Model Garden marks its TFLite
post-processing for the converter with `experimental_implements` (detection_generator.py);
odapi calls it without the background class, so classes come out as in the OD API's TFLite
models: 0-based, label-map id minus one. Other models (Faster R-CNN) are the SavedModel's
function at a fixed size, uint8 in, label-map ids out, their NMS in ordinary ops; builtin ops
where the converter can, else keeping TensorFlow ops (Flex), said in the file's name.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from odapi.data.records import read_records, record_files
from odapi.errors import OdapiError
from odapi.letterbox import letterbox
from odapi.saving import signatures_only

QUANTIZATIONS = ("dynamic", "fp16", "int8")
INT8_IO = ("uint8", "int8")
INT8_OUTPUTS = ("float32", *INT8_IO)
DETECTION_POSTPROCESS = "TFLite_Detection_PostProcess"


def has_detection_postprocess(params) -> bool:
    """RetinaNet models end in TFLite's detection post-processing op; others (Faster R-CNN)
    keep their own NMS, as ordinary ops."""
    from official.vision.configs import retinanet

    return isinstance(params.task.model, retinanet.RetinaNet)


def tflite_name(quantize: str | None, flex: bool) -> str:
    """model.tflite, model_int8.tflite, ...; model_flex*.tflite where TF ops remain."""
    return f"{'model_flex' if flex else 'model'}{'_' + quantize if quantize else ''}.tflite"


def input_size(module) -> tuple[int, int]:
    """The fixed input of the TFLite models: the model's (padded) input size."""
    height, width = module._padded_size  # Model Garden's DetectionModule's own size
    return int(height), int(width)


def _without_background(scores, anchors_per_location: int, num_classes: int):
    """One level's class logits [1, H, W, anchors * classes] without class 0 (background)."""
    import tensorflow as tf

    height, width = tf.shape(scores)[1], tf.shape(scores)[2]
    split = tf.reshape(scores, [1, height, width, anchors_per_location, num_classes])
    return tf.reshape(split[..., 1:], [1, height, width, anchors_per_location * (num_classes - 1)])


def _clipped(raw_boxes, anchors, size: tuple[int, int], weights):
    """One level's box encodings [1, H, W, anchors * 4] re-encoded after clipping the boxes
    they decode to to `size`, as Model Garden's generator clips before its NMS and the TFLite
    op does not: without it, boxes reaching past the input overlapped less, survived NMS, and
    cost a weak model 0.03 AP50 against its SavedModel. `size` is the area the image is fitted
    to: the image itself when stretched; letterboxed, it may take in padding on one side,
    where the SavedModel clips to the image (a fixed-size model knows no image's size)."""
    import tensorflow as tf
    from official.vision.ops import box_ops

    shape = tf.shape(raw_boxes)
    encoded, anchors = tf.reshape(raw_boxes, [-1, 4]), tf.reshape(anchors, [-1, 4])
    decoded = box_ops.decode_boxes(encoded, anchors, weights)
    limit = tf.constant([size[0], size[1], size[0], size[1]], tf.float32)
    clipped = tf.clip_by_value(decoded, 0.0, limit)
    # a box clipped to nothing keeps a thousandth of a pixel, as good as none (the SavedModel
    # gives it none), so its encoding, log(side / anchor's side), stays moderate; a whole pixel
    # made a box past the edge one input pixel high: 2.2 pixels of a larger image (seen)
    sides = tf.maximum(clipped[:, 2:] - clipped[:, :2], 1e-3)
    clipped = tf.concat([clipped[:, :2], clipped[:, :2] + sides], axis=1)
    return tf.reshape(box_ops.encode_boxes(clipped, anchors, weights), shape)


def save_postprocess_source(module, params, into: Path, clip_boxes: bool = True) -> Path:
    """`module`'s RetinaNet as the function the converter makes a builtin-op model of: float32
    pixels [1, H, W, 3] (0-255, letterboxed to the input size) in; boxes normalized to that
    input, 0-based classes, scores and a count out. Without `clip_boxes`, boxes reach NMS
    unclipped: for int8, where clipping cost the boxes their precision (the demo model's int8
    AP fell from 0.82 to 0.57, AP50 held; likely the boxes decoded to pixels far past the
    input, and their re-encodings, each quantized to 8 bits)."""
    import tensorflow as tf
    from official.vision.modeling.layers import detection_generator
    from official.vision.ops import preprocess_ops

    model, generator = module.model, params.task.model.detection_generator
    height, width = input_size(module)
    fit, _ = fitting(params)
    anchors = module._build_anchor_boxes()
    anchor = params.task.model.anchor
    per_location = anchor.num_scales * len(anchor.aspect_ratios)
    num_classes = params.task.model.num_classes
    post_processing = {  # per-class NMS, as the SavedModel's (REGULAR_NMS in README's terms)
        "max_detections": generator.max_num_detections, "max_classes_per_detection": 1,
        "use_regular_nms": True, "detections_per_class": generator.max_num_detections,
        "nms_score_threshold": generator.pre_nms_score_threshold,
        "nms_iou_threshold": generator.nms_iou_threshold,
        "normalize_anchor_coordinates": True, "input_image_size": [height, width]}

    @tf.function(input_signature=[tf.TensorSpec([1, height, width, 3], tf.float32,
                                                name="inputs")])
    def serve(images):
        images = (images - preprocess_ops.MEAN_RGB) / preprocess_ops.STDDEV_RGB
        features = model.backbone(images, training=False)
        if model.decoder:
            features = model.decoder(features, training=False)
        scores, boxes, _ = model.head(features, training=False)
        scores = {level: _without_background(s, per_location, num_classes)
                  for level, s in scores.items()}
        if clip_boxes:
            boxes = {level: _clipped(b, anchors[level], fit, generator.box_coder_weights)
                     for level, b in boxes.items()}
        boxes, classes, scores, count = detection_generator._generate_detections_tflite(
            boxes, scores, anchors, dict(post_processing), generator.box_coder_weights)
        return {"detection_boxes": boxes, "detection_classes": classes,
                "detection_scores": scores, "num_detections": count}

    _save(module, serve, into)
    return into


def save_fixed_size_source(module, into: Path) -> Path:
    """`module` (export's serving module at batch 1) at its input size, uint8 pixels in, its
    outputs the SavedModel's. (The converter given a concrete function saves the whole module
    itself for each variant: 125 s a variant against 40 s from this folder, measured.)"""
    import tensorflow as tf

    height, width = input_size(module)
    serve = tf.function(module.serve, input_signature=[
        tf.TensorSpec([1, height, width, 3], tf.uint8, name="inputs")])
    _save(module, serve, into)
    return into


def _save(module, serve, into: Path) -> None:
    import tensorflow as tf

    with signatures_only():
        tf.saved_model.save(module, str(into), signatures={"serving_default": serve},
                            options=tf.saved_model.SaveOptions(
                                experimental_custom_gradients=False))


def fitting(params) -> tuple[tuple[int, int], bool]:
    """The size images are scaled to before padding, and whether they keep their aspect ratio:
    what Model Garden's parser did in training and its serving module does."""
    height, width = params.task.model.input_size[:2]
    return (int(height), int(width)), bool(params.task.train_data.parser.keep_aspect_ratio)


def calibration_images(params, size: tuple[int, int], count: int) -> Callable[[], Iterator]:
    """Up to `count` training images as the model's input, for int8 calibration."""
    fit, keep_aspect_ratio = fitting(params)
    files = record_files(params.task.train_data.input_path)
    if not files:
        raise OdapiError("int8 quantization calibrates on the run's training images, and its "
                         "training records are gone", where=str(params.task.train_data.input_path))

    def images() -> Iterator[list[np.ndarray]]:
        from PIL import Image

        from odapi.data.examples import from_tf_example

        for index, serialized in enumerate(read_records(files)):
            if index == count:
                return
            picture = Image.open(io.BytesIO(from_tf_example(serialized).encoded)).convert("RGB")
            canvas, _ = letterbox(np.asarray(picture), fit, size, keep_aspect_ratio)
            canvas[0, 0], canvas[0, 1] = 0, 255  # the input's range is every pixel value
            yield [canvas[None]]

    return images


def convert_model(source: Path, quantize: str | None,
                  calibration: Callable[[], Iterator] | None = None,
                  int8_io: str = "uint8", int8_output: str = "float32") -> tuple[bytes, bool]:
    """The model in TFLite's builtin ops if the converter can express it, else keeping the
    TensorFlow ops it cannot (Flex); and whether it did. (Faster R-CNN at batch 1 converted
    to builtins, its NMS a WHILE loop.)"""
    try:
        return convert(source, quantize, True, calibration, int8_io, int8_output), False
    except OdapiError:
        if quantize == "int8":  # integer-only has no Flex form
            raise
        return convert(source, quantize, False, calibration, int8_io), True


def convert(source: Path, quantize: str | None, builtin: bool,
            calibration: Callable[[], Iterator] | None = None, int8_io: str = "uint8",
            int8_output: str = "float32") -> bytes:
    """The saved source function as a TFLite model, quantized as asked (Model Garden's recipes
    in official/vision/serving/export_tflite_lib.py); an int8 model's detection outputs in
    `int8_output`."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(source))
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if not builtin:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        converter.representative_dataset = calibration
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # Outputs are float32 here: TFLite_Detection_PostProcess computes in float, and the
        # converter's quantized outputs get calibrated ranges: a count quantized on 36
        # images' counts cannot exceed the largest of them (seen: 36), nor classes the
        # highest class calibration found. quantize_outputs gives them their known ranges.
        converter.inference_input_type = tf.dtypes.as_dtype(int8_io)
        converter._experimental_calibrate_only = True  # quantized below, its ranges widened
    converter.target_spec.supported_ops = ops
    try:
        model = converter.convert()
        if quantize == "int8":  # the converter's own last steps, on the widened ranges
            from tensorflow.lite.python.convert import (
                deduplicate_readonly_buffers,
                mlir_quantize,
            )

            model = deduplicate_readonly_buffers(mlir_quantize(
                widen_narrow_ranges(model), input_data_type=converter.inference_input_type,
                output_data_type=tf.float32))
    except Exception as e:  # the converter raises its own ConverterError
        raise OdapiError(f"TFLite conversion ({quantize or 'float'}) failed: "
                         f"{str(e).splitlines()[0]}") from None
    if quantize == "int8" and int8_output != "float32":
        model = quantize_outputs(model, int8_output)
    return in_detection_order(model)


# The narrowest range int8 gives an activation. A squeeze-excitation unit whose ReLU never fired
# on the calibration images calibrated to [0, 1e-38]: its quantized scale made the next
# requantization 3440x (XNNPACK takes below 256), and LiteRT's XNNPACK delegate crashed
# loading the model (a double free after it failed to create the operator). At 0.01 the step
# is 0.00004: an activation this narrow keeps its values, and its scale no longer dwarfs the
# next layer's.
MIN_RANGE = 0.01


def widen_narrow_ranges(calibrated: bytes) -> bytes:
    """The calibrated model (a float model holding each activation's min and max) with every
    range narrower than MIN_RANGE widened to it, zero kept inside, as the quantizer reads it."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(calibrated)
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            ranges = tensor.quantization
            if ranges is None or ranges.min is None or ranges.max is None or \
                    not len(ranges.min) or not len(ranges.max):
                continue
            low = np.minimum(np.asarray(ranges.min, np.float32), 0)
            ranges.max = np.maximum(np.asarray(ranges.max, np.float32), low + MIN_RANGE)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def operators(model: bytes) -> set[str]:
    """The operators a TFLite model uses: builtin names (CONV_2D, ...) and custom codes
    (TFLite_Detection_PostProcess; Flex ops are custom codes starting with Flex)."""
    from tensorflow.lite.python import schema_py_generated as schema

    names = {code: name for name, code in vars(schema.BuiltinOperator).items()
             if not name.startswith("_")}
    found = set()
    for code in schema.ModelT.InitFromPackedBuf(model, 0).operatorCodes:
        if code.customCode:
            found.add(code.customCode.decode())
        else:  # newer models put codes above 127 in builtinCode only
            found.add(names[max(code.builtinCode, code.deprecatedBuiltinCode)])
    return found


# Each output of TFLite_Detection_PostProcess as an 8-bit tensor: its range is known, not
# calibrated (a count calibrated on 36 images could not exceed the largest count they had).
# Boxes (normalized to the input) and scores in [0, 1], 255 steps; classes and the count whole.
# In the order of the OD API's TFLite detectors' outputs (in_detection_order).
OUTPUT_RANGES = {"detection_boxes": 1.0, "detection_classes": 255.0,
                 "detection_scores": 1.0, "num_detections": 255.0}


def quantize_outputs(model: bytes, dtype: str) -> bytes:
    """`model` with its detection outputs quantized to `dtype` (uint8 or int8) by QUANTIZE
    operators appended after TFLite_Detection_PostProcess, which computes in float: a range
    [0, R] in 255 steps, the scale and zero point in each output's details. Boxes reaching
    past the input end at its edge."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    unpacked = flatbuffer_utils.convert_bytearray_to_object(model)
    graph, outputs = _detection_outputs(unpacked)
    if graph is None:
        raise OdapiError(f"8-bit outputs are for the detection post-processing's four "
                         f"({', '.join(OUTPUT_RANGES)}), not {', '.join(sorted(outputs))}")
    code = _operator_code(unpacked, schema, schema.BuiltinOperator.QUANTIZE)
    tensor_type = schema.TensorType.UINT8 if dtype == "uint8" else schema.TensorType.INT8
    for name, output in outputs.items():
        floats = graph.tensors[output.tensorIndex]
        quantized = schema.TensorT()
        quantized.name, quantized.type = f"{_text(floats.name)}/quantized".encode(), tensor_type
        quantized.shape, quantized.shapeSignature = floats.shape, floats.shapeSignature
        quantized.buffer, quantized.quantization = 0, schema.QuantizationParametersT()
        quantized.quantization.scale = [OUTPUT_RANGES[name] / 255]
        quantized.quantization.zeroPoint = [0 if dtype == "uint8" else -128]
        graph.tensors.append(quantized)
        operator = schema.OperatorT()
        operator.opcodeIndex, operator.inputs = code, [output.tensorIndex]
        operator.outputs = [len(graph.tensors) - 1]
        operator.builtinOptionsType = schema.BuiltinOptions.QuantizeOptions
        operator.builtinOptions = schema.QuantizeOptionsT()
        graph.operators.append(operator)
        graph.outputs = [operator.outputs[0] if index == output.tensorIndex else index
                         for index in graph.outputs]
        output.tensorIndex = operator.outputs[0]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(unpacked))


def in_detection_order(model: bytes) -> bytes:
    """`model` with the post-processing's outputs in the OD API's order, boxes, classes,
    scores, count, and named as in its signature, for code that reads outputs by position
    (`get_output_details()[0]`, as the OD API's TFLite samples do); the converter put the
    count first, named StatefulPartitionedCall:3. Other models as they are."""
    from tensorflow.lite.tools import flatbuffer_utils

    unpacked = flatbuffer_utils.convert_bytearray_to_object(model)
    graph, outputs = _detection_outputs(unpacked)
    if graph is None:
        return model
    graph.outputs = [outputs[name].tensorIndex for name in OUTPUT_RANGES]
    for name, output in outputs.items():
        graph.tensors[output.tensorIndex].name = name.encode()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(unpacked))


def _detection_outputs(unpacked) -> tuple:
    """The serving signature's subgraph and its outputs by name, where they are the detection
    post-processing's four; else (None, the outputs)."""
    if not unpacked.signatureDefs:
        return None, {}
    signature = unpacked.signatureDefs[0]
    outputs = {_text(output.name): output for output in signature.outputs}
    if set(outputs) != set(OUTPUT_RANGES):
        return None, outputs
    return unpacked.subgraphs[signature.subgraphIndex], outputs


def _text(name: bytes | str) -> str:
    return name.decode() if isinstance(name, bytes) else name


def _operator_code(model, schema, builtin: int) -> int:
    """The index of `builtin`'s operator code in `model`, added if the model has none."""
    for index, code in enumerate(model.operatorCodes):
        if not code.customCode and max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1
