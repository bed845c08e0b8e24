"""Evaluate on a sample of the validation records: every Nth example, at most M of them.

What the tutorial's `--sample_1_of_n_eval_examples` and a pipeline.config's
`sample_1_of_n_examples` / `num_examples` ask for. The sample is written as one record file
into the model dir, so evaluation during training and `odapi eval` later read the same
examples, and the run's manifest names it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from odapi.data.records import read_records, record_files

SUBSET_DIR = "eval-subset"


@dataclass
class EvalSubset:
    source: str  # the validation records it was drawn from
    every: int
    limit: int | None
    examples: int  # in the sample
    total: int  # in the source
    path: str | None  # the sample's record file; None when it would hold every example

    def to_dict(self) -> dict:
        return asdict(self)


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def write_eval_subset(pattern: str, every: int, limit: int | None,
                      folder: Path) -> EvalSubset | None:
    """Write every `every`th example of `pattern`, at most `limit`, into `folder`.

    Returns None when `pattern` matches no records (pre-flight reports that). A file that
    already holds the same sample is left untouched, so a resumed run's evaluator, or an
    `odapi eval --follow` beside it, never sees it change.
    """
    import tensorflow as tf

    files = record_files(pattern)
    if not files:
        return None
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".val-sample.", suffix=".partial", dir=folder)
    os.close(fd)
    kept = total = 0
    capped = False
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for index, record in enumerate(read_records(files)):
                total += 1
                if index % every:
                    continue
                if limit is not None and kept >= limit:
                    capped = True
                    continue
                writer.write(record)
                kept += 1
        if kept == total:  # nothing left out: evaluate the records themselves
            return EvalSubset(pattern, every, limit, kept, total, None)
        target = folder / (f"val-1-in-{every}" + (f"-first-{limit}" if capped else "")
                           + ".tfrecord")
        if _digest(target) != _digest(Path(tmp)):
            os.replace(tmp, target)
        return EvalSubset(pattern, every, limit, kept, total, str(target))
    finally:
        Path(tmp).unlink(missing_ok=True)


def use_eval_subset(run, model_dir: Path) -> EvalSubset | None:
    """Point `run`'s validation data at its sample, when it asks for one; note it in the run."""
    if run.eval_sample_every <= 1 and not run.eval_sample_limit:
        return None
    subset = write_eval_subset(run.val_data, run.eval_sample_every, run.eval_sample_limit,
                               Path(model_dir) / SUBSET_DIR)
    if subset is None:
        return None
    run.eval_subset = subset.to_dict()
    if subset.path:
        run.params.override({"task": {"validation_data": {"input_path": subset.path}}})
    return subset
