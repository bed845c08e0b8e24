"""Reliability drills: what happens when the machine, not the user, gets in the way.

- conversion onto a full disk (a small filesystem made for the test);
- `odapi eval --follow` while checkpoint retention deletes what it is about to evaluate;
- training killed with SIGKILL at random moments and restarted by the same command.

The conversion killed mid-run is tests/test_interrupted.py; eval --follow across a training
restart is tests/test_train.py::test_kill_9_then_resume_while_eval_follows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import looks_complete, read_all

REQUIRED = os.environ.get("ODAPI_REQUIRE_DOCKER") == "1"  # CI: runs as root, skips nothing


@pytest.fixture
def small_filesystem(tmp_path):
    """A 1 MB tmpfs, mounted for the test (needs root; CI has it)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                            capture_output=True, text=True, check=False)
    if result.returncode:
        reason = ("cannot mount a small filesystem for the full-disk drill "
                  f"({result.stderr.strip() or 'mount failed'}); run as root")
        if REQUIRED:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def noisy_jpegs(folder: Path, count: int, size=(400, 300)) -> Path:
    """`count` JPEGs of noise (about 150 KB each) in a tutorial CSV dataset; returns the CSV."""
    (folder / "images").mkdir(parents=True)
    lines = []
    for i in range(count):
        Image.effect_noise(size, 80).convert("RGB").save(folder / "images" / f"{i}.jpg",
                                                          quality=95)
        lines.append(f"{i},10,60,10,60,noise\n")
    (folder / "annotations.csv").write_text("".join(lines))
    return folder / "annotations.csv"


def test_conversion_onto_a_full_disk_fails_cleanly(odapi, tmp_path, small_filesystem):
    small = noisy_jpegs(tmp_path / "small", 2)
    large = noisy_jpegs(tmp_path / "large", 12)  # ~1.8 MB of images for a 1 MB disk
    out = small_filesystem / "records"

    result = odapi("convert", large, "--out", out, "-q")
    assert result.code == 1, result.text
    assert "no space left on the output device" in result.err
    assert "free some space or choose another --out" in result.err
    assert "Traceback" not in result.text
    assert not looks_complete(out)
    assert list(small_filesystem.iterdir()) == []  # the staged files are gone too

    # a conversion that fits, then one that does not replace it: the first stays whole
    assert odapi("convert", small, "--out", out, "-q").code == 0
    before = sorted(p.name for p in out.iterdir())
    result = odapi("convert", large, "--out", out, "--overwrite", "-q")
    assert result.code == 1 and "no space left on the output device" in result.err
    assert sorted(p.name for p in out.iterdir()) == before
    assert len(read_all(out)) == 2
    assert json.loads((out / "report.json").read_text())["totals"]["images"] == 2


# ------------------------------------------------------------------ eval --follow and retention

TINY = ["--set", "task.model.input_size=[128,128,3]",
        "--set", "task.train_data.global_batch_size=4",
        "--set", "task.validation_data.global_batch_size=4",
        "--set", "trainer.steps_per_loop=3",
        "--set", "trainer.checkpoint_interval=3",
        "--set", "trainer.summary_interval=3"]


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    from odapi.cli import main

    root = tmp_path_factory.mktemp("drill-data")
    assert main(["demo-data", str(root / "data"), "--count", "48", "--formats", "voc"]) == 0
    assert main(["convert", str(root / "data" / "voc"), "--out", str(root / "records"),
                 "--split", "train=0.75,val=0.25", "-q"]) == 0
    return root / "records"


@pytest.fixture(scope="module")
def three_checkpoints(records, tmp_path_factory) -> Path:
    """A finished 9-step run with ckpt-3, ckpt-6 and ckpt-9, copied fresh for each test."""
    from odapi.cli import main

    model_dir = tmp_path_factory.mktemp("drill-run") / "model"
    assert main(["train", "--config", "demo", "--data", str(records), "--model-dir",
                 str(model_dir), "--steps", "9", "-q", *TINY]) == 0
    return model_dir


def evaluated_steps(model_dir: Path) -> list[int]:
    return [e["step"] for e in json.loads(
        (model_dir / "eval" / "metrics.json").read_text())["evaluations"]]


def delete_checkpoint(prefix: str) -> None:
    """What checkpoint retention does: every file of the checkpoint goes."""
    for path in Path(prefix).parent.glob(Path(prefix).name + ".*"):
        path.unlink()


def fresh_copy(model_dir: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    state = copy / "checkpoint"  # the state file names checkpoints by their absolute paths
    state.write_text(state.read_text().replace(str(model_dir), str(copy)))
    return copy


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["after listing", "after restoring"])
def test_eval_follow_survives_retention_deleting_a_checkpoint(odapi, three_checkpoints,
                                                              tmp_path, monkeypatch, moment):
    """Retention deletes a checkpoint at the worst moments: ckpt-6 right after `eval --follow`
    listed it; ckpt-3, the first and so the best so far, after its weights were read but
    before its results and its copy in best/ are written. Either way: no crash, exit 0 after
    the final step, each step recorded at most once, and best/ holds a checkpoint that loads."""
    import tensorflow as tf

    import odapi.evaluation.evaluate as evaluate

    model_dir = fresh_copy(three_checkpoints, tmp_path)
    victim = str(model_dir / ("ckpt-6" if moment == "after listing" else "ckpt-3"))
    if moment == "after listing":
        listed = evaluate.list_checkpoints

        def list_then_delete(folder):
            found = listed(folder)
            if Path(victim + ".index").exists():
                delete_checkpoint(victim)
            return found

        monkeypatch.setattr(evaluate, "list_checkpoints", list_then_delete)
    else:
        restore = evaluate.Evaluator.restore

        def restore_then_delete(self, checkpoint):
            restore(self, checkpoint)
            if Path(checkpoint).name == Path(victim).name:
                delete_checkpoint(victim)

        monkeypatch.setattr(evaluate.Evaluator, "restore", restore_then_delete)

    result = odapi("eval", "--model-dir", model_dir, "--follow", "--poll", "0.1",
                   "--timeout", "60")
    assert result.code == 0, result.text
    steps = evaluated_steps(model_dir)
    assert steps[-1] == 9 and len(steps) == len(set(steps)), steps
    if moment == "after listing":  # nothing left to evaluate: skipped, and said so
        assert steps == [3, 9] and "was deleted before it could be evaluated" in result.out
    else:  # its files were pinned before the restore: evaluated in full all the same
        assert steps == [3, 6, 9]
    assert not list((model_dir / "eval").glob(".pinned-*"))
    best = tf.train.latest_checkpoint(str(model_dir / "best"))
    assert best, "best/ names no checkpoint"
    tf.train.load_checkpoint(best).get_tensor("global_step/.ATTRIBUTES/VARIABLE_VALUE")
    # and a second follower finds nothing new: no step is evaluated twice
    result = odapi("eval", "--model-dir", model_dir, "--follow", "--poll", "0.1",
                   "--timeout", "60")
    assert result.code == 0 and evaluated_steps(model_dir) == steps


def odapi_process(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "odapi", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_eval_follow_beside_training_that_keeps_one_checkpoint(records, tmp_path):
    """The real race: training saves every step and keeps only the newest checkpoint
    (trainer.max_to_keep=1) while `odapi eval --follow` evaluates what it finds. The
    evaluator falls behind and its checkpoints vanish under it; it must carry on, exit 0
    after the final step, and record no step twice."""
    import tensorflow as tf

    model_dir = tmp_path / "model"
    follower = odapi_process("eval", "--model-dir", model_dir, "--follow", "--poll", "0.2")
    trainer = odapi_process("train", "--config", "demo", "--data", records, "--model-dir",
                            model_dir, "--steps", "12", "-q", *TINY,
                            "--set", "trainer.steps_per_loop=1",
                            "--set", "trainer.checkpoint_interval=1",
                            "--set", "trainer.max_to_keep=1")
    out, err = trainer.communicate(timeout=900)
    assert trainer.returncode == 0, err
    out, err = follower.communicate(timeout=600)
    assert follower.returncode == 0, out + err
    assert "Traceback" not in err and "error:" not in err
    steps = evaluated_steps(model_dir)
    assert steps[-1] == 12 and len(steps) == len(set(steps)), steps
    best = tf.train.latest_checkpoint(str(model_dir / "best"))
    tf.train.load_checkpoint(best).get_tensor("global_step/.ATTRIBUTES/VARIABLE_VALUE")
    assert not list((model_dir / "eval").glob(".pinned-*"))
