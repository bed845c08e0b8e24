"""`odapi export` and `odapi predict`: a trained run becomes a model people can use."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from odapi.model_dir.checkpoints import checkpoint_step, list_checkpoints

from conftest import fresh_copy, run_odapi


@pytest.fixture(scope="module")
def run(trained_run) -> Path:
    """The shared run: 6 steps, evaluated at 3 and 6 (so `best` had a choice)."""
    return trained_run.model_dir


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "detector"
    code, stdout, err = run_odapi("export", "--model-dir", run, "--out", out, "--tflite",
                                  "--quantize")
    assert code == 0, stdout + err
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


def test_export_writes_label_map_manifest_and_readme_for_the_best_checkpoint(run, exported):
    best = json.loads((run / "eval" / "metrics.json").read_text())["best"]
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["checkpoint"] == best["checkpoint"]
    assert manifest["step"] == best["step"]
    assert (exported / "label_map.pbtxt").read_text() == (run / "label_map.pbtxt").read_text()
    readme = (exported / "README.md").read_text()
    assert "detection_boxes" in readme and "circle" in readme
    assert not list(exported.parent.glob(".detector.partial-*"))  # no staging left behind


def test_tflite_outputs_match_the_saved_model(exported):
    manifest = json.loads((exported / "manifest.json").read_text())
    checks = manifest["tflite"]
    assert set(checks) == {"model.tflite", "model_quantized.tflite"}
    assert checks["model.tflite"]["max_score_difference"] <= 0.02
    # our own comparison, on an image the export did not check: float TFLite vs SavedModel
    signature = tf.saved_model.load(str(exported / "saved_model")).signatures["serving_default"]
    image = np.asarray(Image.new("RGB", (128, 128), (20, 120, 200)), np.uint8)[None]
    reference = {k: v.numpy() for k, v in signature(inputs=tf.constant(image)).items()}
    interpreter = tf.lite.Interpreter(model_path=str(exported / "model.tflite"))
    lite = interpreter.get_signature_runner()(inputs=image)
    top = np.argsort(-reference["detection_scores"][0])[:10]
    assert lite["detection_scores"][0][top] == pytest.approx(
        reference["detection_scores"][0][top], abs=1e-3)  # the stated tolerance, float model
    assert lite["detection_boxes"][0][top] == pytest.approx(
        reference["detection_boxes"][0][top], abs=1e-3)
    assert (exported / "model_quantized.tflite").stat().st_size < \
        (exported / "model.tflite").stat().st_size / 2


@pytest.mark.parametrize("input_type", ["image_bytes", "tf_example"])
def test_other_input_types(run, tmp_path, input_type):
    out = tmp_path / input_type
    code, stdout, err = run_odapi("export", "--model-dir", run, "--out", out, "--checkpoint",
                                  "latest", "--input-type", input_type)
    assert code == 0, err
    signature = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    assert signature.structured_input_signature[1]["inputs"].dtype == tf.string
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["checkpoint"] == list_checkpoints(run)[-1]


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
    # a model trained 6 steps finds nothing in flat colours; the contents are checked
    # with a run that learned (test_a_model_that_learned_finds_fresh_shapes_...)
    assert isinstance(json.loads((tmp_path / "out" / "detections.json").read_text()), list)
    header = (tmp_path / "out" / "detections.csv").read_text().splitlines()[0]
    assert header == "filename,width,height,class,score,xmin,ymin,xmax,ymax"
    assert "2 image(s)" in out


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
    colours = {name: Image.open(tmp_path / "out" / "images" / name).convert("RGB")
               .getpixel((45, 35)) for name in written}
    assert colours["a/x.jpg"][0] > 200 and colours["b/x.jpg"][2] > 200  # each its own image
    assert colours["x.png"] == (0, 128, 0)


def test_predict_on_a_folder_without_a_manifest_says_what_to_do(exported, tmp_path):
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "saved_model").symlink_to(exported / "saved_model")
    Image.new("RGB", (40, 30)).save(tmp_path / "a.jpg")
    code, out, err = run_odapi("predict", "--model", incomplete, tmp_path / "a.jpg", "--out",
                               tmp_path / "out")
    assert code == 1, err
    assert err.strip() == (f"error: {incomplete}: not a complete odapi export: manifest.json "
                           "is missing, which says what the SavedModel takes; export the run "
                           "again with `odapi export`")


def test_export_describes_the_checkpoint_it_exported_when_best_changes_meanwhile(run,
                                                                                 tmp_path):
    """An evaluation that records a new best while the export runs replaces best/: the export
    still reads the checkpoint it chose (pinned) and its manifest describes that one."""
    from odapi.export import export_model
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

    result = export_model(copy, tmp_path / "export", log=log)
    assert replaced and replaced[0]["checkpoint"] != chosen["checkpoint"]
    assert not Path(chosen["checkpoint"] + ".index").exists()  # gone from best/ meanwhile
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert manifest["step"] == result.step == chosen["step"]
    assert manifest["eval"] == chosen
    assert manifest["checkpoint"] == chosen["checkpoint"]
    assert not list(tmp_path.glob(".export.partial-*"))


def test_export_errors_say_what_to_do(run, tmp_path):
    unevaluated = tmp_path / "fresh-run"
    code, out, err = run_odapi("export", "--model-dir", run, "--out", tmp_path / "x", "--quantize")
    assert code == 1 and "--quantize applies to the TFLite model: add --tflite" in err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("keep")
    code, out, err = run_odapi("export", "--model-dir", run, "--out", tmp_path / "taken")
    assert code == 1 and "pass --overwrite" in err
    assert (tmp_path / "taken" / "file").read_text() == "keep"
    code, out, err = run_odapi("export", "--model-dir", unevaluated, "--out", tmp_path / "y")
    assert code == 1 and "manifest.json is missing" in err


def test_a_model_that_learned_finds_fresh_shapes_and_predict_agrees_with_eval(learned_run,
                                                                              tmp_path):
    """A run that learned (conftest's `learned_run`), exported, run on freshly generated
    images: it finds shapes (AP50 >= 0.4, the drill's floor; 0.70 measured), and the AP that
    predict --ground-truth reports is within 0.02 of `odapi eval` on the same images."""
    assert run_odapi("export", "--model-dir", learned_run, "--out", tmp_path / "export").code == 0
    assert run_odapi("demo-data", tmp_path / "fresh", "--count", "30", "--seed", "12345",
                     "--formats", "voc").code == 0
    assert run_odapi("convert", tmp_path / "fresh" / "voc", "--out", tmp_path / "fresh-records",
                     "--split", "val=1", "-q").code == 0

    code, predict_out, err = run_odapi("predict", "--model", tmp_path / "export",
                                       tmp_path / "fresh" / "images", "--out",
                                       tmp_path / "predictions", "--ground-truth",
                                       tmp_path / "fresh" / "voc", "-q")
    assert code == 0, err
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
    # 47 detections for the 30 images' 67 shapes when measured (AP50 0.70)
    assert len(rows) == int(predict_out.split("image(s), ")[1].split(" detection")[0]) >= 20
    assert abs(predicted["AP"] - evaluated["AP"]) <= 0.02, (predicted, evaluated)
    assert abs(predicted["AP50"] - evaluated["AP50"]) <= 0.02, (predicted, evaluated)
