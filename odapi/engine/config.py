"""From `--config` to a fully resolved Model Garden experiment plus odapi's own run settings.

CONFIG is a preset name from `configs/` or a YAML file: Model Garden's experiment keys (`task`,
`trainer`, `runtime`) under an `experiment:` naming the registered Model Garden experiment to
start from, plus odapi's `label_map:`. Resolution runs in stages, in this order:

1. the file: the YAML, or an OD API pipeline.config translated into the same tree
   (`engine/pipeline_config`);
2. the experiment's defaults, and odapi's for training on your own records (no COCO
   annotation file, no unreachable gs:// checkpoints, every validation image evaluated);
3. the file's keys, then `--set key=value`;
4. the data paths: command line, then the `--data` folder, then the file;
5. the label map, and the class count from it;
6. the length (`--steps`, `--epochs`, ...) with the learning-rate schedule stretched to it;
7. the checkpoint to start from, which odapi restores itself;
8. the device policy (GPU if present).
"""

from __future__ import annotations

import copy
import difflib
import os
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from odapi.data.records import count_examples, evaluation_split, expand_records, split_pattern
from odapi.engine import cluster
from odapi.engine.length import Length, RunLength, decide, scale_schedule
from odapi.errors import OdapiError
from odapi.labelmap import LabelMap

TOP_LEVEL_KEYS = ("experiment", "label_map", "task", "trainer", "runtime")
CONFIG_DIR_ENV = "ODAPI_CONFIG_DIR"


def preset_dir() -> Path:
    """`configs/` beside the package (a source checkout), or $ODAPI_CONFIG_DIR (an image)."""
    if os.environ.get(CONFIG_DIR_ENV):
        return Path(os.environ[CONFIG_DIR_ENV])
    return Path(__file__).resolve().parents[2] / "configs"


def list_presets() -> list[str]:
    return sorted(p.stem for p in preset_dir().glob("*.yaml"))


def find_config(config: str | Path) -> Path:
    path = Path(config)
    if path.is_file():
        return path
    preset = preset_dir() / f"{config}.yaml"
    if preset.is_file():
        return preset
    presets = list_presets()
    close = difflib.get_close_matches(str(config), presets, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise OdapiError(f"no config file or preset named {str(config)!r}{hint} Presets: "
                     f"{', '.join(presets) or 'none found in ' + str(preset_dir())}")


def is_od_api_pipeline(config: str | Path) -> bool:
    """Whether CONFIG (a file or preset) is an OD API pipeline.config: it is translated, not
    read as YAML, and names its own records, so `--data` is not converted for it."""
    from odapi.engine.pipeline_config.reading import is_pipeline_config

    return is_pipeline_config(find_config(config))


@dataclass
class RunConfig:
    """Everything a run needs: the Model Garden experiment and what odapi adds around it."""

    params: Any  # official.core.config_definitions.ExperimentConfig, resolved and validated
    experiment: str  # the registered Model Garden experiment it starts from
    source: str  # the preset or file it came from
    label_map: LabelMap
    label_map_path: Path
    init_checkpoint: str | None = None
    eval_every: int | None = None
    patience: int | None = None  # stop after this many evaluations without a better AP
    explicit_keys: set[str] = field(default_factory=set)  # keys the user set, dotted
    eval_sample_every: int = 1  # evaluate every Nth validation example
    eval_sample_limit: int | None = None  # and at most this many
    eval_subset: dict | None = None  # the sample written for that (eval_subset.py)
    length: RunLength | None = None  # steps, and epochs of the training records
    notes: list[str] = field(default_factory=list)  # approximations the user should know

    @property
    def train_steps(self) -> int:
        return int(self.params.trainer.train_steps)

    @property
    def train_data(self) -> str:
        return str(self.params.task.train_data.input_path)

    @property
    def val_data(self) -> str:
        return str(self.params.task.validation_data.input_path)

    def to_dict(self) -> dict:
        result = {
            "experiment": self.experiment,
            "source": self.source,
            "label_map": str(self.label_map_path),
            "init_checkpoint": self.init_checkpoint,
            "eval_every": self.eval_every,
            "patience": self.patience,
            "params": self.params.as_dict(),
        }
        if self.length:
            result["length"] = self.length.to_dict()
        if self.eval_subset:
            result["eval_subset"] = self.eval_subset
        if self.notes:
            result["notes"] = self.notes
        return result


def _load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise OdapiError(f"not valid YAML: {getattr(e, 'problem', e)}", where=where) from None
    except (OSError, UnicodeDecodeError) as e:
        raise OdapiError(f"cannot read the config: {e}", where=str(path)) from None
    if not isinstance(data, dict):
        raise OdapiError("a config is a YAML mapping with experiment:, task:, trainer:, ...",
                         where=str(path))
    unknown = [k for k in data if k not in TOP_LEVEL_KEYS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], TOP_LEVEL_KEYS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise OdapiError(f"unknown top-level key {unknown[0]!r}{hint} "
                         f"(known: {', '.join(TOP_LEVEL_KEYS)})", where=str(path))
    return data


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _nest(dotted: str, value: Any) -> dict:
    tree: Any = value
    for part in reversed(dotted.split(".")):
        tree = {part: tree}
    return tree


def _valid_keys(params) -> set[str]:
    """Every dotted key of the config, inactive one-of branches (e.g. `adamw`) and unset
    optional blocks (e.g. `parser.aug_type`) included."""
    import dataclasses
    import typing

    from official.modeling.hyperparams import base_config

    keys: set[str] = set()

    def unset_block(annotation):
        """A default instance of the Config class an `Optional[...]` field holds, if any."""
        for candidate in (annotation, *typing.get_args(annotation)):
            if isinstance(candidate, type) and issubclass(candidate, base_config.Config):
                return candidate()
        return None

    def walk(config, prefix: str):
        for f in dataclasses.fields(config):
            dotted = f"{prefix}{f.name}"
            keys.add(dotted)
            value = getattr(config, f.name, None)
            if value is None:
                value = unset_block(f.type)
            if isinstance(value, base_config.Config):
                walk(value, dotted + ".")

    walk(params, "")
    return keys


def _annotation(params, dotted: str) -> Any:
    """The type the config class declares for `dotted`; None when it cannot be told."""
    import typing

    parent = params
    *path, name = dotted.split(".")
    for part in path:
        parent = getattr(parent, part, None)
    try:
        return typing.get_type_hints(type(parent)).get(name)
    except Exception:  # a config class whose hints do not resolve: let Model Garden judge
        return None


def _optional(params, dotted: str) -> bool:
    """Whether the config field `dotted` may be None (an `Optional[...]` block)."""
    import typing

    annotation = _annotation(params, dotted)
    return annotation is None or type(None) in typing.get_args(annotation)


def _scalar(params, dotted: str) -> bool:
    """Whether the field takes exactly one str, int, float or bool (maybe None)."""
    import typing

    annotation = _annotation(params, dotted)
    origin = typing.get_origin(annotation)
    if origin is None:
        kinds = {annotation}
    elif origin in (typing.Union, types.UnionType):
        kinds = set(typing.get_args(annotation)) - {type(None)}
    else:  # List[int] and the like
        return False
    return bool(kinds) and kinds <= {str, int, float, bool}


def _check_keys(params, overrides: dict, where: str) -> set[str]:
    """Every dotted key in `overrides` exists in `params`; else name the closest valid one."""
    valid = _valid_keys(params)
    flat = _flatten(overrides)
    for key in flat:
        if key in valid:
            value = flat[key]
            block = any(k.startswith(key + ".") for k in valid)
            if block and not isinstance(value, dict) and (value is not None
                                                          or not _optional(params, key)):
                raise OdapiError(f"config key {key!r} holds a block of keys; give it a mapping "
                                 f"(`{key.rpartition('.')[2]}: {{...}}`), not {value!r}",
                                 where=where)
            if isinstance(value, list | dict) and _scalar(params, key):
                raise OdapiError(f"config key {key!r} takes one value, not {value!r}",
                                 where=where)
            continue
        parent = key.rpartition(".")[0]
        siblings = [k for k in valid if k.rpartition(".")[0] == parent]
        close = difflib.get_close_matches(key, siblings or valid, n=1, cutoff=0.5) or \
            difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise OdapiError(f"config key {key!r} does not exist{hint}", where=where)
    return set(flat)


def _override(params, overrides: dict, where: str) -> None:
    try:
        params.override(overrides, is_strict=True)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise OdapiError(f"cannot apply {overrides}: {e}", where=where) from None


def parse_set(assignment: str) -> tuple[str, Any]:
    """`trainer.train_steps=500` -> ("trainer.train_steps", 500); values are YAML."""
    key, sep, text = assignment.partition("=")
    if not sep or not key.strip():
        raise OdapiError(f"--set {assignment!r}: write it as key=value, e.g. "
                         "--set trainer.train_steps=500")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return key.strip(), value


def _resolve_path(value: str, base: Path) -> str:
    """A path relative to the config file's folder, unless absolute or remote (gs://...)."""
    if not value or "://" in value or os.path.isabs(value):
        return value
    return str((base / value).resolve()) if (base / value).exists() or \
        expand_records(base / value) else value


def _model_garden_defaults() -> dict:
    """What every odapi run changes from Model Garden's COCO-centred experiment defaults."""
    return {
        "task": {
            "annotation_file": None,  # evaluate against the records' own boxes
            "init_checkpoint": None,  # odapi restores checkpoints itself (fine_tuning.py)
            "validation_data": {"drop_remainder": False, "is_training": False},
            "train_data": {"is_training": True},
        },
    }


def _device_policy(params, explicit: set[str]) -> None:
    """GPU when TensorFlow sees one (Model Garden's num_gpus=0 default trains on the CPU)."""
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    runtime = {}
    if "runtime.num_gpus" not in explicit:
        runtime["num_gpus"] = gpus
    if "runtime.distribution_strategy" not in explicit:
        if cluster.active():
            runtime["distribution_strategy"] = "multi_worker_mirrored"
        else:
            runtime["distribution_strategy"] = "mirrored" if gpus > 1 else "one_device"
    if "runtime.mixed_precision_dtype" not in explicit:
        # Model Garden's spelling: "float16" sets Keras' mixed_float16 policy and wraps the
        # optimizer for loss scaling ("mixed_float16" is refused as an unexpected dtype)
        runtime["mixed_precision_dtype"] = "float16" if gpus else "float32"
    precision = runtime.get("mixed_precision_dtype", params.runtime.mixed_precision_dtype)
    data_dtype = precision if precision in ("float16", "bfloat16") else "float32"
    task: dict = {}
    for split in ("train_data", "validation_data"):
        if f"task.{split}.dtype" not in explicit:
            task[split] = {"dtype": data_dtype}
    params.override({"runtime": runtime, "task": task}, is_strict=True)


def resolve(config: str | Path, *, data: Path | None = None, train_data: str | None = None,
            val_data: str | None = None, label_map: Path | None = None,
            length: Length | None = None, sets: list[str] = (),
            init_checkpoint: str | None = None, eval_every: int | None = None,
            sample_1_of_n_eval: int | None = None) -> RunConfig:
    """Resolve CONFIG and the command line into a RunConfig (no TensorFlow graph is built).

    `data` is a folder written by `odapi convert`: its train-*, val-* (or test-*) records and
    label map. A pipeline.config names its own records and label map; `data` is then the second
    place its relative paths are looked up, and fills in only what the config leaves out. The
    stages below run in the order the module's docstring gives.
    """
    path = find_config(config)
    given = {key: str(value) for key, value in (
        ("train_data", train_data), ("val_data", val_data), ("label_map", label_map),
        ("init_checkpoint", init_checkpoint)) if value}
    source = _read_source(path, data, given)
    experiment, params = _experiment(source.tree.pop("experiment", None), path)
    file_steps, explicit, on_command_line = _apply_file_and_sets(params, source.tree, sets, path)
    notes = source.notes + _apply_data_paths(params, source, data, train_data, val_data)
    labels, label_map = _apply_label_map(params, source, data, label_map, explicit, path)
    run_length, scaled = _apply_length(params, length or Length(), file_steps, on_command_line)
    notes += scaled
    checkpoint = _take_init_checkpoint(params, init_checkpoint, source.base)
    _device_policy(params, explicit)
    try:
        params.validate()
    except (KeyError, ValueError, AssertionError, TypeError) as e:
        raise OdapiError(f"the resolved config is inconsistent: {e}", where=str(path)) from None
    size_key = "task.model.input_size"
    _check_input_size(params.task.model, f"--set {size_key}" if size_key in on_command_line
                      else str(path))
    _check_summary_interval(params.trainer, set(on_command_line), path)
    pipeline = source.pipeline
    return RunConfig(params=params, experiment=experiment, source=str(path), label_map=labels,
                     label_map_path=label_map, init_checkpoint=checkpoint,
                     eval_every=eval_every, explicit_keys=explicit, length=run_length,
                     eval_sample_every=sample_1_of_n_eval
                     or (pipeline.eval_every_nth if pipeline else 1),
                     eval_sample_limit=pipeline.max_eval_examples if pipeline else None,
                     notes=notes)


def _check_input_size(model, where: str) -> None:
    """A feature pyramid halves the input max_level times, then adds each level to the one
    below scaled up: a side that does not halve evenly fails deep in TensorFlow instead."""
    size = model.input_size
    if not isinstance(size, list | tuple) or len(size) != 3 or not all(
            isinstance(value, int) and not isinstance(value, bool) and value > 0
            for value in size):
        raise OdapiError("task.model.input_size must be [height, width, channels] in whole "
                         f"pixels, e.g. [640, 640, 3], not {size!r}", where=where)
    multiple = 2 ** getattr(model, "max_level", 0)
    sides = list(size[:2])
    if any(side % multiple for side in sides):
        fitting = [-(-side // multiple) * multiple for side in sides]
        raise OdapiError(f"task.model.input_size {list(model.input_size)}: height and width "
                         f"must be multiples of {multiple} (2 ** task.model.max_level) for "
                         f"this model; e.g. {[*fitting, *model.input_size[2:]]}",
                         where=where)


def _check_summary_interval(trainer, on_command_line: set[str], path: Path) -> None:
    """Orbit writes training summaries at the end of a loop, and refuses at the first step,
    as a ValueError, a loop that is not a count of steps or an interval that does not fall
    on a loop's end; Model Garden's config does not type-check either."""
    def where(key: str) -> str:
        return f"--set trainer.{key}" if f"trainer.{key}" in on_command_line else str(path)

    def count(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value > 0

    loop, interval = trainer.steps_per_loop, trainer.summary_interval
    if not count(loop):
        raise OdapiError(f"trainer.steps_per_loop must be a whole number of steps, at least 1, "
                         f"not {loop!r}", where=where("steps_per_loop"))
    if interval is not None and not count(interval):
        raise OdapiError(f"trainer.summary_interval must be a whole number of steps, at least "
                         f"1, not {interval!r}", where=where("summary_interval"))
    if interval and interval % loop:
        raise OdapiError(f"trainer.summary_interval ({interval}) must be a multiple of "
                         f"trainer.steps_per_loop ({loop}): summaries are written at the end "
                         f"of a loop; set both, e.g. --set trainer.summary_interval={loop}",
                         where=where("summary_interval"))


@dataclass
class _Source:
    """The config file as a tree of overrides, with what it says outside Model Garden's keys."""

    tree: dict
    base: Path  # the file's folder: its relative paths start here
    label_map: str | None  # its `label_map:`
    pipeline: Any = None  # the Translation, for a pipeline.config
    notes: list[str] = field(default_factory=list)


def _read_source(path: Path, data: Path | None, given: dict[str, str]) -> _Source:
    """Stage 1: the YAML file, or the pipeline.config translated into the same tree."""
    if is_od_api_pipeline(path):
        from odapi.engine.pipeline_config.translate import translate

        pipeline = translate(path, data=data, given=given)
        tree = copy.deepcopy(pipeline.tree)
        return _Source(tree, path.parent, tree.pop("label_map", None), pipeline,
                       pipeline.warnings())
    tree = _load_yaml(path)
    return _Source(tree, path.parent, tree.pop("label_map", None))


def _experiment(experiment: Any, path: Path):
    """Stage 2: the registered Model Garden experiment's defaults, with odapi's on top."""
    from official.core import exp_factory
    from official.vision import registry_imports  # noqa: F401  (registers the experiments)

    if not experiment:
        raise OdapiError("the config does not name its Model Garden experiment; add e.g. "
                         "`experiment: retinanet_mobile_coco`", where=str(path))
    if not isinstance(experiment, str):
        raise OdapiError(f"experiment: must name a Model Garden experiment, e.g. "
                         f"retinanet_mobile_coco, not {experiment!r}", where=str(path))
    try:
        params = exp_factory.get_exp_config(experiment)
    except LookupError:  # Model Garden's registry raises LookupError (KeyError in older ones)
        known = sorted(k for k in exp_factory._REGISTERED_CONFIGS  # noqa: SLF001
                       if any(w in k for w in ("retinanet", "rcnn")))
        close = difflib.get_close_matches(experiment, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        raise OdapiError(f"Model Garden has no experiment {experiment!r}{hint} Detection "
                         f"experiments: {', '.join(known)}", where=str(path)) from None
    params = copy.deepcopy(params)
    _override(params, _model_garden_defaults(), "odapi defaults")
    return experiment, params


def _apply_file_and_sets(params, tree: dict, sets: list[str], path: Path):
    """Stage 3: the file's keys, then `--set`; (the file's train_steps, every key the user
    set, the keys set on the command line)."""
    explicit = _check_keys(params, tree, str(path))
    _override(params, tree, str(path))
    file_steps = _whole_steps(params.trainer.train_steps, str(path))
    on_command_line: set[str] = set()
    for assignment in sets:
        key, value = parse_set(assignment)
        on_command_line |= _check_keys(params, _nest(key, value), f"--set {assignment}")
        _override(params, _nest(key, value), f"--set {assignment}")
    return file_steps, explicit | on_command_line, on_command_line


def _apply_data_paths(params, source: _Source, data: Path | None, train_data: str | None,
                      val_data: str | None) -> list[str]:
    """Stage 4: the records, command line > --data folder > config file; notes to tell."""
    notes = []
    pipeline = source.pipeline
    if data is not None:
        if not (pipeline and pipeline.train_data):
            train_data = train_data or split_pattern(data, "train")
        if not (pipeline and pipeline.val_data) and not val_data:
            split = evaluation_split(data)
            val_data = split_pattern(data, split)
            if split == "test":
                notes.append(f"{data} has no val split: evaluating on its test split "
                             f"({val_data})")
    paths = {
        "train_data": {"input_path": str(train_data) if train_data else _resolve_path(
            str(params.task.train_data.input_path), source.base)},
        "validation_data": {"input_path": str(val_data) if val_data else _resolve_path(
            str(params.task.validation_data.input_path), source.base)},
    }
    _override(params, {"task": paths}, "data paths")
    return notes


def _apply_label_map(params, source: _Source, data: Path | None, label_map: Path | None,
                     explicit: set[str], path: Path) -> tuple[LabelMap, Path]:
    """Stage 5: the label map (command line > --data > config) and the class count from it."""
    pipeline = source.pipeline
    if label_map is None and data is not None and not (pipeline and pipeline.label_map):
        label_map = Path(data) / "label_map.pbtxt"
    if label_map is None and source.label_map:
        label_map = Path(_resolve_path(str(source.label_map), source.base))
    if label_map is None:
        raise OdapiError("no label map: pass --data DIR (a folder `odapi convert` wrote), "
                         "--label-map FILE, or set label_map: in the config", where=str(path))
    labels = LabelMap.read(Path(label_map))
    if pipeline:
        pipeline.check_label_map(labels, Path(label_map))
    num_classes = labels.max_id + 1  # Model Garden counts the background class
    if "task.model.num_classes" in explicit and \
            params.task.model.num_classes != num_classes:
        raise OdapiError(
            f"task.model.num_classes is set to {params.task.model.num_classes}, but the label "
            f"map {label_map} needs {num_classes} (its largest id + 1 for background); odapi "
            "derives it from the label map, so leave it out of the config and --set")
    _override(params, {"task": {"model": {"num_classes": num_classes}}}, "label map")
    return labels, Path(label_map)


def _apply_length(params, length: Length, file_steps: int,
                  on_command_line: set[str]) -> tuple[RunLength, list[str]]:
    """Stage 6: the run's steps (--steps, --epochs, --set, the file) and the learning-rate
    schedule stretched to them (engine/length.py)."""
    examples = None  # counted only when epochs are asked for; the manifest gets them anyway
    if length.epochs is not None:
        examples = count_examples(str(params.task.train_data.input_path))
    set_steps = _whole_steps(params.trainer.train_steps, "--set trainer.train_steps") \
        if "trainer.train_steps" in on_command_line else None
    run_length = decide(length, file_steps, set_steps, examples,
                        int(params.task.train_data.global_batch_size))
    overrides, changes = scale_schedule(params.trainer.optimizer_config, file_steps,
                                        run_length.steps, on_command_line)
    _override(params, {"trainer": {"train_steps": run_length.steps,
                                   "optimizer_config": overrides}}, run_length.source)
    notes = [f"learning-rate schedule stretched from the config's {file_steps} steps to "
             f"{run_length.steps}: {', '.join(changes)}"] if changes else []
    return run_length, notes


def _whole_steps(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OdapiError(f"trainer.train_steps must be a whole number of steps, at least 1, "
                         f"not {value!r}", where=where)
    return value


def _take_init_checkpoint(params, init_checkpoint: str | None, base: Path) -> str | None:
    """Stage 7: odapi restores init checkpoints itself (any layout, with a fit check), so the
    config's key leaves Model Garden's hands and the RunConfig keeps it."""
    configured = params.task.init_checkpoint
    if configured:
        _override(params, {"task": {"init_checkpoint": None}}, "init_checkpoint")
    if init_checkpoint:
        return init_checkpoint
    return _resolve_path(str(configured), base) if configured else None
