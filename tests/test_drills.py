"""Reliability drills: what happens when the machine, not the user, gets in the way.

- conversion onto a full disk (a small filesystem made for the test);
- `odapi eval --follow` while checkpoint retention deletes what it is about to evaluate, and
  while the training it follows is killed and restarted;
- training killed with SIGKILL at random moments and restarted by the same command.

The conversion killed mid-run is tests/test_interrupted.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from conftest import (
    LEARN,
    LEARNED_STEPS,
    TINY,
    fresh_copy,
    looks_complete,
    odapi_command,
    odapi_running,
    read_all,
)

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


def evaluated_steps(model_dir: Path) -> list[int]:
    return [e["step"] for e in json.loads(
        (model_dir / "eval" / "metrics.json").read_text())["evaluations"]]


def delete_checkpoint(prefix: str) -> None:
    """What checkpoint retention does: every file of the checkpoint goes."""
    for path in Path(prefix).parent.glob(Path(prefix).name + ".*"):
        path.unlink()


@pytest.mark.parametrize("moment", ["after listing", "after restoring"])
def test_eval_follow_survives_retention_deleting_a_checkpoint(odapi, trained_run, tmp_path,
                                                              monkeypatch, moment):
    """Retention deletes ckpt-3, the first checkpoint of the shared run and so the best so far,
    at the worst moments: right after `eval --follow` listed it, or after its weights were read
    but before its results and its copy in best/ are written. Either way: no crash, exit 0
    after the final step, each step recorded at most once, and best/ holds a checkpoint that
    loads."""
    import tensorflow as tf

    import odapi.evaluation.evaluate as evaluate

    model_dir = fresh_copy(trained_run.model_dir, tmp_path)
    shutil.rmtree(model_dir / "eval")  # its evaluations, to be made again
    shutil.rmtree(model_dir / "best")
    victim = str(model_dir / "ckpt-3")
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
    if moment == "after listing":  # ckpt-3 gone before its evaluation: skipped, said so
        assert steps == [6] and "was deleted before it could be evaluated" in result.out
    else:  # its files were pinned before the restore: evaluated in full all the same
        assert steps == [3, 6]
    assert not list((model_dir / "eval").glob(".pinned-*"))
    best = tf.train.latest_checkpoint(str(model_dir / "best"))
    assert best, "best/ names no checkpoint"
    tf.train.load_checkpoint(best).get_tensor("global_step/.ATTRIBUTES/VARIABLE_VALUE")
    # and a second follower finds nothing new: no step is evaluated twice
    result = odapi("eval", "--model-dir", model_dir, "--follow", "--poll", "0.1",
                   "--timeout", "60")
    assert result.code == 0 and evaluated_steps(model_dir) == steps


@pytest.mark.slow
def test_eval_follow_beside_training_that_keeps_one_checkpoint_killed_and_restarted(records,
                                                                                   tmp_path):
    """The real race: training saves every step and keeps only the newest checkpoint
    (trainer.max_to_keep=1) while `odapi eval --follow` evaluates what it finds; midway the
    trainer is SIGKILLed and the same command run again. The evaluator falls behind, its
    checkpoints vanish under it and the trainer it follows is replaced: it must carry on, exit
    0 after the final step and record no step twice; the restart resumes from the checkpoint
    the killed trainer left."""
    import tensorflow as tf

    from odapi.model_dir.checkpoints import checkpoint_step, list_checkpoints

    model_dir = tmp_path / "model"
    train = ["train", "--config", "demo", "--data", records, "--model-dir", model_dir,
             "--steps", "12", "-q", *TINY, "--set", "trainer.steps_per_loop=1",
             "--set", "trainer.checkpoint_interval=1", "--set", "trainer.max_to_keep=1"]
    with odapi_running("eval", "--model-dir", model_dir, "--follow", "--poll", "0.2") \
            as follower:
        with odapi_running(*train) as trainer:
            deadline = time.monotonic() + 600
            while not list_checkpoints(model_dir) or \
                    checkpoint_step(list_checkpoints(model_dir)[-1]) < 4:
                assert trainer.poll() is None, trainer.communicate()
                assert time.monotonic() < deadline
                time.sleep(0.2)
        # (leaving the block SIGKILLs the trainer)
        killed_at = checkpoint_step(list_checkpoints(model_dir)[-1])
        assert follower.poll() is None  # eval outlives the trainer it followed
        with odapi_running(*train) as restarted:
            out, err = restarted.communicate(timeout=900)
        assert restarted.returncode == 0, err
        assert f"from step {killed_at}" in err, err
        out, err = follower.communicate(timeout=600)
        assert follower.returncode == 0, out + err
    assert "Traceback" not in err and "error:" not in err
    steps = evaluated_steps(model_dir)
    assert steps[-1] == 12 and len(steps) == len(set(steps)), steps
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["sessions"][-1]["start_step"] == killed_at
    assert manifest["sessions"][-1]["end_step"] == 12
    best = tf.train.latest_checkpoint(str(model_dir / "best"))
    tf.train.load_checkpoint(best).get_tensor(GLOBAL_STEP)
    assert not list((model_dir / "eval").glob(".pinned-*"))


# ------------------------------------------------------------------ kill -9 at random moments

KILL_STEPS = LEARNED_STEPS  # the drill trains learned_run's command
AP50_FLOOR = 0.4  # both runs must have learned, or the comparison could not fail
AP50_TOLERANCE = 0.3  # how far below the uninterrupted run's AP50 the killed run may end
KINDS = ("start-up", "mid-step", "checkpoint save")
GLOBAL_STEP = "global_step/.ATTRIBUTES/VARIABLE_VALUE"


@dataclass
class Moment:
    """When to kill: `seconds` after launch (start-up), after the save of checkpoint `step`
    appears (mid-step), or after the save of checkpoint `step` begins (checkpoint save)."""

    kind: str
    seconds: float
    step: int = 0

    def __str__(self) -> str:
        if self.kind == "start-up":
            return f"{self.seconds:.2f}s after launch"
        if self.kind == "mid-step":
            return f"{self.seconds:.2f}s after the save of step {self.step}"
        return f"{self.seconds:.3f}s into the save of step {self.step}"


def kill_plan(seed: int) -> list[Moment]:
    """Three moments, one of each kind, in a seeded random order.

    Start-up takes about 22 s on this 2-core machine, more beside another test (imports,
    model, tracing: the first save began 37 s after launch, 10 steps taking 15 s), so a kill
    1-15 s after launch lands in it. Checkpoints are saved every 10 steps; the other kills
    aim at saves of increasing steps at least 20 apart, the last 30 or 20 steps before the
    end (70 or 80 of 100), so every kill lands while training still has work to do, and the
    final session trains at most the last 40 steps (killed during the save of step 70, it
    resumes from step 60)."""
    rng = random.Random(seed)
    kinds = list(KINDS)
    rng.shuffle(kinds)
    aimed = sum(kind != "start-up" for kind in kinds)
    last = KILL_STEPS - rng.choice((30, 20))
    slots = sorted(rng.sample(range((last - 20) // 10 - (aimed - 2)), aimed - 1))
    steps = iter([*(10 * (slot + number) + 10 for number, slot in enumerate(slots)), last])
    plan = []
    for kind in kinds:
        if kind == "start-up":
            plan.append(Moment(kind, round(rng.uniform(1.0, 15.0), 2)))
        elif kind == "mid-step":
            plan.append(Moment(kind, round(rng.uniform(0.2, 3.5), 2), next(steps)))
        else:
            plan.append(Moment(kind, round(rng.uniform(0.0, 0.06), 3), next(steps)))
    return plan


def save_marks(model_dir: Path) -> dict[str, int]:
    """What saving a checkpoint leaves in the model dir, by name, with mtimes: `ckpt-N_temp`
    while TensorFlow writes it, then `ckpt-N.index` (and data) beside the `checkpoint` file."""
    marks = {}
    with contextlib.suppress(FileNotFoundError), os.scandir(model_dir) as entries:
        for entry in entries:
            if entry.name.startswith("ckpt-") and entry.name.endswith((".index", "_temp")):
                with contextlib.suppress(FileNotFoundError):  # a temp folder gone since
                    marks[entry.name] = entry.stat().st_mtime_ns
    return marks


def mark_step(name: str) -> int:
    return int(name[len("ckpt-"):].split(".")[0].split("_")[0])


def train_then_kill(args: list, model_dir: Path, moment: Moment, log: Path,
                    context: str) -> str:
    """Launch `odapi train ARGS`, SIGKILL it at `moment`; says what it was doing then.
    `context` (the drill's seed and moments) goes into every assertion message."""
    before = save_marks(model_dir)
    launched = time.monotonic()
    with open(log, "w") as sink:
        process = subprocess.Popen(odapi_command(*args), stdout=sink, stderr=subprocess.STDOUT)
    seen: dict[int, str] = {}  # step -> how its save was first seen: "temp" or "index"
    try:
        if moment.kind == "start-up":
            wait_until = launched + moment.seconds
        else:
            deadline = launched + 600
            while not seen or max(seen) < moment.step:
                for name, mtime in save_marks(model_dir).items():
                    if before.get(name) != mtime:
                        seen.setdefault(mark_step(name), "temp" if name.endswith("_temp")
                                        else "index")
                assert process.poll() is None, f"{context}\ntraining ended (exit " \
                    f"{process.returncode}) before the kill at {moment}: {log.read_text()}"
                assert time.monotonic() < deadline, \
                    f"{context}\nno save of step {moment.step} within 10 minutes"
                time.sleep(0.01)
            wait_until = time.monotonic() + moment.seconds
        while time.monotonic() < wait_until and process.poll() is None:
            time.sleep(0.01)
        alive = process.poll() is None
        elapsed = time.monotonic() - launched
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert alive and process.returncode == -signal.SIGKILL, \
        f"{context}\ntraining was not alive to be killed at {moment} (exit " \
        f"{process.returncode}): the drill's moments are too late. {log.read_text()}"
    latest = tf_latest(model_dir)
    step = max(seen) if seen else None
    how = f", save of step {step} seen as {seen[step]}" if step is not None else ""
    return f"{moment}: killed {elapsed:.1f}s after launch{how}; latest then {latest}"


def tf_latest(model_dir: Path) -> str | None:
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(model_dir))
    return Path(latest).name if latest else None


def damage(model_dir: Path, final: bool = False) -> list[str]:
    """What in `model_dir` looks complete but is not: checkpoints on disk (listed or not) that
    do not load or hold another step than their name, listed ones that are missing, JSON
    that does not parse, a label map that does not read.

    Retention deletes the oldest checkpoint (index first, then data) after a save and only
    then rewrites the state file, so a kill in between leaves an old checkpoint listed without
    its index: nothing that passes for a checkpoint, and the next save finishes the deletion.
    That is tolerated after a kill, unless it is the latest, not once the run has finished."""
    import tensorflow as tf

    from odapi.labelmap import LabelMap
    from odapi.model_dir.checkpoints import list_checkpoints

    problems = []
    try:
        listed = list_checkpoints(model_dir)
    except Exception as e:  # noqa: BLE001 (the state file itself is damaged)
        return [f"the checkpoint state file does not parse: {e}"]
    for number, prefix in enumerate(listed, 1):
        if not Path(prefix + ".index").exists() and (final or number == len(listed)):
            problems.append(f"{Path(prefix).name} is listed but has no index")
    for index in sorted(model_dir.glob("ckpt-*.index")):
        prefix = str(index)[:-len(".index")]
        try:
            step = int(tf.train.load_checkpoint(prefix).get_tensor(GLOBAL_STEP))
        except Exception as e:  # noqa: BLE001
            # TensorFlow merges a save's index into ckpt-N.index in place, while the state
            # file still names the previous checkpoint: a kill then leaves an unlisted index
            # newer than the latest, half-written (seen: "too short to be an sstable", "not
            # an sstable (bad magic number)"). Nothing odapi reads takes it (checkpoints are
            # found through the state file) and the resumed run saves step N over it;
            # tolerated after a kill, never once the run has finished.
            saving = not listed or mark_step(index.name) > mark_step(Path(listed[-1]).name)
            if final or prefix in listed or not saving:
                problems.append(f"{index.name} looks complete but does not load: "
                                f"{str(e).splitlines()[0]}")
            continue
        if step != mark_step(index.name):
            problems.append(f"{index.name} holds step {step}")
    for name in ("manifest.json", "eval/metrics.json"):
        if (model_dir / name).exists():
            try:
                json.loads((model_dir / name).read_text())
            except ValueError as e:
                problems.append(f"{name} is not valid JSON: {e}")
    if (model_dir / "label_map.pbtxt").exists():
        try:
            LabelMap.read(model_dir / "label_map.pbtxt")
        except Exception as e:  # noqa: BLE001
            problems.append(f"label_map.pbtxt does not read: {e}")
    return problems


def final_ap50(model_dir: Path) -> float:
    (entry,) = [e for e in json.loads((model_dir / "eval" / "metrics.json").read_text())
                ["evaluations"] if e["step"] == KILL_STEPS]
    return entry["metrics"]["AP50"]


@pytest.mark.slow
def test_training_killed_at_three_random_moments_still_finishes_and_learns(records,
                                                                         learned_run,
                                                                         tmp_path):
    """Training killed with SIGKILL at three random moments, restarted each time by the same
    command: reaches the final step, every checkpoint loads, and the final AP is no lower than
    an uninterrupted run's with the same seed, beyond noise.

    The moments come from a seeded generator (ODAPI_DRILL_SEED replays a failure's plan; the
    seed and the moments are in every assertion message): during start-up, mid-step between
    saves, and during a checkpoint save (kill_plan). After each kill, nothing in the model dir
    may look complete and be broken (damage).

    The same command, run uninterrupted into another model dir, is the reference (conftest's
    `learned_run`). "Same seed" is all the seeding odapi has: `task.train_data.seed`, the order
    of the training data. Model Garden seeds neither the weight initialisation nor the
    augmentations, and a restart starts the data pipeline afresh, so the runs cannot be
    bit-identical: they agree within noise. 100 steps of TINY's model at 128x128, batch 16,
    learning rate 0.006, reached AP50 0.72-0.81 on the 12 validation images uninterrupted (0.80,
    0.73, 0.72, 0.81) and 0.81 and 0.77 killed three times (120 steps: 0.80-0.85 uninterrupted,
    0.76 killed, and 2 minutes more of the suite). (The demo preset's SpineNet for 160 steps at
    0.003 reached 0.61-0.81 uninterrupted and 0.70-0.88 killed five times, a run-to-run standard
    deviation of about 0.09, 0.12 for the difference of two runs; it took half as long again.) A
    killed run may end higher (a restart starts the data order afresh, so early batches are seen
    again); it may not end lower by more than AP50_TOLERANCE, 0.3, 2.5 of those, so the drill
    does not flake on noise. What it catches: a resume that lost what was learnt (weights not
    restored, or training restarted from scratch) ends where 40 steps from scratch do, since the
    final session trains at most the last 40 steps: 0.20-0.30 measured at step 40, more than
    AP50_TOLERANCE below the reference. AP50_FLOOR, 0.4, makes sure both runs learnt (at step 80
    they were at 0.60-0.74). Subtler losses (optimizer state only) are within noise here."""
    seed = int(os.environ.get("ODAPI_DRILL_SEED") or random.SystemRandom().randrange(10**6))
    plan = kill_plan(seed)
    context = f"drill seed {seed} (ODAPI_DRILL_SEED={seed} replays it); moments: " + \
        "; ".join(map(str, plan))
    print(context)

    def command(model_dir: Path) -> list:
        return ["train", "--data", records, "--model-dir", model_dir, *LEARN]

    model_dir = tmp_path / "killed"
    kills = []
    for number, moment in enumerate(plan, 1):
        kills.append(train_then_kill(command(model_dir), model_dir, moment,
                                     tmp_path / f"session-{number}.log",
                                     f"{context}\nkills: {kills}"))
        problems = damage(model_dir)
        assert not problems, f"{context}\nkills: {kills}\nafter kill {number}: {problems}"
    context += "\nkills:\n  " + "\n  ".join(kills)
    print(context)

    resumed = mark_step(tf_latest(model_dir))
    result = subprocess.run(odapi_command(*command(model_dir)),
                            capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, f"{context}\n{result.stdout}{result.stderr}"
    assert f"from step {resumed}" in result.stderr, f"{context}\n{result.stderr}"
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["sessions"][-1]["start_step"] == resumed, context
    assert manifest["status"] == "finished", context
    assert manifest["final"]["step"] == KILL_STEPS, context
    assert manifest["sessions"][-1]["end_step"] == KILL_STEPS, context
    assert tf_latest(model_dir) == f"ckpt-{KILL_STEPS}", context
    problems = damage(model_dir, final=True)
    assert not problems, f"{context}\n{problems}"
    leftovers = sorted(p.name for p in model_dir.glob("ckpt-*_temp"))  # saves cut short
    leftovers += sorted(p.name for p in model_dir.glob("ckpt-*.data-*")  # deletions cut short
                        if not p.with_name(p.name.split(".data-")[0] + ".index").exists())
    assert not leftovers, f"{context}\nhalf-written or half-deleted files: {leftovers}"
    # (a kill mid-save leaves ckpt-N_temp/ with a partial data file that TensorFlow never
    # removes: `odapi train` deletes them when it starts, remove_unfinished_saves)

    killed_ap50, reference_ap50 = final_ap50(model_dir), final_ap50(learned_run)
    numbers = f"AP50 {killed_ap50:.3f} killed {len(plan)} times, {reference_ap50:.3f} uninterrupted"
    print(numbers)
    assert min(killed_ap50, reference_ap50) >= AP50_FLOOR, f"{context}\n{numbers}"
    assert killed_ap50 >= reference_ap50 - AP50_TOLERANCE, f"{context}\n{numbers}"
