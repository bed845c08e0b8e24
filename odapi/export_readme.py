"""The README an export carries: how to load each model without odapi, what goes in and comes
out, what each model measured, and the classes."""

from __future__ import annotations

INPUTS = {
    "image_tensor": "`inputs`: uint8 tensor [batch, height, width, 3], any size (RGB)",
    "image_bytes": "`inputs`: string tensor [batch] of encoded JPEG or PNG images",
    "tf_example": "`inputs`: string tensor [batch] of serialized tf.train.Example "
                  "(image/encoded)",
}


def _fitting_text(params, size: list[int]) -> str:
    fit = list(params.task.model.input_size[:2])
    if not params.task.train_data.parser.keep_aspect_ratio:
        how = f"resize (stretch) it to {fit[0]}x{fit[1]}"
    else:
        how = f"scale it to fit {fit[0]}x{fit[1]} keeping its aspect ratio"
    return (f"Prepare the image as the model was trained: {how}, with bilinear interpolation "
            "without antialiasing (`tf.image.resize`, OpenCV's `INTER_LINEAR`; PIL's "
            "antialiased resize cost 0.04 AP50 in a test), place it top-left in the "
            f"{size[0]}x{size[1]} input and fill the rest with the pixel (123.675, 116.28, "
            "103.53). Boxes come normalized to that input: scale them by the input's size "
            "over the resized image's to have them normalized to the image.")


def _tflite_section(result, params) -> str:
    from odapi.tflite import has_detection_postprocess

    if not result.tflite_input_size:
        return ""
    size = result.tflite_input_size
    names = [m.file for m in result.models if m.file.endswith(".tflite")]
    flex = any(n.startswith("model_flex") for n in names)
    load = (f'import tensorflow as tf  # its interpreter has the TF ops these models keep\n'
            f'detect = tf.lite.Interpreter(model_path="{names[0]}").get_signature_runner()'
            if flex and names else
            "from ai_edge_litert.interpreter import Interpreter  # pip install ai-edge-litert\n"
            'detect = Interpreter(model_path="model.tflite").get_signature_runner()')
    if has_detection_postprocess(params):
        shape = f"[1, {size[0]}, {size[1]}, 3]"
        outputs = "float32 in every model" if result.int8_output == "float32" else (
            f"float32, but {result.int8_output} in the int8 model (`--int8-output`): "
            "dequantize with the scale and zero point in each output's details: boxes and "
            "scores come in steps of 1/255, classes and the count whole")
        model = f"""Input `inputs`: {shape}: float32 pixel values 0-255 for float,
fp16 and dynamic models; for int8 models uint8 (or int8, `--int8-io`), quantized with the scale and
zero point in the input's details (1 and 0 for uint8: plain pixels). Outputs, {outputs},
in this order (as the OD API's TFLite detectors, for code that reads them by position):
`detection_boxes` [1, N, 4] ([ymin, xmin, ymax, xmax]), `detection_classes`,
`detection_scores` [1, N], `num_detections` [1]. Post-processing is TFLite's
`TFLite_Detection_PostProcess`, as in the OD API's TFLite detectors, with per-class NMS as the
SavedModel's, on boxes clipped first, as the SavedModel's are (to the model's input, padding
included; int8 models skip the clipping, which cost their boxes precision). Classes are
0-based: label-map id minus one. Boxes found wholly in the padding have no area once mapped
to the image and clipped to it: leave them out, as `odapi predict` does. Run the models on one
thread (the runtime's default): with 2 to N threads, that op's per-class NMS loses the class
whose index equals the thread count (tensorflow/tensorflow#56058)."""
    else:
        model = f"""Input `inputs`: uint8 [1, {size[0]}, {size[1]}, 3]. Outputs: the SavedModel's
four, classes as label-map ids; the model's own NMS runs as ordinary ops."""
    ops = ("They keep TensorFlow ops (Flex): the `tensorflow` package runs them; on Android "
           "or iOS add the Select TF ops runtime." if flex else
           "They use TFLite's builtin ops only: LiteRT (`ai-edge-litert`, formerly "
           "`tflite-runtime`) runs them without TensorFlow, and so do its delegates.")
    return f"""
## TFLite ({", ".join(f"`{n}`" for n in names)})

```python
{load}
out = detect(inputs=canvas[None])
```

{model}

{_fitting_text(params, size)}

{ops}
"""


def _onnx_section(result) -> str:
    if not any(m.file.endswith(".onnx") for m in result.models):
        return ""
    return """
## ONNX (`model.onnx`, opset 17)

```python
import onnxruntime
detect = onnxruntime.InferenceSession("model.onnx")
names = [output.name for output in detect.get_outputs()]
out = dict(zip(names, detect.run(None, {"inputs": image[None]})))
```

The same input and outputs as the SavedModel's signature: uint8 images of any size in, boxes
normalized to each image and label-map ids out.
"""


def _measured_section(result) -> str:
    from odapi.measure import table

    if not result.models:
        return "## Not measured\n\nThe run's records were gone when it was exported.\n"
    return f"""## Measured on {result.measured_on}

{table(result.models, markdown=True)}
"""


def readme(input_type: str, label_map, params, result) -> str:
    classes = "\n".join(f"| {i} | {n} |" for i, n in sorted(label_map.names_by_id.items()))
    fitting = "keeping its aspect ratio" if params.task.train_data.parser.keep_aspect_ratio \
        else "stretching it"
    size = params.task.model.input_size[:2]
    return f"""# odapi export

A detector exported by odapi from step {result.step}. Load it without odapi:

```python
import tensorflow as tf
detect = tf.saved_model.load("saved_model").signatures["serving_default"]
out = detect(inputs=tf.constant(image[None], tf.uint8))  # image: uint8 [height, width, 3]
```

Or run any of its models with odapi: `odapi predict --model FILE images/ --out predictions`.

## Signature `serving_default`

{INPUTS[input_type]}

| output | shape, dtype | meaning |
|---|---|---|
| `detection_boxes` | [batch, N, 4] float32 | [ymin, xmin, ymax, xmax] in [0, 1] of the image |
| `detection_scores` | [batch, N] float32 | confidence, highest first |
| `detection_classes` | [batch, N] float32 | label-map ids (see below) |
| `num_detections` | [batch] float32 | how many of the N rows are detections |

Boxes are relative to the image you pass in, whatever its size: the model resizes it to
{size[0]}x{size[1]} internally ({fitting}) and maps its boxes back.
{_onnx_section(result)}{_tflite_section(result, params)}
{_measured_section(result)}
AP50 and AP are COCO's; ms/image is the median on the machine that exported, one image at a
time. An export fails when a model's AP50 falls more below the SavedModel's than allowed.

## Classes (`label_map.pbtxt`)

| id | name |
|---:|---|
{classes}
"""
