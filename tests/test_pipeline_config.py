"""OD API pipeline.config files: parsed with odapi's schema, trained, explained, converted.

tests/data/pipeline_configs holds the tutorial's config (paths and num_classes filled in), one
config per OD API TF2 sample family written out again in the same format (placeholders left
in, as users download them), and errors/: the tutorial's config with one mistake each. Their
relative paths point into the records folder the tests pass with --data.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import tensorflow as tf
import yaml

from odapi.data.examples import from_tf_example
from odapi.data.records import read_records
from odapi.engine.pipeline_config.reading import read_pipeline_config
from odapi.model_dir.checkpoints import list_checkpoints

from conftest import FAST

CONFIGS = Path(__file__).parent / "data" / "pipeline_configs"
TUTORIAL = CONFIGS / "tutorial.config"
FIELDS_OF_THE_TUTORIAL = 78


@pytest.fixture(scope="module")
def records(records, tmp_path_factory) -> Path:
    """A copy of the session's records (conftest: shapes, 3 classes, 36 train and 12 val) plus
    baseline/ckpt-1: a Model Garden checkpoint of the tutorial config's architecture, which its
    fine_tune_checkpoint names. A copy: the session's folder is shared, and no test adds to it."""
    from official.core import task_factory

    from odapi.engine.config import resolve

    folder = tmp_path_factory.mktemp("pipeline-data") / "records"
    shutil.copytree(records, folder)
    run = resolve(TUTORIAL, data=folder, init_checkpoint="unused",
                  sets=["task.model.input_size=[128,128,3]"])
    model = task_factory.get_task(run.params.task).build_model()
    tf.train.Checkpoint(**model.checkpoint_items).write(str(folder / "baseline" / "ckpt-1"))
    return folder


def line_of(path: Path, needle: str) -> int:
    """The first line outside comments that holds `needle`."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1)
                if needle in line.split("#", 1)[0])


def yaml_part(output: str) -> dict:
    """The experiment YAML that `config explain` prints after its table."""
    return yaml.safe_load(output.split("fully resolved):\n", 1)[1])


@pytest.mark.slow
def test_the_tutorial_config_trains_evaluates_and_samples_validation(odapi, records, tmp_path):
    model_dir = tmp_path / "model"
    result = odapi("train", "--config", TUTORIAL, "--data", records, "--model-dir", model_dir,
                   "--num-train-steps", "3", "--eval-every", "3",
                   "--sample-1-of-n-eval-examples", "2", *FAST)
    assert result.code == 0, result.text
    assert [Path(p).name for p in list_checkpoints(model_dir)] == ["ckpt-3"]
    evaluations = json.loads((model_dir / "eval" / "metrics.json").read_text())["evaluations"]
    assert [e["step"] for e in evaluations] == [3]
    assert {"circle", "square", "triangle"} <= set(evaluations[0]["per_class"])
    assert "no Inception backbone" in result.err  # the approximation is said, not hidden

    manifest = json.loads((model_dir / "manifest.json").read_text())
    config = manifest["config"]
    assert config["experiment"] == "retinanet_mobile_coco" and config["source"] == str(TUTORIAL)
    params = config["params"]
    model = params["task"]["model"]
    assert model["backbone"]["type"] == "mobilenet"
    assert model["backbone"]["mobilenet"]["model_id"] == "MobileNetV2"
    assert model["decoder"]["type"] == "fpn" and model["num_classes"] == 4
    assert model["input_size"] == [128, 128, 3]  # --set still wins over the translation
    assert model["anchor"]["aspect_ratios"] == [1.0, 2.0, 0.5, 3.0, 0.3333]
    assert model["norm_activation"]["activation"] == "relu6"
    parser = params["task"]["train_data"]["parser"]
    assert parser["aug_rand_hflip"] and parser["aug_type"]["type"] == "ssd_random_crop"
    optimizer = params["trainer"]["optimizer_config"]
    assert optimizer["optimizer"]["type"] == "rmsprop"
    assert optimizer["learning_rate"]["exponential"]["initial_learning_rate"] == 0.004
    assert optimizer["learning_rate"]["exponential"]["decay_rate"] == 0.95
    assert params["trainer"]["train_steps"] == 3  # --num-train-steps over num_steps: 400000
    assert manifest["init"]["restored"] == ["backbone", "decoder"]  # fine_tune_checkpoint
    assert manifest["init"]["checkpoint"] == str(records / "baseline" / "ckpt-1")

    # --sample-1-of-n-eval-examples 2: every other validation example, written and recorded
    subset = config["eval_subset"]
    source = [from_tf_example(r).source_id
              for r in read_records(sorted(records.glob("val-*.tfrecord")))]
    assert subset["every"] == 2 and subset["total"] == len(source) == 12
    assert subset["examples"] == math.ceil(len(source) / 2)
    assert params["task"]["validation_data"]["input_path"] == subset["path"]
    sampled = [from_tf_example(r).source_id for r in read_records([Path(subset["path"])])]
    assert sampled == source[::2]
    assert manifest["dataset"]["validation"]["examples"] == len(sampled)


def test_explain_lists_every_field_of_the_tutorial_with_its_fate(odapi, records):
    result = odapi("config", "explain", TUTORIAL, "--data", records)
    assert result.code == 0, result.text
    fields = read_pipeline_config(TUTORIAL).fields()
    assert len(fields) == FIELDS_OF_THE_TUTORIAL
    rows = {}
    for line in result.out.splitlines():
        match = re.match(r"^\s+(\d+)\s+(\S+)\s.*\s(applied|approximated|ignored)\s", line)
        if match:
            rows[int(match.group(1))] = (match.group(2), match.group(3), line)
    assert sorted(rows) == sorted(f.line for f in fields)  # one row per field, no more
    for f in fields:
        assert f.path.startswith(rows[f.line][0]), (f, rows[f.line])

    def fate(path: str) -> tuple[str, str]:
        line = next(f.line for f in fields if f.path == path)
        return rows[line][1], rows[line][2]

    assert fate("train_config.batch_size")[0] == "applied"
    assert fate("model.ssd.feature_extractor.type")[0] == "approximated"
    assert "no Inception" in fate("model.ssd.feature_extractor.type")[1]
    assert fate("model.ssd.image_resizer.fixed_shape_resizer.height")[0] == "approximated"
    assert "rounded up to 384x384" in fate("model.ssd.image_resizer.fixed_shape_resizer.height")[1]
    assert fate("eval_config.max_evals")[0] == "ignored"
    assert fate("model.ssd.loss.hard_example_miner.num_hard_examples")[0] == "ignored"
    counts = re.search(r"(\d+) fields: (\d+) applied, (\d+) approximated, (\d+) ignored",
                       result.out)
    assert int(counts.group(1)) == len(fields) == sum(int(counts.group(i)) for i in (2, 3, 4))

    experiment = yaml_part(result.out)
    assert experiment["experiment"] == "retinanet_mobile_coco"
    assert experiment["task"]["model"]["input_size"] == [384, 384, 3]  # 300 rounded up to 128s
    assert experiment["task"]["train_data"]["input_path"] == str(records / "train-*.tfrecord")
    assert experiment["label_map"] == str(records / "label_map.pbtxt")


def test_convert_writes_yaml_that_resolves_to_the_same_experiment(odapi, records, tmp_path):
    out = tmp_path / "experiment.yaml"
    result = odapi("config", "convert", TUTORIAL, "-o", out, "--data", records)
    assert result.code == 0, result.text
    assert out.read_text().startswith("# Converted by `odapi config convert`")
    assert odapi("config", "convert", TUTORIAL, "-o", out, "--data", records).code == 1

    resolved = {}
    for config, extra in ((TUTORIAL, ["--data", records]), (out, [])):
        result = odapi("train", "--config", config, "--model-dir", tmp_path / "unused",
                       "--check", *extra)
        assert result.code == 0, result.text
        resolved[config] = yaml.safe_load(result.out.split("\nconfig ")[0])
    pipeline, converted = resolved[TUTORIAL], resolved[out]
    assert converted["params"] == pipeline["params"]
    assert converted["init_checkpoint"] == pipeline["init_checkpoint"] == \
        str(records / "baseline" / "ckpt-1")
    assert converted["label_map"] == pipeline["label_map"]


FAMILIES = {  # sample: (meta-architecture, feature extractor, experiment, backbone, input)
    "ssd_mobilenet_v2": ("ssd", "ssd_mobilenet_v2_keras", "retinanet_mobile_coco",
                         ("mobilenet", "MobileNetV2"), 384),
    "ssd_mobilenet_v2_fpnlite": ("ssd", "ssd_mobilenet_v2_fpn_keras", "retinanet_mobile_coco",
                                 ("mobilenet", "MobileNetV2"), 384),
    "ssd_resnet50_fpn": ("ssd", "ssd_resnet50_v1_fpn_keras", "retinanet_resnetfpn_coco",
                         ("resnet", 50), 640),
    "faster_rcnn_resnet50": ("faster_rcnn", "faster_rcnn_resnet50_keras",
                             "fasterrcnn_resnetfpn_coco", ("resnet", 50), 640),
    "faster_rcnn_resnet101": ("faster_rcnn", "faster_rcnn_resnet101_keras",
                              "fasterrcnn_resnetfpn_coco", ("resnet", 101), 640),
    "efficientdet_d0": ("ssd", "ssd_efficientnet-b0_bifpn_keras", "retinanet_resnetfpn_coco",
                        ("efficientnet", "b0"), 512),
    "efficientdet_d1": ("ssd", "ssd_efficientnet-b1_bifpn_keras", "retinanet_resnetfpn_coco",
                        ("efficientnet", "b1"), 640),
    "efficientdet_d2": ("ssd", "ssd_efficientnet-b2_bifpn_keras", "retinanet_resnetfpn_coco",
                        ("efficientnet", "b2"), 768),
    "centernet_hourglass104": ("center_net", "hourglass_104", "retinanet_resnetfpn_coco",
                               ("resnet", 101), 512),
}


def filled(family: str, folder: Path) -> Path:
    """The sample with its placeholders pointing at the test records, as a user fills them."""
    text = (CONFIGS / f"{family}.config").read_text()
    text = text.replace("PATH_TO_BE_CONFIGURED/label_map.txt", "label_map.pbtxt")
    text = re.sub(r"PATH_TO_BE_CONFIGURED/train2017[^\"]*", "train-*.tfrecord", text)
    text = re.sub(r"PATH_TO_BE_CONFIGURED/val2017[^\"]*", "val-*.tfrecord", text)
    text = re.sub(r".*fine_tune_checkpoint: .*\n", "", text)  # classification checkpoints
    path = folder / f"{family}.config"
    path.write_text(text.replace("num_classes: 90", "num_classes: 3"))
    return path


@pytest.mark.parametrize("family", FAMILIES)
def test_each_sample_family_parses_and_names_its_placeholders(odapi, family):
    kind, extractor, *_ = FAMILIES[family]
    path = CONFIGS / f"{family}.config"
    config = read_pipeline_config(path).message
    assert config.model.WhichOneof("model") == kind
    assert getattr(config.model, kind).feature_extractor.type == extractor
    assert getattr(config.model, kind).num_classes == 90

    result = odapi("config", "explain", path)
    assert result.code == 1 and "Traceback" not in result.err
    assert "placeholders" in result.err
    for field in ("train_config.fine_tune_checkpoint", "train_input_reader.label_map_path",
                  "train_input_reader.tf_record_input_reader.input_path",
                  "eval_input_reader[0].tf_record_input_reader.input_path"):
        needle = field.rpartition(".")[2] + ":"
        if field.startswith("eval_input_reader"):
            needle = "val2017"
        elif field.startswith("train_input_reader.tf"):
            needle = "train2017"
        assert f"line {line_of(path, needle)}: {field} = " in result.err, field


@pytest.mark.parametrize("family", FAMILIES)
def test_each_sample_family_maps_onto_the_closest_model_garden_experiment(
        odapi, records, tmp_path, family):
    _, _, experiment, (backbone, model_id), size = FAMILIES[family]
    result = odapi("config", "explain", filled(family, tmp_path), "--data", records)
    assert result.code == 0, result.text
    tree = yaml_part(result.out)
    assert tree["experiment"] == experiment
    model = tree["task"]["model"]
    assert model["backbone"]["type"] == backbone
    assert model["backbone"][backbone]["model_id"] == model_id
    assert model["input_size"] == [size, size, 3]
    assert "odapi has no Model Garden setting" not in result.out  # every field has a reason

    result = odapi("train", "--config", filled(family, tmp_path), "--data", records,
                   "--model-dir", tmp_path / "unused", "--check")
    assert result.code == 0, result.text  # Model Garden accepts it (validate() ran)


@pytest.mark.slow
def test_each_sample_family_builds_a_model_garden_model(records, tmp_path):
    from official.core import task_factory

    from odapi.engine.config import resolve

    for family in FAMILIES:
        run = resolve(filled(family, tmp_path), data=records,
                      sets=["task.model.input_size=[128,128,3]"])
        model = task_factory.get_task(run.params.task).build_model()
        assert "backbone" in model.checkpoint_items, family


ERRORS = {  # errors/<name>.config: (the mutated text, what the message must say)
    "unknown_field": ("batch_sise", ['has no field named "batch_sise"',
                                     'did you mean "batch_size"?']),
    "unknown_enum": ("RELU6", ["has no value named RELU6", "did you mean RELU_6?"]),
    "placeholders": ("YOUR-BASELINE-MODEL", [
        "train_config.fine_tune_checkpoint = \"YOUR-BASELINE-MODEL/model.ckpt\"",
        "train_input_reader.label_map_path = \"YOUR-LABELMAP/labelmap.txt\"",
        "eval_input_reader[0].label_map_path = \"SAME-LABELMAP-AS-ABOVE/labelmap.txt\""]),
    "missing_path": ("training.tfrecord", [
        "train_input_reader.tf_record_input_reader.input_path = 'training.tfrecord'",
        "train_input_reader.label_map_path = 'labelmap.txt'", "exist nowhere"]),
    "zoo_checkpoint_tf1": ("model.ckpt", [
        "is a TF1 model-zoo checkpoint", "do not map onto Model Garden", "spinenet49mobile"]),
    "zoo_checkpoint_tf2": ("checkpoint/ckpt-0", [
        "is a TF2 model-zoo checkpoint", "do not map onto Model Garden", "spinenet49mobile"]),
    "num_classes": ("num_classes: 1", [
        "num_classes is 1", "has 3 classes", "set num_classes: 3"]),
    "no_architecture": ("model {", [
        "the model block names no architecture", "`ssd { ... }`"]),
}


@pytest.mark.parametrize("name", ERRORS)
def test_each_mistake_is_reported_where_it_is_before_any_step(odapi, records, tmp_path, name):
    path = CONFIGS / "errors" / f"{name}.config"
    needle, expected = ERRORS[name]
    line = line_of(path, needle)
    for command in (["config", "explain", path, "--data", records],
                    ["train", "--config", path, "--data", records, "--model-dir",
                     tmp_path / "model", "--num-train-steps", "1", *FAST]):
        result = odapi(*command)
        assert result.code == 1, result.text
        assert "Traceback" not in result.err
        for text in expected:
            assert text in result.err, (text, result.err)
        assert f"{path}:{line}:" in result.err or f"line {line}: " in result.err, result.err
    assert not list_checkpoints(tmp_path / "model")


def tf1_checkpoint(prefix: Path) -> None:
    prefix.parent.mkdir(parents=True)
    with tf.Graph().as_default():
        tf.compat.v1.get_variable("FeatureExtractor/InceptionV2/Conv2d_1a_7x7/weights", [2])
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(prefix))


def tf2_zoo_checkpoint(prefix: Path) -> None:
    extractor = tf.train.Checkpoint(w=tf.Variable(1.0))
    tf.train.Checkpoint(model=tf.train.Checkpoint(_feature_extractor=extractor)) \
        .write(str(prefix))


@pytest.mark.parametrize("make, expected", [(tf1_checkpoint, "TF1 name-based"),
                                            (tf2_zoo_checkpoint, "TF2 model-zoo")])
def test_a_zoo_checkpoint_under_another_name_is_known_by_its_variables(
        odapi, records, tmp_path, make, expected):
    data = tmp_path / "data"
    shutil.copytree(records, data, ignore=shutil.ignore_patterns("baseline"))
    make(data / "baseline" / "ckpt-1")  # the name the tutorial config gives
    result = odapi("config", "explain", TUTORIAL, "--data", data)
    assert result.code == 1, result.text
    assert f"is a {expected} checkpoint of the OD API" in result.err
    assert "spinenet49mobile" in result.err


def test_command_line_paths_replace_the_configs_own(odapi, records, tmp_path):
    """Placeholders in fields the command line replaces are no error; the rest still are."""
    text = (CONFIGS / "errors" / "placeholders.config").read_text()
    config = tmp_path / "mymodel.config"
    config.write_text(text.replace("num_classes: 1", "num_classes: 3"))
    given = ["--train-data", records / "train-*.tfrecord", "--val-data",
             records / "val-*.tfrecord", "--label-map", records / "label_map.pbtxt"]
    result = odapi("train", "--config", config, "--model-dir", tmp_path / "m", "--check", *given)
    assert result.code == 1 and "train_config.fine_tune_checkpoint" in result.err
    assert "train_input_reader" not in result.err

    result = odapi("train", "--config", config, "--model-dir", tmp_path / "m", "--check",
                   *given, "--init-checkpoint", records / "baseline" / "ckpt-1")
    assert result.code == 0, result.text
    resolved = yaml.safe_load(result.out.split("\nconfig ")[0])
    assert resolved["params"]["task"]["train_data"]["input_path"] == \
        str(records / "train-*.tfrecord")
    assert resolved["init_checkpoint"] == str(records / "baseline" / "ckpt-1")


def test_the_tutorial_run_sh_flags_and_a_config_without_the_suffix(odapi, records, tmp_path):
    config = tmp_path / "pipeline.pbtxt"  # recognised by its content
    shutil.copy(TUTORIAL, config)
    result = odapi("train", "--config", config, "--data", records, "--model-dir", tmp_path / "m",
                   "--num_train_steps", "7", "--sample_1_of_n_eval_examples", "3", "--check")
    assert result.code == 0, result.text
    resolved = yaml.safe_load(result.out.split("\nconfig ")[0])
    assert resolved["experiment"] == "retinanet_mobile_coco"
    assert resolved["params"]["trainer"]["train_steps"] == 7
    assert odapi("train", "--config", config, "--data", records, "--model-dir", tmp_path / "m",
                 "--sample-1-of-n-eval-examples", "0", "--check").code == 2


def test_an_eval_input_of_testing_records_is_said_to_be_evaluated(odapi, records, tmp_path):
    """The tutorial's layout: train.record and test.record. `config explain` and `train` say
    that evaluation runs on the testing records."""
    for split in ("train", "val"):
        (shard,) = records.glob(f"{split}-*.tfrecord")
        shutil.copyfile(shard, tmp_path / ("train.record" if split == "train" else "test.record"))
    shutil.copyfile(records / "label_map.pbtxt", tmp_path / "label_map.pbtxt")
    config = tmp_path / "pipeline.config"
    config.write_text(TUTORIAL.read_text().replace('"train-*.tfrecord"', '"train.record"')
                      .replace('"val-*.tfrecord"', '"test.record"'))
    note = "evaluation runs on these testing records, as it did in the OD API"

    explained = odapi("config", "explain", config, "--data", records)  # baseline/ckpt-1
    assert explained.code == 0, explained.text
    lines = explained.out.splitlines()
    (at,) = [i for i, line in enumerate(lines)
             if "eval_input_reader[0].tf_record_input_reader" in line]
    row = " ".join(" ".join(line.split()) for line in lines[at:at + 2])  # a wrapped row
    assert "test.record" in row and "applied" in row
    assert "evaluation runs on" in row and "testing records, as it did in the OD API" in row

    checked = odapi("train", "--config", config, "--data", records, "--model-dir",
                    tmp_path / "m", "--check")
    assert checked.code == 0, checked.text
    assert checked.err.count(note) == 1
    resolved = yaml.safe_load(checked.out.split("\nconfig ", 1)[0])
    assert resolved["params"]["task"]["validation_data"]["input_path"] == \
        str(tmp_path / "test.record")
