"""Checkpoints: finding them, and restoring another run's weights to fine-tune from.

Model Garden (and so odapi) saves object-based checkpoints whose top level holds the model's
parts: `backbone/...`, `decoder/...`, `head/...`, plus `optimizer/` and `global_step/`. A
checkpoint from the TF Object Detection API's model zoo does not: TF1 ones are name-based, TF2
ones nest everything under `model/_feature_extractor/...`. Those are refused with a message
that says what was found and what to use instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from odapi.atomic import PrivateFolder
from odapi.errors import OdapiError

MODEL_GARDEN_CHECKPOINTS = "the Model Garden checkpoints listed in odapi's README"
_CKPT_NUMBER = re.compile(r"ckpt-(\d+)$")


def checkpoint_step(prefix: str | Path) -> int | None:
    match = _CKPT_NUMBER.search(str(prefix))
    return int(match.group(1)) if match else None


def list_checkpoints(model_dir: Path) -> list[str]:
    """Checkpoint prefixes in `model_dir`, oldest first, as the `checkpoint` state file lists."""
    import tensorflow as tf

    state = tf.train.get_checkpoint_state(str(model_dir))
    if state is None:
        return []
    return [str(p) for p in state.all_model_checkpoint_paths]


_PIN_PREFIX = ".pinned-"
_SHARD = re.compile(r"\.data-\d+-of-(\d+)$")


@contextlib.contextmanager
def pin_checkpoint(prefix: str, folder: Path) -> Iterator[str]:
    """The checkpoint `prefix`, hard-linked into a private folder in `folder` while in use.

    Training's retention (`trainer.max_to_keep`) deletes old checkpoints whenever it saves;
    an evaluator reading one at that moment would lose it half-way. Retention removes names,
    and the links keep the data. The folder is this process's own (atomic.PrivateFolder), so
    `train --eval-every` and the eval service never remove each other's pins. Raises
    FileNotFoundError if the checkpoint is gone or incomplete.
    """
    source = Path(prefix)
    names = {p.name for p in source.parent.glob(source.name + ".*")}
    shards = [m for n in names if (m := _SHARD.search(n))]
    if source.name + ".index" not in names or not shards or len(shards) != int(shards[0][1]):
        raise FileNotFoundError(f"checkpoint {prefix} is gone or incomplete")
    with PrivateFolder(folder, _PIN_PREFIX) as pin:
        for name in sorted(names):
            try:
                os.link(source.parent / name, pin / name)
            except FileNotFoundError:
                raise
            except OSError:  # no hard links here (another file system): a copy will do
                shutil.copy2(source.parent / name, pin / name)
        yield str(pin / source.name)


def remove_unfinished_saves(model_dir: Path) -> list[str]:
    """Delete what saves cut short left in `model_dir`; returns the folders' names.

    TensorFlow writes checkpoint N into `ckpt-N_temp/` and then merges it into `ckpt-N.index`
    and `.data-*`. A trainer killed mid-save leaves the folder with a partial data file
    (`*.tempstate*`, as large as the checkpoint) that no later save removes, not even the
    one that saves step N again. Only the run's trainer saves here, so when it starts, none
    of these folders is in use.
    """
    removed = []
    for folder in sorted(Path(model_dir).glob("ckpt-*_temp")):
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


def latest_checkpoint(model_dir: Path) -> str | None:
    import tensorflow as tf

    return tf.train.latest_checkpoint(str(model_dir))


def resolve_checkpoint(path: str | Path) -> str:
    """A folder (its latest checkpoint) or a prefix like `run/ckpt-300`; checked to exist."""
    import tensorflow as tf

    text = str(path)
    if Path(text).is_dir():
        latest = tf.train.latest_checkpoint(text)
        if latest is None:
            found = sorted(p.name for p in Path(text).glob("*.index"))
            hint = f" (found {', '.join(found[:3])}: give one as DIR/ckpt-N)" if found else ""
            raise OdapiError(f"no checkpoint in this folder{hint}", where=text)
        return latest
    if text.endswith(".index") or ".data-" in text:
        text = re.sub(r"\.(index|data-\d+-of-\d+)$", "", text)
    if not Path(text + ".index").exists():
        raise OdapiError("checkpoint not found (expected PREFIX.index, e.g. model/ckpt-300, or "
                         "a folder holding checkpoints)", where=str(path))
    return text


@dataclass
class InitReport:
    """What fine-tuning restored, for the run's log and manifest."""

    checkpoint: str
    restored: list[str] = field(default_factory=list)  # model parts restored
    fresh: list[str] = field(default_factory=list)  # parts that start from scratch
    notes: list[str] = field(default_factory=list)


def _checkpoint_num_classes(prefix: str) -> int | None:
    """The class count of the run that wrote `prefix`, from its odapi manifest, if any."""
    manifest = Path(prefix).parent / "manifest.json"
    try:
        data = json.loads(manifest.read_text())
        return int(data["config"]["params"]["task"]["model"]["num_classes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _od_api_layout(names: set[str]) -> str | None:
    if "_CHECKPOINTABLE_OBJECT_GRAPH" not in names:
        return "TF1 name-based"
    if any(n.startswith(("model/_feature_extractor", "model/_box_predictor")) for n in names):
        return "TF2 model-zoo"
    return None


def od_api_layout(prefix: str) -> str | None:
    """How `prefix` is laid out if the OD API wrote it: "TF1 name-based", "TF2 model-zoo"."""
    import tensorflow as tf

    try:
        return _od_api_layout({name for name, _ in tf.train.list_variables(prefix)})
    except (tf.errors.OpError, ValueError):
        return None


def _top_levels(variables: list[tuple[str, list[int]]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, _ in variables:
        if ".OPTIMIZER_SLOT" in name or name == "_CHECKPOINTABLE_OBJECT_GRAPH":
            continue
        top = name.split("/", 1)[0]
        counts[top] = counts.get(top, 0) + 1
    return counts


def restore_for_fine_tuning(model, checkpoint: str | Path, num_classes: int) -> InitReport:
    """Restore the parts of `checkpoint` that fit `model`; refuse a checkpoint that does not.

    With the same class count every part is restored; otherwise the backbone and decoder are,
    and the heads (whose shapes depend on the classes) start fresh.
    """
    import tensorflow as tf

    prefix = resolve_checkpoint(checkpoint)
    variables = tf.train.list_variables(prefix)
    names = {name for name, _ in variables}
    tops = _top_levels(variables)
    found = ", ".join(f"{k}/ ({n} variables)" for k, n in sorted(tops.items())) or "nothing"
    layout = _od_api_layout(names)
    if layout == "TF1 name-based":
        raise OdapiError(
            f"this is a TF1 name-based checkpoint (it holds {len(variables)} variables such as "
            f"{variables[0][0] if variables else '?'!r}), as the TF Object Detection API's "
            "model zoo shipped; its variables do not map onto Model Garden models. Fine-tune "
            f"from {MODEL_GARDEN_CHECKPOINTS}, or from another odapi run's model dir",
            where=str(checkpoint))
    if layout == "TF2 model-zoo":
        raise OdapiError(
            "this is a TF Object Detection API (TF2 model zoo) checkpoint: it holds "
            f"{found}, laid out as the OD API's SSD/Faster R-CNN classes, which Model Garden "
            f"models do not share. Fine-tune from {MODEL_GARDEN_CHECKPOINTS} for this "
            "architecture, or from another odapi run's model dir", where=str(checkpoint))

    parts = [p for p in model.checkpoint_items if p in tops]
    if "backbone" not in parts:
        expected = ", ".join(sorted(model.checkpoint_items))
        raise OdapiError(
            f"the checkpoint has no backbone/ to restore (it holds {found}; this model's parts "
            f"are {expected}). Use a checkpoint written by Model Garden or odapi for the same "
            "backbone", where=str(checkpoint))
    report = InitReport(checkpoint=prefix)
    theirs = _checkpoint_num_classes(prefix)
    if theirs != num_classes:
        why = (f"it was trained for {theirs} classes, this run has {num_classes}"
               if theirs else "its class count is unknown")
        kept = [p for p in parts if p in ("backbone", "decoder")]
        report.notes.append(f"restored {', '.join(kept)} only: {why}")
        parts = kept
    report.restored = parts
    report.fresh = sorted(set(model.checkpoint_items) - set(parts))

    restore = tf.train.Checkpoint(**{p: model.checkpoint_items[p] for p in parts})
    try:
        status = restore.read(prefix)
        status.expect_partial()
        for part in parts:
            if part in ("backbone", "decoder"):  # built at construction: must match now
                tf.train.Checkpoint(**{part: model.checkpoint_items[part]}).read(prefix) \
                    .expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        theirs_part = {p: tops.get(p, 0) for p in parts}
        ours = {p: len(model.checkpoint_items[p].weights) for p in parts
                if hasattr(model.checkpoint_items[p], "weights")}
        detail = str(e).splitlines()[0][:300]
        raise OdapiError(
            f"the checkpoint's parts do not fit this model (checkpoint variables per part: "
            f"{theirs_part}; this model's: {ours}; {detail}). It was trained with another "
            "backbone or input configuration: use a checkpoint of the same architecture",
            where=str(checkpoint)) from None
    return report
