"""Device policy: GPUs when TensorFlow sees them, several workers from TF_CONFIG.

No GPU exists on the test machines, so TensorFlow's device list is replaced here; the rest of
the resolution is the real one.
"""

from __future__ import annotations

import json

import pytest
import tensorflow as tf

from odapi.engine.cluster import is_chief
from odapi.engine.config import resolve
from odapi.labelmap import LabelMap


@pytest.fixture
def label_map(tmp_path):
    path = tmp_path / "label_map.pbtxt"
    LabelMap.from_names(["cat", "dog"]).write(path)
    return path


def with_gpus(monkeypatch, count: int) -> None:
    real = tf.config.list_physical_devices
    fake = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(count)]
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: fake if kind == "GPU" else real(kind))


@pytest.mark.parametrize("gpus, strategy, precision, dtype", [
    (0, "one_device", "float32", "float32"),
    (1, "one_device", "float16", "float16"),  # Model Garden's name for mixed float16
    (4, "mirrored", "float16", "float16"),
])
def test_gpus_are_used_when_present(monkeypatch, label_map, gpus, strategy, precision, dtype):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with_gpus(monkeypatch, gpus)
    params = resolve("demo", label_map=label_map, train_data="x-*").params
    assert params.runtime.num_gpus == gpus  # Model Garden's default of 0 would train on CPU
    assert params.runtime.distribution_strategy == strategy
    assert params.runtime.mixed_precision_dtype == precision
    assert params.task.train_data.dtype == dtype == params.task.validation_data.dtype
    assert params.task.model.num_classes == 3


def test_explicit_runtime_settings_win(monkeypatch, label_map):
    with_gpus(monkeypatch, 2)
    params = resolve("demo", label_map=label_map, train_data="x-*",
                     sets=["runtime.mixed_precision_dtype=float32"]).params
    assert params.runtime.mixed_precision_dtype == "float32"
    assert params.task.train_data.dtype == "float32"
    assert params.runtime.distribution_strategy == "mirrored"


def test_tf_config_means_multi_worker(monkeypatch, label_map):
    cluster = {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    params = resolve("demo", label_map=label_map, train_data="x-*").params
    assert params.runtime.distribution_strategy == "multi_worker_mirrored"
    assert not is_chief()  # worker 1 leaves the run's files to worker 0


@pytest.mark.parametrize("tf_config, chief", [
    (None, True),
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}},
     False),
    ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}},
     True),
])
def test_one_process_writes_the_run_files(monkeypatch, tf_config, chief):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert is_chief() is chief
