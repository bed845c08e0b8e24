"""Fine-tuning: restoring the parts of another run's checkpoint that fit the model.

Model Garden (and so odapi) saves object-based checkpoints whose top level holds the model's
parts: `backbone/...`, `decoder/...`, `head/...`, plus `optimizer/` and `global_step/`. A
checkpoint from the TF Object Detection API's model zoo does not: TF1 ones are name-based, TF2
ones nest everything under `model/_feature_extractor/...`. Those are refused with a message
that says what was found and what to use instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from odapi.errors import OdapiError
from odapi.model_dir.checkpoints import resolve_checkpoint
from odapi.model_dir.manifest import read_manifest

MODEL_GARDEN_CHECKPOINTS = "the published checkpoints (`odapi checkpoints list`)"


@dataclass
class InitReport:
    """What fine-tuning restored, for the run's log and manifest."""

    checkpoint: str
    restored: list[str] = field(default_factory=list)  # model parts restored
    fresh: list[str] = field(default_factory=list)  # parts that start from scratch
    notes: list[str] = field(default_factory=list)


def _checkpoint_num_classes(prefix: str) -> int | None:
    """The class count of the run that wrote `prefix`, from its odapi manifest, if any."""
    manifest = read_manifest(Path(prefix).parent)  # None: missing or not JSON
    try:
        return int(manifest["config"]["params"]["task"]["model"]["num_classes"])
    except (ValueError, KeyError, TypeError):  # not an odapi manifest, or None
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
            if part in ("backbone", "decoder"):  # always built by now (the head maybe not)
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
