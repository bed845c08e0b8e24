"""Where the examples come from and how they are evaluated: input readers, label map, eval_config.

Record paths and label maps are looked up beside the config, then in the --data folder; what
the command line supplies instead (--train-data, --val-data, --label-map) is neither looked up
nor used. The evaluation sample the file asks for (every Nth example, at most M) is returned
for `odapi train` to write (`odapi.engine.eval_subset`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from odapi.data.annotations import split_from_name
from odapi.engine.pipeline_config.draft import Draft
from odapi.engine.pipeline_config.fates import APPLIED, APPROXIMATED, IGNORED
from odapi.errors import OdapiError

if TYPE_CHECKING:
    from odapi.protos import pipeline_pb2


@dataclass(frozen=True)
class Inputs:
    """The files the input readers name, as found, and the evaluation sample they ask for."""

    train_data: str | None  # comma-separated record files or globs
    val_data: str | None
    label_map: str | None
    eval_every_nth: int  # sample_1_of_n_examples of the first eval_input_reader


def translate_input_readers(draft: Draft,
                            config: pipeline_pb2.TrainEvalPipelineConfig) -> Inputs:
    train = config.train_input_reader
    train_data = val_data = None
    eval_every_nth = 1
    key = "train_input_reader.tf_record_input_reader.input_path"
    if "train_data" in draft.given:
        draft.mark(key, IGNORED, f"replaced by --train-data {draft.given['train_data']}")
    elif train.tf_record_input_reader.input_path:
        train_data = _record_paths(draft, train, "train_input_reader")
        draft.set("task.train_data.input_path", train_data)
        draft.mark(key, APPLIED, "task.train_data.input_path")
    draft.mark("train_input_reader.shuffle", APPLIED if train.shuffle else IGNORED,
               "Model Garden shuffles training examples")
    draft.mark("train_input_reader.num_epochs", APPLIED if not train.num_epochs else IGNORED,
               "training reads the records until the last step")
    draft.mark("train_input_reader.sample_1_of_n_examples", IGNORED,
               "odapi trains on every training example")

    label_maps = [("train_input_reader.label_map_path", train.label_map_path)]
    for index, reader in enumerate(config.eval_input_reader):
        prefix = f"eval_input_reader[{index}]"
        if index:
            draft.mark(prefix, IGNORED, "odapi evaluates on the first eval_input_reader")
            continue
        label_maps.append((f"{prefix}.label_map_path", reader.label_map_path))
        key = f"{prefix}.tf_record_input_reader.input_path"
        if "val_data" in draft.given:
            draft.mark(key, IGNORED, f"replaced by --val-data {draft.given['val_data']}")
        elif reader.tf_record_input_reader.input_path:
            val_data = _record_paths(draft, reader, prefix)
            draft.set("task.validation_data.input_path", val_data)
            if _is_testing(reader):
                draft.mark(key, APPLIED, "task.validation_data.input_path: evaluation runs on "
                           "these testing records, as it did in the OD API", warn=True)
            else:
                draft.mark(key, APPLIED, "task.validation_data.input_path")
        draft.mark(f"{prefix}.shuffle", APPLIED if not reader.shuffle else IGNORED,
                   "Model Garden reads validation examples in order")
        draft.mark(f"{prefix}.num_epochs", APPLIED, "each validation example is evaluated "
                   "once")
        if reader.HasField("sample_1_of_n_examples"):
            eval_every_nth = max(1, reader.sample_1_of_n_examples)
            draft.mark(f"{prefix}.sample_1_of_n_examples", APPLIED, "every Nth validation "
                       "example is written to the model dir and evaluated "
                       "(--sample-1-of-n-eval-examples overrides it)")
    label_map = _label_map(draft, label_maps)
    return Inputs(train_data, val_data, label_map, eval_every_nth)


def _is_testing(reader: pipeline_pb2.InputReader) -> bool:
    """Whether the reader's records are a testing split by name (`test.record`)."""
    return any(split_from_name(os.path.basename(value)) == "test"
               for value in reader.tf_record_input_reader.input_path)


def _record_paths(draft: Draft, reader: pipeline_pb2.InputReader, path: str) -> str | None:
    """The reader's record files as found, comma-separated; None if any is missing."""
    values = list(reader.tf_record_input_reader.input_path)
    found = [draft.locate(f"{path}.tf_record_input_reader.input_path", value)
             for value in values]
    return ",".join(f for f in found if f) if values and all(found) else None


def _label_map(draft: Draft, label_maps: list[tuple[str, str]]) -> str | None:
    """The one label map training and evaluation share; differing classes are an error."""
    if "label_map" in draft.given:
        for path, _ in label_maps:
            draft.mark(path, IGNORED, f"replaced by --label-map {draft.given['label_map']}")
        return None
    chosen: tuple[str, str] | None = None  # (field path, the file found)
    for path, value in label_maps:
        if not value:
            continue
        found = draft.locate(path, value)
        if found is None:
            continue
        if chosen is None:
            chosen = (path, found)
            draft.mark(path, APPLIED, "odapi's label_map: class names and the class count")
        elif found != chosen[1]:
            from odapi.labelmap import LabelMap

            if LabelMap.read(Path(found)) != LabelMap.read(Path(chosen[1])):
                raise OdapiError(f"{path} {value!r} differs from {chosen[0]}: training and "
                                 "evaluation must use the same label map",
                                 where=draft.where(path))
            draft.mark(path, APPLIED, f"the same classes as {chosen[0]}")
        else:
            draft.mark(path, APPLIED, f"the same file as {chosen[0]}")
    if chosen is None:
        return None
    draft.set("label_map", chosen[1])
    return chosen[1]


def translate_eval_config(draft: Draft, evaluation: pipeline_pb2.EvalConfig) -> int | None:
    """eval_config's settings; returns num_examples, the most validation examples to evaluate."""
    max_examples = None
    if evaluation.HasField("num_examples"):
        max_examples = evaluation.num_examples
        draft.mark("eval_config.num_examples", APPLIED, "at most this many validation "
                   "examples are evaluated (a sample is written to the model dir if fewer "
                   "than the records hold)")
    if evaluation.metrics_set:  # one field, a list: its fate is its first metric's
        metric = evaluation.metrics_set[0]
        if metric == "coco_detection_metrics":
            fate, note = APPLIED, "odapi's COCO evaluation, with per-class AP"
        elif metric.startswith("pascal_voc") or metric.startswith("oid_"):
            fate, note = APPROXIMATED, "odapi reports COCO metrics: AP50 is the PASCAL VOC "\
                "measure"
        else:
            fate, note = IGNORED, "odapi reports COCO metrics"
        draft.mark("eval_config.metrics_set", fate, note)
    draft.mark("eval_config.use_moving_averages",
               APPLIED if not evaluation.use_moving_averages else IGNORED,
               "odapi evaluates the trained weights")
    draft.apply_fields(evaluation, "eval_config",
                       {"batch_size": "task.validation_data.global_batch_size"})
    return max_examples
