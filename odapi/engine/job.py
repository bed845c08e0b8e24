"""`odapi train` as one call, in the order it has to happen. The CLI, the demo and library
users all come through here; none of them repeats the order.

1. records: the `--data` folder as it is, converted from annotations, or the synthetic demo
   (`data/prepare.py`);
2. the config: the one named, or chosen for the data: the synthetic demo trains the `demo`
   preset from scratch, a real dataset a real preset fine-tuned from its COCO checkpoint
   (`retinanet_resnet50_fpn` with a GPU, `retinanet_mobile` without) for FINE_TUNE's epochs;
3. resolution, with the length (`engine/config.py`);
4. the checkpoint to start from, fetched by name on first use (`zoo.py`);
5. the evaluation sample (`engine/eval_subset.py`);
6. training (`engine/train.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from odapi import zoo
from odapi.data.convert import ConvertOptions
from odapi.data.prepare import DEMO_IMAGES, is_empty, prepare_records
from odapi.engine import cluster
from odapi.engine.config import RunConfig, is_od_api_pipeline, resolve
from odapi.engine.length import Length
from odapi.engine.train import TrainResult, train
from odapi.errors import OdapiError

AUTO = "auto"  # --config auto: as without --config (what compose passes when none is set)
FINE_TUNE = Length(epochs=50, min_steps=300, max_steps=20000,  # a real dataset's default
                   named="the default length (50 epochs)")
DEMO_PRESET = "demo"
GPU_PRESET, CPU_PRESET = "retinanet_resnet50_fpn", "retinanet_mobile"


@dataclass
class TrainRequest:
    """Everything `odapi train` takes; see its --help."""

    model_dir: Path
    config: str | None = None  # preset, YAML or pipeline.config; None or AUTO: chosen
    data: Path | None = None  # records, a dataset to convert, or (demo_if_empty) nothing
    reading: ConvertOptions = field(default_factory=ConvertOptions)  # for converting --data
    demo_if_empty: bool = False
    demo_images: int = DEMO_IMAGES  # how many the synthetic demo has
    train_data: str | None = None
    val_data: str | None = None
    label_map: Path | None = None
    length: Length = field(default_factory=Length)
    sets: list[str] = field(default_factory=list)
    init_checkpoint: str | None = None  # a path, a published name (zoo.py), or "coco"
    from_scratch: bool = False
    eval_every: int | None = None
    patience: int | None = None  # evaluations without a better AP before training stops
    eval_at_end: bool = False  # one evaluation, after the last step (the demo's)
    sample_1_of_n_eval: int | None = None


def plan(request: TrainRequest, log: Callable[[str], None] = print,
         prepare: bool = True) -> RunConfig:
    """Stages 1 to 3: the records (converted unless `prepare` is off), the config, resolved."""
    if request.from_scratch and request.init_checkpoint:
        raise OdapiError("--from-scratch starts from random weights, --init-checkpoint from "
                         "a checkpoint: give one of them")
    data = request.data
    demo = data is not None and request.demo_if_empty and is_empty(Path(data))
    chosen = request.config in (None, AUTO)
    if data is not None and prepare and (chosen or not is_od_api_pipeline(request.config)):
        data = _records(request, log)  # a pipeline.config names its own records
    config, init, length = request.config, request.init_checkpoint, request.length
    if chosen:
        config, init, length = _choose(request, demo)
    run = resolve(config, data=data, train_data=request.train_data,
                  val_data=request.val_data, label_map=request.label_map, length=length,
                  sets=request.sets, init_checkpoint=init, eval_every=request.eval_every,
                  sample_1_of_n_eval=request.sample_1_of_n_eval)
    if request.from_scratch:
        run.init_checkpoint = None
    run.patience = request.patience
    if run.patience and not run.eval_every:
        log("note: --patience counts the evaluations recorded in eval/metrics.json: run "
            "`odapi eval --follow` beside training (as the compose stack does) or add "
            "--eval-every")
    if request.eval_at_end and not run.eval_every:
        run.eval_every = run.train_steps
    if chosen:
        log(_chosen(run, config, length is FINE_TUNE))
    for note in run.notes:
        log(f"note: {note}")
    return run


def _records(request: TrainRequest, log: Callable[[str], None]) -> Path:
    """Stage 1. With several workers the chief, the model dir's one writer, converts first;
    the others then use its conversion."""
    reading = dataclasses.replace(request.reading, label_map=request.label_map)

    def prepare() -> Path:
        return prepare_records(request.data, Path(request.model_dir) / "records",
                               options=reading, demo_if_empty=request.demo_if_empty,
                               demo_images=request.demo_images,
                               reuse_only=not cluster.is_chief(), log=log)

    return cluster.chief_first(prepare, "prepare the records")


def run_training(request: TrainRequest, log: Callable[[str], None] = print,
                 progress: bool = True, verbose: bool = False,
                 on_started: Callable[[], None] | None = None) -> TrainResult:
    """All of it: plan, then the checkpoint to start from, the evaluation sample, training."""
    from odapi.engine.eval_subset import use_eval_subset

    cluster.check_supported(request.eval_every, request.patience)
    cluster.start()  # before anything else runs TensorFlow
    run = plan(request, log)
    cluster.chief_first(  # on one host, the others then find it in the cache
        lambda: _fetch_init_checkpoint(run, Path(request.model_dir), log, progress),
        "fetch the checkpoint to start from")
    subset = cluster.chief_first(lambda: use_eval_subset(run, request.model_dir),
                                 "write the evaluation sample")
    if subset and subset.path:
        log(f"evaluating {subset.examples} of {subset.total} validation examples (1 in "
            f"{subset.every}{f', at most {subset.limit}' if subset.limit else ''}): "
            f"{subset.path}")
    result = train(run, request.model_dir, progress=progress, verbose=verbose,
                   on_started=on_started)
    result.report = _write_report(Path(request.model_dir), log)
    return result


def _write_report(model_dir: Path, log: Callable[[str], None]) -> Path | None:
    """The run's report.html, written by the one process that writes the run's files."""
    from odapi.engine.cluster import is_chief
    from odapi.run_report import write_report_or_say

    return write_report_or_say(model_dir, log) if is_chief() else None


def _choose(request: TrainRequest, demo: bool) -> tuple[str, str | None, Length]:
    """(config, init checkpoint, length) when no config is named."""
    if demo:
        return DEMO_PRESET, request.init_checkpoint, request.length
    import tensorflow as tf

    preset = GPU_PRESET if tf.config.list_physical_devices("GPU") else CPU_PRESET
    init = None if request.from_scratch else request.init_checkpoint or zoo.COCO
    given = request.length.steps is not None or request.length.epochs is not None or any(
        s.split("=", 1)[0].strip() == "trainer.train_steps" for s in request.sets)
    return preset, init, request.length if given else FINE_TUNE


def _chosen(run: RunConfig, preset: str, default_length: bool) -> str:
    """What was chosen without --config, why, and how to choose otherwise."""
    if preset == DEMO_PRESET:
        why = "the synthetic demo"
    elif preset == GPU_PRESET:
        why = "a GPU is here"
    else:
        why = "no GPU here; the mobile model trains in reasonable time on a CPU"
    if run.init_checkpoint is None:
        start = "from scratch"
    elif run.init_checkpoint == zoo.COCO:
        start = "fine-tuned from coco (its COCO checkpoint)"
    else:
        start = f"fine-tuned from {run.init_checkpoint}"
    length = f"{run.train_steps} steps"
    if default_length:
        length += (f" ({FINE_TUNE.epochs:g} epochs of the training records, at least "
                   f"{FINE_TUNE.min_steps} and at most {FINE_TUNE.max_steps} steps)")
    return (f"no --config: training the `{preset}` preset ({why}), {start}, for {length}. "
            "Choose otherwise with --config PRESET, --init-checkpoint, --from-scratch, "
            "--steps or --epochs")


def _fetch_init_checkpoint(run: RunConfig, model_dir: Path, log, progress: bool) -> None:
    """A published checkpoint named by --init-checkpoint (or `coco`), from the cache or
    downloaded; not needed when the run resumes from its own checkpoint."""
    from odapi.model_dir.checkpoints import latest_checkpoint

    name = run.init_checkpoint
    if not name or not zoo.is_name(name):
        return
    if latest_checkpoint(model_dir):  # resuming: the run's own checkpoint is the start
        run.init_checkpoint = None
        return
    if name == zoo.COCO:
        name = zoo.coco_checkpoint(run.experiment)
    run.init_checkpoint = zoo.fetch(name, log=log, progress=progress)
