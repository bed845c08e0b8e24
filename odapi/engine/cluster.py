"""Several workers, one run: TF_CONFIG names the cluster and this process's place in it.

TensorFlow configures the collective ops of MultiWorkerMirroredStrategy only before anything
else has run in the process ("Collective ops must be configured at program startup"), and
odapi reads records and checkpoints with TensorFlow before it builds the trainer. So the
strategy is made first, by `start`, and the trainer takes that same one.
"""

from __future__ import annotations

import functools
import json
import os

from odapi.errors import OdapiError


def tf_config() -> dict:
    """TF_CONFIG, parsed; {} when this process trains alone."""
    try:
        return json.loads(os.environ.get("TF_CONFIG") or "{}")
    except ValueError:
        raise OdapiError("TF_CONFIG is not valid JSON; see TensorFlow's multi-worker "
                         "training guide for its format") from None


def is_chief() -> bool:
    """Whether this process writes the run's files: always, unless TF_CONFIG makes it a
    non-chief worker of a multi-worker run (Model Garden then checkpoints it to a temp dir)."""
    config = tf_config()
    task = config.get("task", {})
    kind, index = task.get("type"), int(task.get("index", 0))
    if kind is None or kind == "chief":
        return True
    return kind == "worker" and index == 0 and "chief" not in config.get("cluster", {})


@functools.cache
def multi_worker_strategy():
    """The process's one MultiWorkerMirroredStrategy (made once: its collective ops are)."""
    import tensorflow as tf

    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as e:  # "Collective ops must be configured at program startup"
        raise OdapiError(f"cannot join the TF_CONFIG cluster in this process ({e}): several "
                         "workers need a process of their own, where odapi.engine.cluster."
                         "start() runs before anything else uses TensorFlow") from None


def start() -> None:
    """Join the cluster before anything else runs TensorFlow, when TF_CONFIG names one."""
    if tf_config().get("cluster"):
        multi_worker_strategy()


def describe(global_batch_size: int) -> dict | None:
    """The cluster as the manifest records it: its workers, and the global batch each step
    splits evenly across them (MultiWorkerMirroredStrategy gives each worker its share)."""
    config = tf_config()
    cluster = config.get("cluster")
    if not cluster:
        return None
    hosts = [*cluster.get("chief", []), *cluster.get("worker", [])]
    replicas = multi_worker_strategy().num_replicas_in_sync  # workers x their devices
    if global_batch_size % replicas:
        raise OdapiError(f"the global batch ({global_batch_size}) does not split evenly across "
                         f"{replicas} replicas ({len(hosts)} workers); set "
                         f"task.train_data.global_batch_size to a multiple of {replicas}")
    task = config.get("task", {})
    return {"workers": hosts, "this": f"{task.get('type')} {task.get('index', 0)}",
            "replicas": replicas, "global_batch_size": global_batch_size,
            "batch_per_replica": global_batch_size // replicas}
