"""Several workers, one run: TF_CONFIG names the cluster and this process's place in it.

TensorFlow configures the collective ops of MultiWorkerMirroredStrategy only before anything
else has run in the process ("Collective ops must be configured at program startup"), and
odapi reads records and checkpoints with TensorFlow before it builds the trainer. So the
strategy is made first, by `start`, and the trainer takes that same one. Making it waits for
every worker to join, at most ODAPI_CLUSTER_TIMEOUT seconds (JOIN_TIMEOUT by default): a worker
alone, or a cluster list naming an address nobody answers on, is an error, not a hang.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import TypeVar

from odapi.errors import OdapiError

T = TypeVar("T")

DEFAULT_PORT = 2222  # of a worker named without one in ODAPI_WORKERS (TensorFlow's examples')
JOIN_TIMEOUT = 300.0  # seconds a worker waits for the others to join


def tf_config() -> dict:
    """TF_CONFIG, parsed, or made from ODAPI_WORKERS; {} when this process trains alone."""
    index = os.environ.get("ODAPI_WORKER_INDEX", "").strip()
    if not os.environ.get("ODAPI_WORKERS", "").strip() and index not in ("", "0") and \
            not os.environ.get("TF_CONFIG"):
        raise OdapiError(f"ODAPI_WORKER_INDEX is {index} but ODAPI_WORKERS, the list of "
                         "workers, is not set: set it on every worker (the compose stack's: "
                         "ODAPI_WORKERS=train,worker), or unset ODAPI_WORKER_INDEX")
    if os.environ.get("ODAPI_WORKERS", "").strip():
        if os.environ.get("TF_CONFIG"):
            raise OdapiError("both TF_CONFIG and ODAPI_WORKERS name a cluster: set one of them")
        return _from_worker_list(os.environ["ODAPI_WORKERS"], index)
    try:
        return json.loads(os.environ.get("TF_CONFIG") or "{}")
    except ValueError:
        raise OdapiError("TF_CONFIG is not valid JSON; see TensorFlow's multi-worker "
                         "training guide for its format") from None


def _from_worker_list(hosts: str, index: str) -> dict:
    """TF_CONFIG for ODAPI_WORKERS="train,worker" (hosts, each with its port or DEFAULT_PORT;
    the first is the chief) and ODAPI_WORKER_INDEX (this worker's place in the list): the
    compose stack's way, where the index is a setting of each service."""
    addresses = [host if ":" in host else f"{host}:{DEFAULT_PORT}"
                 for host in (part.strip() for part in hosts.split(",")) if host]
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise OdapiError(f"ODAPI_WORKERS: {address!r} is not a worker's host[:port] (port "
                             f"1-65535; {DEFAULT_PORT} when left out): give each worker as "
                             "host or host:port, separated by commas, the chief first")
    if len(set(addresses)) != len(addresses):
        raise OdapiError(f"ODAPI_WORKERS names a worker twice ({hosts!r}): give each worker's "
                         "host:port once, the chief first")
    if not index.isdigit() or int(index) >= len(addresses):
        raise OdapiError(f"ODAPI_WORKER_INDEX must say which of the {len(addresses)} workers "
                         f"in ODAPI_WORKERS this one is, 0 to {len(addresses) - 1} (0, the "
                         f"first, is the chief), not {index!r}")
    return {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": int(index)}}


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

    watchdog = _watchdog(join_timeout())
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as e:  # "Collective ops must be configured at program startup"
        raise OdapiError(f"cannot join the TF_CONFIG cluster in this process ({e}): several "
                         "workers need a process of their own, where odapi.engine.cluster."
                         "start() runs before anything else uses TensorFlow") from None
    except tf.errors.UnknownError as e:
        if "Could not start gRPC server" not in str(e):
            raise
        raise OdapiError(f"{this_worker()} cannot listen on {workers()[_this_row()]}: another "
                         "process on this machine already does, most likely a worker started "
                         "with the same index; give each worker its own index (or free that "
                         "port)") from None
    finally:
        watchdog.stdin.close()  # joined, or failed: either way, no longer waiting
        watchdog.wait()


# A separate process: TensorFlow waits for every worker without a time limit, inside one call
# that holds the interpreter's lock (no Python thread runs meanwhile) and that no signal but
# SIGKILL ends (its coordination service takes SIGTERM for itself). Nothing is written before
# the cluster is joined, so ending the process there loses nothing.
# Ctrl-C in a terminal reaches both processes: the watchdog ends the waiting one then too.
WATCHDOG = """
import os, select, signal, sys
parent, timeout, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
def interrupted(*_):
    print("interrupted while waiting for the cluster", file=sys.stderr, flush=True)
    os.kill(parent, signal.SIGKILL)
    os._exit(0)
signal.signal(signal.SIGINT, interrupted)
if not select.select([sys.stdin], [], [], timeout)[0]:  # stdin closes once the parent is done
    print(message, file=sys.stderr, flush=True)
    os.kill(parent, signal.SIGKILL)
"""


def _watchdog(timeout: float) -> subprocess.Popen:
    """A process that ends this one unless it has joined its cluster within `timeout` s.
    Not as a container's first process (PID 1, which SIGKILL from inside cannot end): run the
    container with an init (`docker run --init`, compose's `init: true`) or under `sh -c`."""
    if os.getpid() == 1:
        print("note: odapi runs as PID 1, which nothing inside its container can end: if the "
              "cluster never forms it waits forever (run the container with --init)",
              file=sys.stderr, flush=True)
    message = (f"error: {this_worker()} waited {timeout:g} s for the other workers of its "
               f"TF_CONFIG cluster ({', '.join(workers())}), and not all of them joined: "
               "start every worker, each with the same cluster list and its own task index, "
               "and check that every address is reachable from every worker "
               "(ODAPI_CLUSTER_TIMEOUT sets the wait, in seconds)")
    return subprocess.Popen([sys.executable, "-c", WATCHDOG, str(os.getpid()), str(timeout),
                             message], stdin=subprocess.PIPE)


def join_timeout() -> float:
    """ODAPI_CLUSTER_TIMEOUT, checked: how long a worker waits for its cluster to form."""
    value = os.environ.get("ODAPI_CLUSTER_TIMEOUT") or str(JOIN_TIMEOUT)
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 7 * 24 * 3600:  # (select() refuses larger timeouts, or inf)
        raise OdapiError(f"ODAPI_CLUSTER_TIMEOUT must be a number of seconds up to a week, "
                         f"not {value!r}")
    return seconds


def workers() -> list[str]:
    """The cluster's addresses, chief first: the order of the workers' places in it."""
    cluster = tf_config().get("cluster", {})
    return [*cluster.get("chief", []), *cluster.get("worker", [])]


def this_worker() -> str:
    """This process's place in the cluster as TF_CONFIG names it, e.g. "worker 1"."""
    task = tf_config().get("task", {})
    return f"{task.get('type')} {task.get('index', 0)}"


def _worker_labels() -> list[str]:
    """Each worker as TF_CONFIG names it, with its address, in the order of `workers()`."""
    cluster = tf_config().get("cluster", {})
    return [*(f"chief ({host})" for host in cluster.get("chief", [])),
            *(f"worker {i} ({host})" for i, host in enumerate(cluster.get("worker", [])))]


def _row_of(job: str, index: int) -> int:
    """The place of TF_CONFIG's task `job` `index` in `workers()`."""
    return index if job == "chief" else len(tf_config()["cluster"].get("chief", [])) + index


def _this_row() -> int:
    """This worker's row in `workers()`."""
    task = tf_config().get("task", {})
    return _row_of(task.get("type"), int(task.get("index", 0)))


def gather_from_workers(values: list[float]) -> list[list[float]]:
    """Every worker's `values`, in the order of `workers()`: a collective, so every worker
    calls it at the same point (an all-reduce of rows, each worker filling its own)."""
    import numpy as np
    import tensorflow as tf

    strategy = multi_worker_strategy()
    rows = np.zeros([len(workers()), len(values)], np.float64)
    rows[_this_row()] = values
    try:
        total = strategy.reduce(tf.distribute.ReduceOp.SUM,
                                strategy.run(lambda: tf.constant(rows)), axis=None)
    except Exception as e:
        if lost := lost_worker(e):
            raise lost from None
        raise
    per_worker = strategy.num_replicas_in_sync // len(workers())  # each device adds its rows
    return (total.numpy() / per_worker).tolist()


def check_same_start(model_dir, failure: OdapiError | None, step: int | None) -> None:
    """Before step one, together: every worker could use the model dir (`failure` says why
    this one could not) and sees the same latest checkpoint in it (`step`), or none. A worker
    that did not would otherwise restore other weights than the chief, or stop alone while
    the others wait for it."""
    stop_together(failure, "use the model dir, which every worker needs", str(model_dir))
    rows = gather_from_workers([-1.0 if step is None else float(step)])
    names = _worker_labels()
    steps = [int(row[0]) for row in rows]
    if len(set(steps)) > 1:
        seen = "; ".join(f"{name}: {f'step {s}' if s >= 0 else 'no checkpoint'}"
                         for name, s in zip(names, steps, strict=True))
        raise OdapiError(
            f"the workers see different checkpoints in the model dir ({seen}): every worker "
            "must read the chief's model dir, at the same path on storage they share (NFS, a "
            "bucket, a volume mounted in each)", where=str(model_dir))


def check_supported(eval_every: int | None, patience: int | None) -> None:
    """What one process may do and several workers may not, said before joining."""
    if not tf_config().get("cluster"):
        return
    if patience:
        raise OdapiError("--patience is not supported with several workers (TF_CONFIG): "
                         "every worker must stop at the same step; train without it")
    if eval_every:
        raise OdapiError("--eval-every is not supported with several workers (TF_CONFIG): "
                         "every worker must take every step together; evaluate beside "
                         "training with `odapi eval --follow` instead")


def lost_worker(error: Exception) -> OdapiError | None:
    """The error to report when `error` is TensorFlow losing a worker mid-run (its collective
    ops aborted when a worker stops sending heartbeats, or a peer's connection gone); None
    if it is not."""
    import tensorflow as tf

    lost = (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.AbortedError,
            tf.errors.DeadlineExceededError)
    if not tf_config().get("cluster") or not isinstance(error, lost):
        return None
    text = str(getattr(error, "message", error))
    if not re.search(r"/job:|[Cc]ollective|heartbeat|coordination", text):
        return None  # an unreachable bucket, say: not a worker
    lines = [line.strip() for line in text.splitlines()]
    files = [i for i, line in enumerate(lines) if line.startswith("File ")]
    cause = " ".join(line for line in lines[files[-1] + 1 if files else 0:]
                     if line and not line.startswith("[["))  # TensorFlow's traceback first
    places = {(job, int(index)) for job, index in
              re.findall(r"/job:(chief|worker)/replica:\d+/task:(\d+)", cause)}
    cause = textwrap.shorten(cause.split(" Additional GRPC error information")[0], 240)
    names = _worker_labels()
    who = [names[row] for row in sorted({_row_of(job, index) for job, index in places})
           if row < len(names) and row != _this_row()]
    return OdapiError(
        f"{this_worker()} lost contact with {', '.join(who) or 'another worker'} of its "
        f"cluster ({cause}): a worker stopped or its machine became unreachable, and "
        "the others cannot go on without it. Stop every worker, then start them all again "
        "with the same commands: training resumes from the chief's last checkpoint")


def start() -> None:
    """Join the cluster before anything else runs TensorFlow, when TF_CONFIG (or
    ODAPI_WORKERS) names one."""
    config = tf_config()
    if config.get("cluster"):
        os.environ["TF_CONFIG"] = json.dumps(config)  # what TensorFlow reads
        for name in ("ODAPI_WORKERS", "ODAPI_WORKER_INDEX"):  # said once, in TF_CONFIG
            os.environ.pop(name, None)
        _grow_gpu_memory()
        multi_worker_strategy()


def _grow_gpu_memory() -> None:
    """Workers may share a host's GPUs (the compose profile runs two on one host): each takes
    GPU memory as it needs it, not nearly all of it at once as TensorFlow does by default."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)


def active() -> bool:
    """Whether this process is one of several workers."""
    return bool(tf_config().get("cluster"))


def chief_first(action: Callable[[], T], what: str) -> T:
    """`action` on the chief, then on the others once it has succeeded (they find what it
    made and use it): the one writer of the shared model dir goes first, and if any worker
    cannot do `what`, all of them stop together. Alone, just `action`."""
    if not active():
        return action()
    result, failure = None, None
    if is_chief():
        result, failure = _attempt(action)
    stop_together(failure, what)
    if not is_chief():
        result, failure = _attempt(action)
    stop_together(failure, what)
    return result


def _attempt(action: Callable[[], T]) -> tuple[T | None, BaseException | None]:
    """`action`'s result, or what it raised: raised again only once the others know of it."""
    try:
        return action(), None
    except Exception as e:  # an OSError too: the others must not wait for a worker gone
        return None, e


def stop_together(failure: BaseException | None, what: str, where: str | None = None) -> None:
    """Raise `failure` here, and on every other worker an error naming the workers that
    could not do `what`: a worker that stopped alone would leave the others waiting for it."""
    rows = gather_from_workers([1.0 if failure else 0.0])
    if failure:
        raise failure
    failed = [name for name, row in zip(_worker_labels(), rows, strict=True) if row[0]]
    if failed:
        raise OdapiError(f"{', '.join(failed)} could not {what}: its own output says why; "
                         "mend that, then start every worker again", where=where)


def describe(global_batch_size: int) -> dict | None:
    """The cluster as the manifest records it: its workers, and the global batch each step
    splits evenly across them (MultiWorkerMirroredStrategy gives each worker its share)."""
    config = tf_config()
    if not config.get("cluster"):
        return None
    hosts = workers()
    replicas = multi_worker_strategy().num_replicas_in_sync  # workers x their devices
    if global_batch_size % replicas:
        raise OdapiError(f"the global batch ({global_batch_size}) does not split evenly across "
                         f"{replicas} replicas ({len(hosts)} workers); set "
                         f"task.train_data.global_batch_size to a multiple of {replicas}")
    return {"workers": hosts, "this": this_worker(),
            "replicas": replicas, "global_batch_size": global_batch_size,
            "batch_per_replica": global_batch_size // replicas}
