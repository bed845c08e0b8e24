"""Pins and staging folders belong to one process, whatever its PID.

In the compose stack every service is PID 1 of its own container, so `train --eval-every` and
the eval service (or two exports) have the same PID: names made from it collided and each
deleted the other's pinned checkpoint or staging folder. Two users of one PID are two users in
one process here (a thread, or nested use), which is exactly the collision; a user that dies is
a real process killed with SIGKILL.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import tensorflow as tf

from odapi.model_dir.checkpoints import pin_checkpoint
from odapi.model_dir.metrics import BEST_DIR, MetricsStore


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> list[str]:
    """Three real TensorFlow checkpoints of different sizes, in one folder."""
    folder = tmp_path_factory.mktemp("ckpts")
    variable = tf.Variable(tf.zeros([256, 256]))
    checkpoint = tf.train.Checkpoint(v=variable)
    prefixes = []
    for step in (1, 2, 3):
        variable.assign(tf.fill([256, 256], float(step)))
        prefixes.append(checkpoint.write(str(folder / f"ckpt-{step}")))
    return prefixes


def value_of(prefix: str) -> float:
    return float(tf.train.load_variable(prefix, "v/.ATTRIBUTES/VARIABLE_VALUE")[0, 0])


def test_two_pins_of_one_process_keep_each_other(checkpoints, tmp_path):
    """The trainer's in-process evaluation and an evaluator with the same PID pin at once."""
    with pin_checkpoint(checkpoints[0], tmp_path) as first:
        with pin_checkpoint(checkpoints[1], tmp_path) as second:
            assert Path(first).parent != Path(second).parent
            assert value_of(first) == 1.0 and value_of(second) == 2.0
        assert value_of(first) == 1.0  # the second pin's end removed only its own
    assert not list(tmp_path.iterdir())


PIN_AND_WAIT = """
import sys, time
from odapi.model_dir.checkpoints import pin_checkpoint
with pin_checkpoint(sys.argv[1], sys.argv[2]) as pinned:
    print(pinned, flush=True)
    time.sleep(600)
"""


def test_a_killed_evaluators_pin_goes_and_a_working_ones_stays(checkpoints, tmp_path):
    owners = [subprocess.Popen([sys.executable, "-c", PIN_AND_WAIT, prefix, str(tmp_path)],
                               stdout=subprocess.PIPE, text=True) for prefix in checkpoints[:2]]
    try:
        dead, alive = (Path(owner.stdout.readline().strip()) for owner in owners)
        owners[0].kill()
        owners[0].wait()
        assert dead.parent.exists()  # a killed process cleans nothing up itself
        with pin_checkpoint(checkpoints[2], tmp_path) as mine:
            assert not dead.parent.exists()  # its owner is gone: removed
            assert value_of(str(alive)) == 2.0  # its owner still reads it: kept
            assert value_of(mine) == 3.0
    finally:
        for owner in owners:
            owner.kill()
            owner.wait()


def test_two_writers_of_best_in_one_process_both_land(checkpoints, tmp_path):
    """Two evaluators recording at once (same PID): neither loses its entry, and best/ holds
    the checkpoint of the best AP, whole."""
    store = MetricsStore(tmp_path)

    def record(step: int, ap: float) -> None:
        entry = {"step": step, "metrics": {"AP": ap, "AP50": ap}, "per_class": {}}
        MetricsStore(tmp_path).add(entry, checkpoints[step - 1])

    writers = [threading.Thread(target=record, args=(step, ap))
               for step, ap in ((1, 0.2), (2, 0.5), (3, 0.4))]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert sorted(store.evaluated_steps()) == [1, 2, 3]
    assert store.best()["step"] == 2
    assert value_of(store.best()["checkpoint"]) == 2.0
    assert sorted(p.name for p in (tmp_path / BEST_DIR).iterdir()) == \
        ["checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{BEST_DIR}")]


def test_a_killed_conversions_staging_goes_and_a_running_ones_stays(tmp_path):
    from odapi.data.records import StagedOutput

    script = ("import sys, time\nfrom odapi.data.records import StagedOutput\n"
              "out = StagedOutput(sys.argv[1])\nprint(out.staging, flush=True)\n"
              "time.sleep(600)\n")
    owners = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "out")],
                               stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        dead, alive = (Path(owner.stdout.readline().strip()) for owner in owners)
        owners[0].kill()
        owners[0].wait()
        mine = StagedOutput(tmp_path / "out")
        assert not dead.exists() and alive.exists()
        assert mine.staging not in (dead, alive)
        mine.abort()
        assert not mine.staging.exists() and alive.exists()
    finally:
        for owner in owners:
            owner.kill()
            owner.wait()
