"""Checks that run before TensorFlow trains: anything that can fail later is made to fail now."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from odapi.atomic import probe_writable, sha256_of
from odapi.data.records import require_records
from odapi.errors import OdapiError
from odapi.labelmap import LabelMap


@dataclass
class RecordSet:
    """One split's record files: what they hold and their fingerprint."""

    pattern: str
    files: list[Path] = field(default_factory=list)
    examples: int = 0
    boxes: int = 0
    labels: Counter = field(default_factory=Counter)  # class id -> boxes
    fingerprint: list[dict] = field(default_factory=list)  # path, bytes, sha256 per file

    def to_dict(self) -> dict:
        return {"pattern": self.pattern, "examples": self.examples, "boxes": self.boxes,
                "boxes_per_class_id": {str(k): v for k, v in sorted(self.labels.items())},
                "files": self.fingerprint}


def scan_records(pattern: str, label_map: LabelMap, split: str,
                 cache: dict[str, dict] | None = None) -> RecordSet:
    """Count examples and boxes per class id; every id must be in the label map.

    `cache` maps a file's path to an earlier scan of it (with size and mtime), so a resumed run
    does not read the dataset again.
    """
    import tensorflow as tf

    result = RecordSet(pattern=pattern, files=require_records(pattern, split))
    cache = cache or {}
    for path in result.files:
        stat = path.stat()
        cached = cache.get(str(path))
        if cached and cached.get("bytes") == stat.st_size and \
                cached.get("mtime_ns") == stat.st_mtime_ns:
            entry = cached
        else:
            entry = {"path": str(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                     "sha256": sha256_of(path), **_count(path, tf)}
        result.fingerprint.append(entry)
        result.examples += entry["examples"]
        result.boxes += entry["boxes"]
        result.labels.update({int(k): v for k, v in entry["labels"].items()})
    if result.examples == 0:
        raise OdapiError(f"the {split} records hold no examples", where=pattern)
    unknown = sorted(set(result.labels) - set(label_map.names_by_id))
    if unknown:
        raise OdapiError(
            f"the {split} records use class id(s) {unknown} that the label map does not have "
            f"(it has {sorted(label_map.names_by_id)}); use the label_map.pbtxt written with "
            "these records", where=pattern)
    return result


def _count(path: Path, tf) -> dict:
    spec = {"image/object/class/label": tf.io.VarLenFeature(tf.int64)}
    examples, labels = 0, Counter()
    try:
        for batch in tf.data.TFRecordDataset(str(path)).batch(512):
            parsed = tf.io.parse_example(batch, spec)["image/object/class/label"]
            examples += int(batch.shape[0])
            labels.update(parsed.values.numpy().tolist())
    except tf.errors.OpError as e:
        raise OdapiError(f"not a readable detection TFRecord file ({e.message.splitlines()[0]})",
                         where=str(path)) from None
    return {"examples": examples, "boxes": sum(labels.values()),
            "labels": {str(k): v for k, v in labels.items()}}


def check_writable(model_dir: Path) -> None:
    try:
        probe_writable(model_dir)
    except OSError as e:
        raise OdapiError(f"the model dir is not writable ({e.strerror}, uid {os.getuid()}); "
                         "choose another --model-dir or fix its permissions",
                         where=str(model_dir)) from None


def check_same_model(previous: dict | None, params, model_dir: Path) -> None:
    """A model dir holds one model: resuming with another architecture would fail mid-restore."""
    if not previous:
        return
    before = previous.get("config", {}).get("params", {}).get("task", {}).get("model")
    now = params.as_dict()["task"]["model"]
    if before is None or before == now:
        return
    changed = sorted(_differences(before, now))
    shown = "; ".join(changed[:4]) + (" ..." if len(changed) > 4 else "")
    raise OdapiError(
        f"the model dir holds a run of a different model ({shown}); train into a new "
        "--model-dir, or fine-tune from this run with --init-checkpoint "
        f"{model_dir}", where=str(model_dir))


def _differences(a, b, prefix="task.model"):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from _differences(a.get(key), b.get(key), f"{prefix}.{key}")
    elif a != b:
        yield f"{prefix}: {a!r} -> {b!r}"
