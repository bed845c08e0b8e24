"""Sharded TFRecord files: written under a staging name, moved into place only when complete.

Shards are named like TFDS and Model Garden expect (`train-00000-of-00004.tfrecord`), so a glob
`train-*.tfrecord` finds a split. While a conversion runs, its files live in a hidden
`.odapi-partial-*/` folder inside the output folder (an `atomic.PrivateFolder`); a killed run
leaves only that folder, which the next run removes. `report.json` is moved in last: its
presence marks a complete output.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from odapi.atomic import PrivateFolder
from odapi.errors import OdapiError

SHARD_BYTES = 100 * 1024 * 1024  # aim for ~100 MB shards: big reads, yet several per split
SHARD_PATTERN = re.compile(r"^[\w.-]+-\d{5}-of-\d{5}\.tfrecord$")
STAGING_PREFIX = ".odapi-partial-"
COMPLETION_MARKER = "report.json"
OUTPUT_NAMES = ("label_map.pbtxt", "report.txt", COMPLETION_MARKER)
CONVERT_FIX = "convert a dataset with `odapi convert` and pass its folder with --data"


def split_pattern(folder: str | Path, split: str) -> str:
    """The glob that finds one split's shards in a folder `odapi convert` wrote."""
    return str(Path(folder) / _split_glob(split))


def _split_glob(split: str) -> str:
    return f"{split}-*.tfrecord"


def split_files(folder: str | Path, split: str) -> list[Path]:
    """One split's shards in a converted folder; the folder's name is taken literally."""
    return expand_records(split_pattern(glob.escape(str(folder)), split))


def evaluation_split(folder: str | Path) -> str:
    """The split of a converted folder that evaluation reads: `val`; where there is none but a
    `test` split (train/test datasets, as in the OD API tutorial), `test`."""
    has = {split: bool(split_files(folder, split)) for split in ("val", "test")}
    return "test" if has["test"] and not has["val"] else "val"


def expand_records(pattern: str | Path, folders: bool = False) -> list[Path]:
    """The files one pattern names: a file, a glob's matches (sorted; globbed as TensorFlow
    globs an input_path: `**` as `*`, and `*` matches names starting with a dot, as a macOS
    `._train-...` file, which training would read) and, with `folders`, a folder's record
    files.

    The one place record paths are expanded, so every command reads the same files for a
    pattern. Nothing that exists: an empty list (callers say what to pass instead).
    """
    text = str(pattern)
    if folders and os.path.isdir(text):
        return sorted(p for p in Path(text).iterdir()
                      if ".tfrecord" in p.name or p.name.endswith(".record"))
    if glob.has_magic(text):
        return [Path(f) for f in sorted(glob.glob(text, include_hidden=True))]
    return [Path(text)] if os.path.isfile(text) else []  # any OSError: not there


def record_files(pattern: str) -> list[Path]:
    """The files an input_path names: comma-separated files and globs (as Model Garden reads
    it), in order; parts that match nothing are left out."""
    return [f for part in str(pattern).split(",") if part for f in expand_records(part)]


def require_records(pattern: str, split: str, fix: str = CONVERT_FIX) -> list[Path]:
    """The files of `split`'s input_path; none is an error naming the pattern, and `fix`."""
    files = record_files(pattern)
    if not files:
        raise OdapiError(f"no {split} records match {pattern!r}; {fix}", where=split)
    return files


def count_examples(pattern: str) -> int | None:
    """How many examples the records hold (None when no file matches): from the conversion
    report when `pattern` is one split of a folder `odapi convert` wrote, else by reading."""
    files = record_files(pattern)
    if not files:
        return None
    folder, name = os.path.split(pattern)
    split = name.split("-", 1)[0]
    if name == _split_glob(split):
        try:
            report = json.loads((Path(folder) / COMPLETION_MARKER).read_text())
            return int(report["splits"][split]["images"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    import tensorflow as tf

    try:
        dataset = tf.data.TFRecordDataset([str(f) for f in files])
        return int(dataset.reduce(0, lambda count, _: count + 1))
    except tf.errors.OpError:  # unreadable: pre-flight names the file
        return None


def shard_names(split: str, num_shards: int) -> list[str]:
    return [f"{split}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]


def shards_for(total_bytes: int) -> int:
    return max(1, math.ceil(total_bytes / SHARD_BYTES))


def _is_output(name: str) -> bool:
    return bool(SHARD_PATTERN.match(name)) or name in OUTPUT_NAMES


class StagedOutput:
    """An output folder whose new files appear all at once, when `commit` runs."""

    def __init__(self, out: Path, overwrite: bool = False):
        self.out = Path(out)
        self._created = not self.out.exists()
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OdapiError(f"cannot create the output folder: {e.strerror}", str(out)) from None
        if not os.access(self.out, os.W_OK | os.X_OK):
            raise OdapiError("the output folder is not writable; choose another --out",
                             str(out))
        existing = sorted(p.name for p in self.out.iterdir() if _is_output(p.name))
        if existing and not overwrite:
            raise OdapiError(
                f"the output folder already holds a conversion ({', '.join(existing[:3])}"
                f"{', ...' if len(existing) > 3 else ''}); pass --overwrite to replace it, "
                "or choose another --out", str(out))
        self._staging = PrivateFolder(self.out, STAGING_PREFIX)  # a killed run's is removed
        self.staging = self._staging.path

    def path(self, name: str) -> Path:
        return self.staging / name

    def write_text(self, name: str, text: str) -> None:
        try:
            self.path(name).write_text(text, "utf-8")
        except OSError as e:
            raise write_failed(self.out, e) from None

    def commit(self) -> list[Path]:
        """Replace the previous conversion's files by the staged ones; the marker goes last."""
        (self.out / COMPLETION_MARKER).unlink(missing_ok=True)
        for old in self.out.iterdir():
            if old.is_file() and _is_output(old.name):
                old.unlink()
        staged = sorted((p for p in self.staging.iterdir() if p.name != PrivateFolder.LOCK),
                        key=lambda p: p.name == COMPLETION_MARKER)
        final = []
        for path in staged:
            target = self.out / path.name
            os.replace(path, target)
            final.append(target)
        self._staging.release()
        return final

    def abort(self) -> None:
        """Remove what this run staged, and the output folder too if the run created it."""
        self._staging.release()
        if self._created:
            with contextlib.suppress(OSError):
                self.out.rmdir()  # only when empty


def write_failed(out: Path, error: Exception) -> OdapiError:
    """A failed write as a sentence; a full disk says so, and what to do about it."""
    text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    full = isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
    if full or "No space left" in text or "quota exceeded" in text.lower():
        return OdapiError("no space left on the output device: the records need about as "
                          "much space as the images; free some space or choose another --out "
                          "(nothing was kept of this run)", where=str(out))
    return OdapiError(f"cannot write the output: {text}", where=str(out))


class ShardedWriter:
    """Writes serialized examples round-robin over `paths` (so every shard mixes the dataset)."""

    def __init__(self, paths: list[Path], out: Path):
        import tensorflow as tf

        self.paths = paths
        self.out = out  # named in errors: the shards themselves are in the staging folder
        self._errors = (tf.errors.OpError, OSError)
        try:
            self._writers = [tf.io.TFRecordWriter(str(p)) for p in paths]
        except self._errors as e:
            raise write_failed(out, e) from None
        self._next = 0

    def write(self, serialized: bytes) -> None:
        try:
            self._writers[self._next].write(serialized)
        except self._errors as e:
            raise write_failed(self.out, e) from None
        self._next = (self._next + 1) % len(self._writers)

    def close(self) -> None:
        try:
            for writer in self._writers:
                writer.close()
        except self._errors as e:
            raise write_failed(self.out, e) from None


def expand_record_paths(patterns: Iterable[str | Path]) -> list[Path]:
    """Files, folders (every *.tfrecord* in them) and globs, each checked to exist."""
    paths: list[Path] = []
    for pattern in patterns:
        found = expand_records(pattern, folders=True)
        if not found:
            raise OdapiError("no TFRecord files here; give record files, a folder of them, "
                             "or a glob like 'records/train-*.tfrecord'", where=str(pattern))
        paths.extend(found)
    return paths


def read_records(paths: Iterable[Path]) -> Iterator[bytes]:
    """Serialized records, file by file; a corrupt file is an error that names it."""
    import tensorflow as tf

    for path in paths:
        try:
            yield from tf.data.TFRecordDataset(str(path)).as_numpy_iterator()
        except tf.errors.OpError as e:
            raise OdapiError(f"not a readable TFRecord file ({e.message.splitlines()[0]})",
                             where=str(path)) from None
