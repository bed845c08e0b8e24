"""A model dir's checkpoints: numbered, listed as TensorFlow's `checkpoint` file says, found from
a folder or a prefix, pinned while read, and the leftovers of saves cut short removed."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from odapi.atomic import PrivateFolder
from odapi.errors import OdapiError

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
