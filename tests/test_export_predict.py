"""`odapi export` and `odapi predict`: a trained run becomes a model people can use."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from odapi.measure import TOLERANCE
from odapi.model_dir.checkpoints import checkpoint_step, list_checkpoints

from conftest import fresh_copy, run_odapi


@pytest.fixture(scope="module")
def run(trained_run) -> Path:
    """The shared run: 6 steps, evaluated at 3 and 6 (so `best` had a choice)."""
    return trained_run.model_dir


EVERY_FORMAT = ["saved_model", "model.onnx", "model.tflite", "model_fp16.tflite",
                "model_dynamic.tflite", "model_int8.tflite"]
PRECISION = {"model_fp16.tflite": "fp16", "model_dynamic.tflite": "dynamic",
             "model_int8.tflite": "int8"}  # the others float32


@pytest.fixture(scope="module")
def exported(learned_run, tmp_path_factory) -> Path:
    """The run that learned (conftest's `learned_run`), exported in every format: the
    SavedModel, ONNX, and builtin-op TFLite in float32, fp16, dynamic range and int8 (its
    outputs uint8)."""
    out = tmp_path_factory.mktemp("exports") / "detector"
    code, stdout, err = run_odapi("export", "--model-dir", learned_run, "--out", out, "--onnx",
                                  "--tflite", "--quantize", "int8", "fp16", "dynamic",
                                  "--int8-output", "uint8")
    assert code == 0, stdout + err
    (out.parent / "export-output.txt").write_text(stdout)
    return out


LOAD_WITHOUT_ODAPI = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    model = tf.saved_model.load(sys.argv[1])
    signature = model.signatures["serving_default"]
    result = {"signatures": sorted(model.signatures.keys()),
              "inputs": {k: [v.dtype.name, v.shape.as_list()]
                         for k, v in signature.structured_input_signature[1].items()},
              "outputs": {k: v.dtype.name for k, v in signature.structured_outputs.items()},
              "runs": []}
    for height, width in [(48, 64), (200, 300), (128, 128)]:
        image = np.random.default_rng(0).integers(0, 255, (1, height, width, 3), np.uint8)
        out = {k: v.numpy() for k, v in signature(inputs=tf.constant(image)).items()}
        result["runs"].append({k: [list(v.shape), float(v.min()), float(v.max())]
                               for k, v in out.items()})
    result["odapi_imported"] = any(m.startswith("odapi") for m in sys.modules)
    print(json.dumps(result))
""")


def test_saved_model_loads_with_plain_tensorflow(exported):
    result = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_ODAPI,
                             str(exported / "saved_model")],
                            capture_output=True, text=True, timeout=600, cwd="/")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert not found["odapi_imported"]
    assert found["signatures"] == ["serving_default"]
    assert found["inputs"] == {"inputs": ["uint8", [None, None, None, 3]]}
    assert found["outputs"] == {"detection_boxes": "float32", "detection_scores": "float32",
                                "detection_classes": "float32", "num_detections": "float32"}
    for run in found["runs"]:  # every image size goes in; boxes come out normalized
        boxes_shape, low, high = run["detection_boxes"]
        assert boxes_shape[0] == 1 and boxes_shape[2] == 4
        assert low >= 0.0 and high <= 1.0
        assert run["num_detections"][0] == [1]
        assert run["detection_classes"][1] >= 0 and run["detection_classes"][2] <= 3


def test_export_writes_label_map_manifest_and_readme_for_the_best_checkpoint(learned_run,
                                                                            exported):
    best = json.loads((learned_run / "eval" / "metrics.json").read_text())["best"]
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["checkpoint"] == best["checkpoint"]
    assert manifest["step"] == best["step"]
    label_map = (learned_run / "label_map.pbtxt").read_text()
    assert (exported / "label_map.pbtxt").read_text() == label_map
    readme = (exported / "README.md").read_text()
    assert "detection_boxes" in readme and "circle" in readme
    assert not list(exported.parent.glob(".detector.partial-*"))  # no staging left behind


def test_every_format_is_measured_and_the_table_lands_in_manifest_readme_and_output(exported):
    manifest = json.loads((exported / "manifest.json").read_text())
    models = {m["file"]: m for m in manifest["models"]}
    assert list(models) == EVERY_FORMAT
    assert manifest["measured_on"] == "12 validation images"  # all of the run's
    reference = models["saved_model"]
    assert reference["AP50"] >= 0.4 and reference["tolerance"] is None  # it learned
    for name in EVERY_FORMAT[1:]:
        model = models[name]
        assert model["tolerance"] == TOLERANCE[model["precision"]]
        assert model["precision"] == PRECISION.get(name, "float32")
        assert model["ms_per_image"] > 0
        assert model["size_mb"] == round((exported / name).stat().st_size / 2**20, 2)
    assert models["model_int8.tflite"]["size_mb"] < models["model.tflite"]["size_mb"] / 2
    assert models["model_fp16.tflite"]["size_mb"] < models["model.tflite"]["size_mb"] * 0.6
    assert models["model_dynamic.tflite"]["size_mb"] < models["model.tflite"]["size_mb"] / 2
    readme = (exported / "README.md").read_text()
    printed = (exported.parent / "export-output.txt").read_text()
    for name in EVERY_FORMAT:
        row = f"| {name}"
        assert row in readme and f"{models[name]['AP50']:.3f}" in readme
        assert name in printed
    assert "tensorflow/tensorflow#56058" in readme  # how to run the TFLite models right


def test_builtin_tflite_models_have_no_tensorflow_ops_and_run_without_tensorflow(exported,
                                                                              learned_run,
                                                                              tmp_path):
    """No Flex op in any builtin model; model.tflite and model_int8.tflite run in LiteRT in a
    process without TensorFlow, their outputs in the OD API's order and named by what they
    hold, and on a validation image find what the SavedModel finds, classes 0-based
    (label-map id minus one)."""
    from odapi.detectors import load_detector
    from odapi.letterbox import letterbox
    from odapi.measure import check_images
    from odapi.model_dir.manifest import load_run
    from odapi.tflite import fitting, operators

    for name in ("model.tflite", "model_fp16.tflite", "model_dynamic.tflite", "model_int8.tflite"):
        used = operators((exported / name).read_bytes())
        assert "TFLite_Detection_PostProcess" in used, name
        assert not [op for op in used if op.startswith("Flex")], (name, used)
    params, _, _ = load_run(learned_run)
    saved_model = load_detector(exported)
    image, reference = next(  # a validation image the SavedModel finds something on
        (image, found) for image, found in ((i.pixels, saved_model([i.pixels])[0])
                                            for i in check_images(params, None)[0])
        if (found["scores"] >= 0.6).any())
    fit, keep_aspect_ratio = fitting(params)
    canvas, _ = letterbox(image, fit, (128, 128), keep_aspect_ratio)
    np.save(tmp_path / "canvas.npy", canvas)
    result = subprocess.run([sys.executable, "-c", RUN_WITH_LITERT_ONLY, str(exported),
                             str(tmp_path / "canvas.npy")],
                            capture_output=True, text=True, timeout=600, cwd="/")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found.pop("tensorflow_imported") is False
    ours = [(int(c) - 1, float(s)) for c, s in zip(reference["classes"], reference["scores"],
                                                    strict=True)]
    for name, outputs in found.items():
        assert outputs["shapes"] == {"detection_boxes": [1, 100, 4], "detection_classes":
                                     [1, 100], "detection_scores": [1, 100],
                                     "num_detections": [1]}, name
        assert outputs["positions"] == [[output, output] for output in (  # the OD API's order
            "detection_boxes", "detection_classes", "detection_scores", "num_detections")], name
        assert set(outputs["types"].values()) == {  # --int8-output uint8
            "uint8" if name == "model_int8.tflite" else "float32"}, outputs["types"]
        theirs = outputs["detections"]  # (0-based class, score)
        for one, other in ((ours, theirs), (theirs, ours)):  # what one is sure of, the other
            for cls, score in (d for d in one if d[1] >= 0.6):  # finds too, in the same class
                assert any(c == cls and s >= 0.4 for c, s in other), (name, cls, score, other)


RUN_WITH_LITERT_ONLY = textwrap.dedent("""
    import json, sys
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    canvas = np.load(sys.argv[2])[None]
    found = {}
    for name in ("model.tflite", "model_int8.tflite"):
        interpreter = Interpreter(model_path=f"{sys.argv[1]}/{name}")
        detect = interpreter.get_signature_runner()
        by_index = {d["index"]: k for k, d in detect.get_output_details().items()}
        positions = [(by_index[d["index"]], d["name"]) for d in interpreter.get_output_details()]
        dtype = detect.get_input_details()["inputs"]["dtype"]  # uint8: scale 1, zero point 0
        out = detect(inputs=canvas.astype(np.float32) if dtype == np.float32 else
                     np.clip(np.rint(canvas), 0, 255).astype(dtype))
        found[name] = {"types": {k: str(v.dtype) for k, v in out.items()},
                       "positions": positions}
        for key, details in detect.get_output_details().items():  # uint8 outputs in int8's
            scale, zero_point = details["quantization"]
            if scale:
                out[key] = (out[key].astype(np.float32) - zero_point) * scale
        count = int(out["num_detections"][0])
        classes, scores = out["detection_classes"][0][:count], out["detection_scores"][0][:count]
        found[name].update({"shapes": {k: list(v.shape) for k, v in out.items()},
                            "detections": [(int(c), float(s)) for c, s in zip(classes, scores)]})
    found["tensorflow_imported"] = "tensorflow" in sys.modules
    print(json.dumps(found))
""")


def test_the_int8_model_computes_in_int8(exported):
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf((exported / "model_int8.tflite").read_bytes(), 0)
    graph = model.subgraphs[0]
    assert [graph.tensors[i].type for i in graph.inputs] == [schema.TensorType.UINT8]
    convolutions = [op for op in graph.operators if model.operatorCodes[op.opcodeIndex]
                    .builtinCode in (schema.BuiltinOperator.CONV_2D,
                                     schema.BuiltinOperator.DEPTHWISE_CONV_2D)]
    assert len(convolutions) > 10
    for op in convolutions:  # activations and weights int8, biases int32
        activations, weights, bias = (graph.tensors[i].type for i in op.inputs)
        assert (activations, weights, bias) == (schema.TensorType.INT8, schema.TensorType.INT8,
                                                schema.TensorType.INT32)
    outputs = {o.name.decode(): graph.tensors[o.tensorIndex] for o in
               model.signatureDefs[0].outputs}  # --int8-output uint8: their known ranges
    assert {name: (t.type, list(t.quantization.scale), list(t.quantization.zeroPoint))
            for name, t in outputs.items()} == {
        "detection_boxes": (schema.TensorType.UINT8, [pytest.approx(1 / 255)], [0]),
        "detection_scores": (schema.TensorType.UINT8, [pytest.approx(1 / 255)], [0]),
        "detection_classes": (schema.TensorType.UINT8, [1.0], [0]),
        "num_detections": (schema.TensorType.UINT8, [1.0], [0])}
    assert json.loads((exported / "manifest.json").read_text())["int8_output"] == "uint8"
    assert "uint8 in the int8 model (`--int8-output`)" in (exported / "README.md").read_text()


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_quantized_outputs_carry_the_float_outputs_within_half_a_step(exported, tmp_path,
                                                                      dtype):
    """The QUANTIZE operators --int8-output appends give, dequantized, what the float
    post-processing gave: boxes and scores within half of 1/255 (boxes past the input at its
    edge), classes and count exact."""
    from ai_edge_litert.interpreter import Interpreter

    from odapi.tflite import quantize_outputs

    floats = (exported / "model.tflite").read_bytes()
    canvas = np.random.default_rng(3).integers(0, 256, (1, 128, 128, 3)).astype(np.float32)
    found = {}
    for name, model in (("float32", floats), (dtype, quantize_outputs(floats, dtype))):
        detect = Interpreter(model_content=model, num_threads=1).get_signature_runner()
        out, details = detect(inputs=canvas), detect.get_output_details()
        assert {str(v.dtype) for v in out.values()} == {name}
        found[name] = {key: (value.astype(np.float32) - details[key]["quantization"][1])
                       * (details[key]["quantization"][0] or 1) for key, value in out.items()}
    expected, got = found["float32"], found[dtype]
    assert expected["num_detections"][0] > 0  # (on noise: 100 seen, scores low)
    for key in ("detection_boxes", "detection_scores"):
        assert np.abs(got[key] - np.clip(expected[key], 0, 1)).max() <= 0.5 / 255 + 1e-6
    for key in ("detection_classes", "num_detections"):
        np.testing.assert_array_equal(got[key], expected[key])


class DeadGate(tf.Module):
    """A squeeze-excitation block whose squeeze unit's ReLU never fires (as one did in a
    160-step demo run): its output is 0 on every calibration image."""

    @tf.function(input_signature=[tf.TensorSpec([1, 16, 16, 3], tf.float32)])
    def serve(self, images):
        features = tf.nn.relu(tf.nn.conv2d(images / 255, tf.fill([3, 3, 3, 8], 0.2), 1, "SAME"))
        pooled = tf.reduce_mean(features, [1, 2], keepdims=True)
        dead = tf.nn.relu(tf.nn.conv2d(pooled, -tf.ones([1, 1, 8, 1]), 1, "VALID") - 1)
        gate = tf.sigmoid(tf.nn.conv2d(dead, tf.ones([1, 1, 1, 8]), 1, "VALID") + 0.5)
        return {"features": features * gate}


RUN_IN_LITERT = textwrap.dedent("""
    import sys
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=sys.argv[1])  # XNNPACK, LiteRT's default delegate
    interpreter.allocate_tensors()
    given = interpreter.get_input_details()[0]
    scale, zero_point = given["quantization"]  # pixel 200 in the input's type
    pixel = round(200 / (scale or 1) + zero_point)
    interpreter.set_tensor(given["index"], np.full(given["shape"], pixel, given["dtype"]))
    interpreter.invoke()
    print(given["dtype"].__name__, interpreter.get_tensor(
        interpreter.get_output_details()[0]["index"]).mean())
""")


def requantization_scales(model: bytes) -> list[float]:
    """Each int8 convolution's input scale x weight scale / output scale, per channel."""
    from tensorflow.lite.python import schema_py_generated as schema

    flat = schema.ModelT.InitFromPackedBuf(model, 0)
    graph = flat.subgraphs[0]
    scales = []
    for op in graph.operators:
        if flat.operatorCodes[op.opcodeIndex].builtinCode in (
                schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D):
            given, weights, output = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
                                      graph.tensors[op.outputs[0]])
            scales += list(given.quantization.scale[0] * np.asarray(weights.quantization.scale)
                           / output.quantization.scale[0])
    assert scales
    return scales


@pytest.mark.parametrize("int8_io", ["uint8", "int8"])
def test_an_int8_model_with_an_activation_that_never_fired_runs_in_litert(tmp_path, int8_io):
    """Calibrated to [0, 0], that activation's scale made the next layer's requantization
    thousands of times what XNNPACK takes, and LiteRT crashed loading the model: its range
    is widened before quantizing, and the model runs and computes what the float one does,
    taking the input type asked for (--int8-io)."""
    from odapi.tflite import convert

    module = DeadGate()
    tf.saved_model.save(module, str(tmp_path / "source"),
                        signatures={"serving_default": module.serve})
    calibration = lambda: ([np.full((1, 16, 16, 3), level, np.float32)]  # noqa: E731
                           for level in (0, 64, 128, 192, 255))
    model = convert(tmp_path / "source", "int8", True, calibration, int8_io)
    (tmp_path / "int8.tflite").write_bytes(model)
    assert max(requantization_scales(model)) < 256  # what XNNPACK builds
    ran = subprocess.run([sys.executable, "-c", RUN_IN_LITERT, tmp_path / "int8.tflite"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr[-2000:]
    dtype, mean = ran.stdout.split()
    expected = module.serve(tf.fill([1, 16, 16, 3], 200.0))["features"].numpy().mean()
    assert dtype == int8_io and float(mean) == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("keep_aspect_ratio", [True, False])
def test_letterbox_feeds_the_model_as_model_garden_does(keep_aspect_ratio):
    """The TFLite input is the image as Model Garden's serving module prepares it (resized
    without antialiasing, top-left, padded), and boxes map back as its own do."""
    from official.vision.ops import preprocess_ops

    from odapi.data.boxes import in_original_image
    from odapi.letterbox import letterbox, to_image

    image = np.random.default_rng(0).integers(0, 256, (97, 203, 3), np.uint8)
    canvas, scales = letterbox(image, (120, 120), (128, 128), keep_aspect_ratio)
    theirs, info = preprocess_ops.resize_and_crop_image(
        tf.constant(image, tf.float32) - preprocess_ops.MEAN_RGB, [120, 120],
        padded_size=[128, 128], aug_scale_min=1.0, aug_scale_max=1.0,
        keep_aspect_ratio=keep_aspect_ratio)
    ours = canvas - np.array(preprocess_ops.MEAN_RGB, np.float32)
    assert np.abs(ours - theirs.numpy()).max() < 0.01  # float32 rounding of values to 255
    assert scales == pytest.approx(tuple(info.numpy()[2]))
    boxes = np.array([[0.1, 0.2, 0.5, 0.9], [0.0, 0.0, 1.0, 1.0]], np.float32)
    in_pixels = boxes * 128  # Model Garden's boxes are pixels of the (padded) input
    expected = in_original_image(tf.constant(in_pixels[None]), info[None]).numpy()[0]
    assert to_image(boxes, image.shape, canvas.shape, scales) == pytest.approx(expected,
                                                                              abs=1e-5)


def test_a_box_past_the_inputs_edge_is_clipped_to_nothing_as_the_saved_models_is():
    """The builtin TFLite model clips boxes to the input before its NMS, as Model Garden's
    generator does: a box wholly above the input ends as good as empty (the SavedModel gives
    it no height), not one input pixel high; a box across the edge keeps what is inside.
    (A learned model scored such a box 0.57; at a scale of 2.2 its pixel was 2.2 of the
    image's, and predict's TFLite and SavedModel detections no longer matched.) Tested on
    the clipping itself: no short training makes a model predict such boxes on purpose."""
    from official.vision.ops import box_ops

    from odapi.tflite import _clipped

    anchors = tf.constant([[[[10.0, 10.0, 42.0, 42.0]] * 2]])  # [1, H=1, W=2, 4]: one each
    flat = tf.reshape(anchors, [-1, 4])
    wanted = tf.constant([[-30.0, 20.0, -6.0, 60.0], [-8.0, 0.0, 24.0, 40.0]])
    raw = tf.reshape(box_ops.encode_boxes(wanted, flat), [1, 1, 2, 4])
    clipped = _clipped(raw, anchors, (128, 128), None)
    above, across = box_ops.decode_boxes(tf.reshape(clipped, [-1, 4]), flat).numpy()
    assert above[0] == pytest.approx(0.0, abs=1e-3) and above[2] - above[0] < 0.01, above
    assert above[[1, 3]] == pytest.approx([20.0, 60.0], abs=1e-3)
    assert across == pytest.approx([0.0, 0.0, 24.0, 40.0], abs=1e-3)


def test_an_export_of_a_run_whose_records_are_gone(run, tmp_path):
    """The SavedModel alone is still exported (said to be unmeasured); converted models,
    which are not declared done unchecked, stop the export before any work. Exported for
    encoded images, from the latest checkpoint: that step's evaluation comes along."""
    copy = fresh_copy(run, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    for split in ("train_data", "validation_data"):
        manifest["config"]["params"]["task"][split]["input_path"] = str(tmp_path / "gone-*")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = run_odapi("export", "--model-dir", copy, "--out", tmp_path / "lite",
                               "--tflite")
    assert code == 1 and "no images to measure the exported models on" in err, err
    assert "converting" not in err and not (tmp_path / "lite").exists()
    code, out, err = run_odapi("export", "--model-dir", copy, "--out", tmp_path / "export",
                               "--checkpoint", "latest", "--input-type", "image_bytes")
    assert code == 0, err
    assert "the SavedModel will not be measured" in err
    assert "## Not measured" in (tmp_path / "export" / "README.md").read_text()
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert manifest["models"] == []
    assert takes_strings(tmp_path / "export")
    assert manifest["checkpoint"] == list_checkpoints(copy)[-1]
    # the latest step was evaluated too: its evaluation (and best thresholds) come along
    evaluation = json.loads((copy / "eval" / "metrics.json").read_text())["evaluations"][-1]
    assert manifest["eval"]["step"] == evaluation["step"] == manifest["step"]
    assert manifest["eval"]["thresholds"] == evaluation["thresholds"]


def takes_strings(export: Path) -> bool:
    """The exported SavedModel's input is a batch of strings (image_bytes, tf_example)."""
    signature = tf.saved_model.load(str(export / "saved_model")).signatures["serving_default"]
    return signature.structured_input_signature[1]["inputs"].dtype == tf.string


def test_predict_writes_pictures_json_and_csv_and_survives_a_bad_image(exported, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i, size in enumerate([(100, 80), (160, 120)]):
        Image.new("RGB", size, (i * 90, 60, 200)).save(images / f"im{i}.jpg")
    (images / "broken.jpg").write_text("not an image")
    code, out, err = run_odapi("predict", "--model", exported, images, "--out", tmp_path / "out",
                               "--threshold", "0.0", "-q")
    assert code == 0, err
    assert "broken.jpg" in err and "cannot read it as an image" in err
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == \
        ["im0.jpg", "im1.jpg"]
    # what a model finds in flat colours says nothing; the contents are checked on shapes
    # (test_a_model_that_learned_finds_fresh_shapes_...)
    assert isinstance(json.loads((tmp_path / "out" / "detections.json").read_text()), list)
    header = (tmp_path / "out" / "detections.csv").read_text().splitlines()[0]
    assert header == "filename,width,height,class,score,xmin,ymin,xmax,ymax"
    assert "2 image(s)" in out


class FourBoxes(tf.Module):
    """A SavedModel with the export's signature that finds four boxes in any image: one in
    it; one along its bottom edge without height and one along its right edge without width,
    as boxes wholly in the letterbox's padding come out once clipped to the image; one along
    its top edge a hundred-thousandth high, as TFLite's boxes clipped to nothing come out."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8,
                                                name="inputs")])
    def serve(self, inputs):
        count = tf.shape(inputs)[0]
        boxes = tf.constant([[[0.1, 0.1, 0.5, 0.5], [1.0, 0.0, 1.0, 0.4], [0.2, 1.0, 0.6, 1.0],
                              [0.0, 0.2, 1e-5, 0.6]]])
        return {"detection_boxes": tf.tile(boxes, [count, 1, 1]),
                "detection_scores": tf.tile([[0.9, 0.8, 0.7, 0.6]], [count, 1]),
                "detection_classes": tf.ones([count, 4]),
                "num_detections": tf.fill([count], 4.0)}


def test_predict_leaves_out_boxes_without_area_in_the_image(tmp_path):
    """A box of no area finds nothing: predict does not list it."""
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"input_type": "image_tensor"}))
    (folder / "label_map.pbtxt").write_text("item {\n  id: 1\n  name: 'circle'\n}\n")
    module = FourBoxes()
    tf.saved_model.save(module, str(folder / "saved_model"),
                        signatures={"serving_default": module.serve})
    Image.new("RGB", (90, 60), (30, 60, 200)).save(tmp_path / "image.jpg")
    result = run_odapi("predict", "--model", folder, tmp_path / "image.jpg", "--out",
                       tmp_path / "out", "--threshold", "0.5", "-q")
    assert result.code == 0, result.text
    found = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert [(r["score"], r["bbox"]) for r in found] == [
        (pytest.approx(0.9), pytest.approx([9.0, 6.0, 36.0, 24.0]))]


def test_predict_keeps_a_picture_for_every_input_even_with_the_same_name(exported, tmp_path):
    """a/x.jpg, b/x.jpg and x.png each keep their own annotated picture, under their own
    name and folder below the inputs' common folder."""
    inputs = tmp_path / "photos"
    for name, colour in (("a/x.jpg", "red"), ("b/x.jpg", "blue"), ("x.png", "green")):
        (inputs / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (90, 70), colour).save(inputs / name)
    code, out, err = run_odapi("predict", "--model", exported, inputs, "--out", tmp_path / "out",
                               "-q")
    assert code == 0, err
    written = sorted(str(p.relative_to(tmp_path / "out" / "images"))
                     for p in (tmp_path / "out" / "images").rglob("*") if p.is_file())
    assert written == ["a/x.jpg", "b/x.jpg", "x.png"]
    # Most of each picture is its own input's colour; boxes and labels drawn on it are not.
    pixels = {name: np.asarray(Image.open(tmp_path / "out" / "images" / name).convert("RGB"))
              for name in written}
    assert (pixels["a/x.jpg"][..., 0] > 200).mean() > 0.5
    assert (pixels["b/x.jpg"][..., 2] > 200).mean() > 0.5
    assert (pixels["x.png"] == (0, 128, 0)).all(axis=-1).mean() > 0.5


def test_predict_on_a_folder_without_a_manifest_says_what_to_do(exported, tmp_path):
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "saved_model").symlink_to(exported / "saved_model")
    Image.new("RGB", (40, 30)).save(tmp_path / "a.jpg")
    code, out, err = run_odapi("predict", "--model", incomplete, tmp_path / "a.jpg", "--out",
                               tmp_path / "out")
    assert code == 1, err
    assert err.strip() == (f"error: {incomplete}: not a complete odapi export: manifest.json "
                           "is missing, which says what the model takes; export the run "
                           "again with `odapi export`")


def test_predict_threshold_best_needs_an_evaluated_export(exported, tmp_path):
    """An export of a checkpoint no evaluation saw (or made before odapi kept thresholds)."""
    old = tmp_path / "old-export"
    old.mkdir()
    for name in ("label_map.pbtxt", "model.tflite"):
        (old / name).symlink_to(exported / name)
    manifest = json.loads((exported / "manifest.json").read_text())
    (old / "manifest.json").write_text(json.dumps(dict(manifest, eval=None)))
    Image.new("RGB", (40, 30)).save(tmp_path / "a.jpg")
    code, out, err = run_odapi("predict", "--model", old / "model.tflite", tmp_path / "a.jpg",
                               "--out", tmp_path / "out", "--threshold", "best")
    assert code == 1, err
    assert err.strip() == (f"error: {old / 'manifest.json'}: the export has no evaluation to "
                           "take the best threshold from; evaluate the run (`odapi eval`), "
                           "export it again, or give --threshold a number")


def test_export_describes_the_checkpoint_it_exported_when_best_changes_meanwhile(run,
                                                                                 tmp_path):
    """An evaluation that records a new best while the export runs replaces best/: the export
    still reads the checkpoint it chose (pinned) and its manifest describes that one. (For
    tf.Example protos: measured on the validation images encoded as such.)"""
    from odapi.export import ExportOptions, export_model
    from odapi.model_dir.metrics import MetricsStore

    copy = fresh_copy(run, tmp_path)
    store = MetricsStore(copy)
    chosen = store.best()
    other = next(p for p in list_checkpoints(copy) if checkpoint_step(p) != chosen["step"])
    replaced = []

    def log(message: str) -> None:  # export logs once it has chosen, before it reads
        if message.startswith("exporting") and not replaced:
            entry = store.load()["evaluations"][0]
            better = dict(entry, step=1000, metrics=dict(entry["metrics"], AP=chosen["AP"] + 1))
            assert store.add(better, other)  # best/ now holds another checkpoint
            replaced.append(store.best())

    result = export_model(copy, tmp_path / "export", ExportOptions(input_type="tf_example"),
                          log=log)
    assert takes_strings(tmp_path / "export") and result.models[0].file == "saved_model"
    assert replaced and replaced[0]["checkpoint"] != chosen["checkpoint"]
    assert not Path(chosen["checkpoint"] + ".index").exists()  # gone from best/ meanwhile
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert manifest["step"] == result.step == chosen["step"]
    assert manifest["eval"] == chosen
    assert manifest["checkpoint"] == chosen["checkpoint"]
    assert not list(tmp_path.glob(".export.partial-*"))


def test_export_errors_say_what_to_do(run, tmp_path):
    unevaluated = tmp_path / "fresh-run"
    code, out, err = run_odapi("export", "--model-dir", run, "--out", tmp_path / "x", "--onnx",
                               "--input-type", "image_bytes")
    assert code == 1 and "export it with --input-type image_tensor" in err
    code, out, err = run_odapi("export", "--model-dir", run, "--out", tmp_path / "x",
                               "--quantize", "int4")
    assert code == 2 and "invalid choice: 'int4'" in err
    code, out, err = run_odapi("export", "--model-dir", run, "--out", tmp_path / "x",
                               "--quantize", "fp16", "--int8-output", "uint8")
    assert code == 1 and "add --quantize int8" in err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("keep")
    code, out, err = run_odapi("export", "--model-dir", run, "--out", tmp_path / "taken")
    assert code == 1 and "pass --overwrite" in err
    assert (tmp_path / "taken" / "file").read_text() == "keep"
    code, out, err = run_odapi("export", "--model-dir", unevaluated, "--out", tmp_path / "y")
    assert code == 1 and "manifest.json is missing" in err


@pytest.mark.parametrize("key, value, says", [
    ("num_classes", 300, "a 0-based class may reach 298"),
    ("max_num_detections", 256, "a count may reach 256")])
def test_eight_bit_outputs_refuse_what_eight_bits_cannot_hold(run, tmp_path, key, value, says):
    """Classes and the count come out whole in --int8-output's 8 bits: a model whose classes
    or detections go past 255 is refused before any work, saying what to keep."""
    copy = fresh_copy(run, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    model = manifest["config"]["params"]["task"]["model"]
    (model if key == "num_classes" else model["detection_generator"])[key] = value
    (copy / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = run_odapi("export", "--model-dir", copy, "--out", tmp_path / "x",
                               "--quantize", "int8", "--int8-output", "uint8")
    assert code == 1 and f"--int8-output uint8: {says}, more than 8 bits hold whole (255); " \
        "keep --int8-output float32" in err, err
    assert not (tmp_path / "x").exists()


def test_a_model_that_learned_finds_fresh_shapes_and_predict_agrees_with_eval(learned_run,
                                                                              exported,
                                                                              tmp_path):
    """The export of a run that learned, run on freshly generated images: it finds shapes
    (AP50 >= 0.4, the drill's floor), and the AP that predict --ground-truth
    reports is within 0.02 of `odapi eval` on the same images. `--threshold best` keeps, per
    class, the score with the best F1 in the exported checkpoint's evaluation; the confusion
    matrix holds every object and every kept detection; the PR curves give predict's AP."""
    assert run_odapi("demo-data", tmp_path / "fresh", "--count", "30", "--seed", "12345",
                     "--formats", "voc").code == 0
    assert run_odapi("convert", tmp_path / "fresh" / "voc", "--out", tmp_path / "fresh-records",
                     "--split", "val=1", "-q").code == 0

    code, predict_out, err = run_odapi("predict", "--model", exported,
                                       tmp_path / "fresh" / "images", "--out",
                                       tmp_path / "predictions", "--ground-truth",
                                       tmp_path / "fresh" / "voc", "--threshold", "best",
                                       "-q")
    assert code == 0, err
    chosen = json.loads((exported / "manifest.json").read_text())["eval"]["thresholds"]
    assert chosen["per_class"] and f"scored >= {chosen['score']:.2f} (circle " in predict_out
    predicted = json.loads((tmp_path / "predictions" / "metrics.json").read_text())["metrics"]
    model_dir = fresh_copy(learned_run, tmp_path)  # eval --val-data writes into the run
    best = json.loads((model_dir / "eval" / "metrics.json").read_text())["best"]["checkpoint"]
    code, out, err = run_odapi("eval", "--model-dir", model_dir, "--checkpoint", best,
                               "--val-data", str(tmp_path / "fresh-records" / "val-*.tfrecord"))
    assert code == 0, err
    evaluated_file = out.split("results in ")[1].split(")")[0]
    evaluated = json.loads(Path(evaluated_file).read_text())["evaluations"][-1]["metrics"]

    assert predicted["AP50"] >= 0.4, predicted  # it finds shapes
    results = json.loads((tmp_path / "predictions" / "detections.json").read_text())
    assert {r["file_name"] for r in results} == \
        {str(p) for p in (tmp_path / "fresh" / "images").glob("*.jpg")}
    rows = (tmp_path / "predictions" / "detections.csv").read_text().splitlines()[1:]
    # 62 detections at the chosen thresholds for the 30 images' 67 shapes in CI (AP50 0.81)
    assert len(rows) == int(predict_out.split("image(s), ")[1].split(" detection")[0]) >= 20
    assert abs(predicted["AP"] - evaluated["AP"]) <= 0.02, (predicted, evaluated)
    assert abs(predicted["AP50"] - evaluated["AP50"]) <= 0.02, (predicted, evaluated)

    confusion = json.loads((tmp_path / "predictions" / "confusion_matrix.json").read_text())
    counts = np.array(confusion["counts"])
    kept = [r.split(",")[3] for r in rows]
    assert counts[:, :-1].sum(axis=0).tolist() == [kept.count(c) for c in
                                                   confusion["labels"][:-1]]
    shapes = sum(len(ET.parse(f).findall("object"))
                 for f in (tmp_path / "fresh" / "voc").rglob("*.xml"))
    assert counts[:-1].sum() == shapes and np.trace(counts) >= 0.4 * shapes
    assert confusion["class_score_thresholds"] == chosen["per_class"]
    curves = json.loads((tmp_path / "predictions" / "pr_f1_curves.json").read_text())
    assert np.mean(curves["overall"]["precision_50"]) == pytest.approx(  # 4 places in JSON
        predicted["AP50"], abs=1e-4)
    assert Path(evaluated_file).with_name("pr_f1_curves.png").is_file()


@pytest.mark.parametrize("model", EVERY_FORMAT[1:])
def test_predict_takes_every_exported_model_and_finds_the_same_shapes(exported, model, tmp_path,
                                                                     fresh_shapes):
    """`predict --model FILE` with each exported model: COCO AP50 within that model's
    tolerance of the SavedModel's on the same fresh images, and (but dynamic and int8) the same
    detections: each one of score >= 0.1 has a twin in the other's, same class, IoU >= 0.8,
    score within 0.05, both ways; but where the other's list of an image was cut short by the
    model's 100 detections (it ends at 0.1 or above, not at the 0.05 threshold), not one
    scored below its lowest plus 0.05: a list ending at 0.104 cannot hold a twin of 0.101.
    (In CI, boxes wholly in the letterbox's padding, more in the SavedModel's lists than in
    TFLite's, filled one image's lists; the detectors now leave boxes of no area out.)
    (TFLite's post-processing op did not clip boxes to the input before its NMS, as Model
    Garden's does: boxes reaching past the input survived it, and a model that had learned
    less lost 0.03 AP50 as TFLite in CI.) fp16's rounded scores can tip
    NMS's choice between two boxes of nearly the same score (seen in CI: IoU 0.6 and 0.7, both
    scored 0.112 or 0.18): its twins overlap by NMS's threshold, 0.5, which no two boxes NMS
    kept do, and one in fifty may have none."""
    from odapi.predict import predict

    images, annotations, reference = fresh_shapes
    report = predict(exported / model, [images], tmp_path / "out", ground_truth=annotations,
                     progress=False, log=lambda _: None)
    precision = PRECISION.get(model, "float32")
    assert report.metrics["AP50"] >= reference.metrics["AP50"] - TOLERANCE[precision], \
        report.metrics
    if precision in ("dynamic", "int8"):  # 8-bit weights: near, not the same, detections
        return
    ours = _by_image(tmp_path / "out" / "detections.json")
    theirs = _by_image(reference.out / "detections.json")
    compared = sum(1 for _ in _comparable(ours, theirs))
    overlap = 0.5 if model == "model_fp16.tflite" else 0.8
    alone = _without_twins(ours, theirs, overlap) + _without_twins(theirs, ours, overlap)
    assert compared >= 100
    assert len(alone) <= (compared // 50 if model == "model_fp16.tflite" else 0), alone


def _by_image(detections_json: Path) -> dict[str, list]:
    found: dict[str, list] = {}
    for r in json.loads(detections_json.read_text()):
        x, y, w, h = r["bbox"]
        found.setdefault(r["file_name"], []).append(
            (r["category_id"], r["score"], np.array([y, x, y + h, x + w])))
    return found


def _comparable(ours: dict[str, list], theirs: dict[str, list]):
    """(image, detection) for each of ours of score >= 0.1 that their list of the image could
    hold: where it was cut short (its lowest score is 0.1 or more), above that score + 0.05."""
    for name, detections in ours.items():
        lowest = min((s for _, s, _ in theirs.get(name, [])), default=0.0)
        held = lowest + 0.05 if lowest >= 0.1 else 0.1
        for detection in detections:
            if detection[1] >= max(0.1, held):
                yield name, detection


def _without_twins(ours: dict[str, list], theirs: dict[str, list],
                   overlap: float) -> list[tuple]:
    """Our comparable detections without a twin in theirs: same class, IoU >= overlap (or
    within a pixel), score within 0.05."""
    from odapi.data.boxes import iou

    alone = []
    for name, (cls, score, box) in _comparable(ours, theirs):
        twins = [(1.0 if np.abs(box - b).max() <= 1 else iou(box, b), abs(score - s))
                 for c, s, b in theirs.get(name, []) if c == cls]
        if not any(shared >= overlap and apart <= 0.05 for shared, apart in twins):
            alone.append((Path(name).name, cls, round(score, 3), box.round(1).tolist()))
    return alone


@pytest.fixture(scope="module")
def fresh_shapes(exported, tmp_path_factory):
    """Fresh images with their VOC annotations, and the SavedModel's predictions on them."""
    from odapi.predict import predict

    root = tmp_path_factory.mktemp("fresh-shapes")
    assert run_odapi("demo-data", root / "data", "--count", "20", "--seed", "777",
                     "--formats", "voc").code == 0
    reference = predict(exported, [root / "data" / "images"], root / "saved_model",
                        ground_truth=root / "data" / "voc", progress=False, log=lambda _: None)
    return root / "data" / "images", root / "data" / "voc", reference


def test_a_runtime_that_dies_while_measuring_fails_the_export_and_is_named(run, tmp_path):
    """The process measuring model.tflite is killed (as the OOM killer would, or a fault in
    LiteRT: XNNPACK double-freed loading an int8 model, before tflite.MIN_RANGE): the export
    says which model's runtime died and keeps nothing."""
    from odapi.errors import OdapiError
    from odapi.export import ExportOptions, export_model

    killed, done = [], threading.Event()

    def kill_the_measuring_worker() -> None:  # the export's pool is this process's only one
        while not killed and not done.wait(0.05):
            for child in multiprocessing.active_children():
                os.kill(child.pid, signal.SIGKILL)
                killed.append(child.pid)

    def log(message: str) -> None:
        if message == "measuring model.tflite":
            threading.Thread(target=kill_the_measuring_worker, daemon=True).start()

    try:
        with pytest.raises(OdapiError) as error:
            export_model(run, tmp_path / "x", ExportOptions(tflite=True), log=log)
    finally:
        done.set()  # no killing into later tests
    assert killed
    assert "LiteRT crashed while running model.tflite on the check images" in str(error.value)
    assert "export again without that model" in str(error.value)
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.partial-*"))


def test_an_export_less_accurate_than_allowed_fails_with_the_table_and_keeps_nothing(
        learned_run, tmp_path):
    """int8 calibrated on images unlike the ones it sees (the run's training records swapped
    for gray pictures of the same shapes' sizes: as if another dataset had been converted into
    its records folder since) loses far more AP50 than int8's 0.05 (0.339 against the
    SavedModel's 0.754, seen): the export fails, naming the model and its loss, with the
    table and what to try, and keeps nothing. The float32 model beside it passes."""
    import dataclasses
    import io
    import itertools

    from odapi.data.examples import from_tf_example, to_tf_example
    from odapi.data.records import read_records, record_files

    copy = fresh_copy(learned_run, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    train = manifest["config"]["params"]["task"]["train_data"]
    gray = tmp_path / "gray-train-00000-of-00001.tfrecord"
    with tf.io.TFRecordWriter(str(gray)) as records:
        for serialized in itertools.islice(read_records(record_files(train["input_path"])), 4):
            example = from_tf_example(serialized)
            picture = io.BytesIO()
            Image.new("RGB", (example.width, example.height), (128, 128, 128)).save(picture,
                                                                                    "JPEG")
            records.write(to_tf_example(dataclasses.replace(example, encoded=picture.getvalue()))
                          .SerializeToString())
    train["input_path"] = str(gray)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = run_odapi("export", "--model-dir", copy, "--out", tmp_path / "x",
                               "--quantize", "int8")
    assert code == 1, out + err
    assert "an exported model is less accurate than allowed, so the export was not kept" in err
    failed = [line.strip() for line in err.splitlines() if "below the SavedModel's" in line]
    assert len(failed) == 1 and failed[0].startswith("model_int8.tflite: AP50 ") and \
        failed[0].endswith(f"(tolerance {TOLERANCE['int8']})"), err
    assert "AP50 vs SavedModel (allowed)" in err and "model.tflite " in err, err  # the table
    assert "try more --calibration-images, or leave that model out" in err, err
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.partial-*"))


def test_int8_calibrates_on_as_many_training_images_as_asked(run):
    """--calibration-images N: the first N of the run's training images, or all of them where
    it has fewer (36 here), each letterboxed to the model's input."""
    from odapi.model_dir.manifest import load_run
    from odapi.tflite import calibration_images

    params, _, _ = load_run(run)
    every = [canvas for (canvas,) in calibration_images(params, (128, 128), 100)()]
    three = [canvas for (canvas,) in calibration_images(params, (128, 128), 3)()]
    assert len(every) == 36 and len(three) == 3
    for canvas, first in zip(three, every, strict=False):
        assert canvas.shape == (1, 128, 128, 3) and np.array_equal(canvas, first)
    assert not np.array_equal(every[0], every[1])  # one image each, not the first again
