"""`odapi train`: pre-flight checks, then Model Garden's trainer, resumable, with odapi around it.

The same command again resumes from the model dir's latest checkpoint. Model Garden saves
checkpoints the TensorFlow way: data files first, then the `checkpoint` state file is replaced
atomically, so a kill at any moment leaves the latest listed checkpoint loadable.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from odapi.data.records import record_files
from odapi.engine import cluster, preflight
from odapi.engine.cluster import describe, is_chief, multi_worker_strategy
from odapi.engine.config import RunConfig
from odapi.engine.eval_subset import use_eval_subset
from odapi.engine.fine_tuning import InitReport, restore_for_fine_tuning
from odapi.engine.length import steps_per_epoch
from odapi.engine.progress import ProgressBar
from odapi.errors import OdapiError
from odapi.model_dir.checkpoints import (
    checkpoint_step,
    latest_checkpoint,
    remove_unfinished_saves,
    resolve_checkpoint,
)
from odapi.model_dir.manifest import dataset_cache, now, read_manifest, versions, write_manifest
from odapi.model_dir.metrics import MetricsStore
from odapi.tracing import without_autograph


@dataclass
class TrainResult:
    model_dir: Path
    start_step: int
    end_step: int
    train_steps: int
    seconds: float
    losses: dict[str, float] = field(default_factory=dict)
    evaluations: list = field(default_factory=list)  # EvalResult, in-process ones
    best: dict | None = None  # from eval/metrics.json
    init: InitReport | None = None
    interrupted: bool = False
    stopped_early: dict | None = None  # why, when --patience ended training
    report: Path | None = None  # report.html, once written


def train(run: RunConfig, model_dir: Path, progress: bool = True, verbose: bool = False,
          on_started: Callable[[], None] | None = None) -> TrainResult:
    """Train `run` into `model_dir` (resuming if it holds a checkpoint); return a summary.

    `on_started` is called once every check has passed and the model is built, just before
    the first step, or at once when nothing is left to do (a container's health check waits
    for it). Unless `verbose`, what Model Garden and orbit print to stdout during training (a
    block per loop) is dropped: the progress bar and the summary table say it better.
    """
    cluster.check_supported(run.eval_every, run.patience)
    cluster.start()  # several workers: before anything else runs TensorFlow
    with open(os.devnull, "w") as sink, \
            contextlib.nullcontext() if verbose else contextlib.redirect_stdout(sink):
        return _train(run, Path(model_dir), progress, on_started)


def build_trainer(params, model_dir: Path):
    """Model Garden's (strategy, task, trainer) for `params`, as `odapi train` runs them:
    precision policy and distribution strategy first, then task and trainer in its scope."""
    from official.common import distribute_utils
    from official.core import task_factory, train_utils
    from official.modeling import performance

    performance.set_mixed_precision_policy(params.runtime.mixed_precision_dtype)
    if cluster.active():
        if params.runtime.distribution_strategy != "multi_worker_mirrored":
            raise OdapiError(f"TF_CONFIG names a cluster, but runtime.distribution_strategy "
                             f"is {params.runtime.distribution_strategy!r}: several workers "
                             "train with multi_worker_mirrored; drop that setting or unset "
                             "TF_CONFIG")
        strategy = multi_worker_strategy()  # made at start-up: engine/cluster.py
    else:
        strategy = distribute_utils.get_distribution_strategy(
            distribution_strategy=params.runtime.distribution_strategy,
            all_reduce_alg=params.runtime.all_reduce_alg,
            num_gpus=params.runtime.num_gpus)
    with strategy.scope():
        task = task_factory.get_task(params.task, logging_dir=str(model_dir))
        trainer = train_utils.create_trainer(params, task, train=True, evaluate=False)
        create_variables(trainer.model, trainer.optimizer, params.task.model.input_size)
    trainer.train_step = without_autograph(trainer.train_step)  # orbit's loop around it
    return strategy, task, trainer


def create_variables(model, optimizer, input_size: list[int]) -> None:
    """Every variable of the model and the optimizer, before the first step. Model Garden
    builds RetinaNet's head and the optimizer's slots in the first step, and a tf.function
    whose first call creates variables is traced twice (how much that costs depends on the
    config: bench/train_overhead.py measures start-up)."""
    import tensorflow as tf

    if not model.built:  # Faster R-CNN's task builds its model; RetinaNet's does not
        model(tf.zeros([1, *input_size]), training=False)
    if hasattr(optimizer, "_create_all_weights"):  # tf_keras' legacy optimizers (the default)
        optimizer._create_all_weights(model.trainable_variables)
    else:
        optimizer.build(model.trainable_variables)


def _train(run: RunConfig, model_dir: Path, progress: bool,
           on_started: Callable[[], None] | None) -> TrainResult:
    """Checks, the manifest, then the session: built, trained, recorded, whatever happens."""
    manifest, session = _check_and_record_start(run, model_dir)
    chief = is_chief()
    training = _Training(run, model_dir, manifest, session, chief)
    try:
        finished = training.finished_step()
        if finished is None:
            training.build(progress)
        else:
            training.record_nothing_to_do(finished)
        if on_started:
            on_started()
        if finished is None:
            training.loop()
    except KeyboardInterrupt:
        training.save_interrupted()
    except BaseException as e:  # the manifest says so, for `eval --follow` waiting on the run
        lost = cluster.lost_worker(e) if isinstance(e, Exception) else None
        training.failure = str(lost or e) or type(e).__name__
        if lost:
            raise lost from None
        raise
    finally:
        training.finish()
    return training.result


def _check_and_record_start(run: RunConfig, model_dir: Path) -> tuple[dict, dict]:
    """Pre-flight (before anything is written), then the manifest's new session."""
    previous, train_set, val_set = _preflight_together(run, model_dir)
    config = run.to_dict()
    batch = int(run.params.task.train_data.global_batch_size)
    config.setdefault("length", {"steps": run.train_steps, "from": "the config"})
    config["length"]["epochs"] = round(run.train_steps / steps_per_epoch(train_set.examples,
                                                                           batch), 2)
    manifest = previous or {"created": now(), "sessions": []}
    manifest.update({
        "config": config,
        "versions": versions(),
        "dataset": {"train": train_set.to_dict(),
                    "validation": val_set.to_dict() if val_set else None},
        "label_map": {"source": str(run.label_map_path), "copy": "label_map.pbtxt"},
        "status": "running",
    })
    manifest.pop("stopped_early", None)  # an earlier session's: this one may train on
    session = {"started": now(), "start_step": None, "end_step": None}
    if workers := describe(batch):
        session["cluster"] = workers
    manifest["sessions"].append(session)
    if is_chief():  # with several workers, one writes the run's files
        from official.core import train_utils

        remove_unfinished_saves(model_dir)  # left by a trainer killed mid-save
        run.label_map.write(model_dir / "label_map.pbtxt")
        write_manifest(model_dir, manifest)
        train_utils.serialize_config(run.params, str(model_dir))  # Model Garden's params.yaml
    return manifest, session


def _preflight_together(run: RunConfig, model_dir: Path) -> tuple:
    """`_preflight`; with several workers, every worker's outcome and latest checkpoint are
    compared before any goes on (engine/cluster.py): a worker that stopped alone would leave
    the others waiting for it, and one that saw another checkpoint would restore other
    weights than the chief."""
    failure, checked, latest = None, None, None
    try:
        checked = _preflight(run, model_dir)
        latest = latest_checkpoint(model_dir)
    except OdapiError as e:
        failure = e
    except OSError as e:  # reading the checkpoint state, say
        failure = OdapiError(f"cannot read the model dir ({e.strerror or e})",
                             where=str(model_dir))
    if cluster.active():
        cluster.check_same_start(model_dir, failure, checkpoint_step(latest) if latest else None)
    elif failure:
        raise failure
    return checked


def _preflight(run: RunConfig, model_dir: Path) -> tuple:
    """The run's checks: its model dir (written by the chief; other workers read the chief's
    checkpoints in it), the same model as before, the records; (previous manifest, train
    records, validation records)."""
    if is_chief():
        preflight.check_writable(model_dir)
    elif model_dir.exists() and not model_dir.is_dir():
        raise OdapiError("the model dir is not a folder", where=str(model_dir))
    if run.eval_subset is None:  # the sample the config asks for (job.py writes it first)
        use_eval_subset(run, model_dir)
    previous = read_manifest(model_dir)
    preflight.check_same_model(previous, run.params, model_dir)
    cache = dataset_cache(previous)
    train_set = preflight.scan_records(run.train_data, run.label_map, "train", cache)
    val_set = None
    if record_files(run.val_data):
        val_set = preflight.scan_records(run.val_data, run.label_map, "validation", cache)
    elif run.eval_every:
        raise OdapiError(f"--eval-every needs validation records, and none match "
                         f"{run.val_data!r}; convert with --split train=0.8,val=0.2")
    if run.init_checkpoint and latest_checkpoint(model_dir) is None:
        resolve_checkpoint(run.init_checkpoint)  # exists? (fit is checked once the model does)
    return previous, train_set, val_set


def _runner_class():
    """Model Garden's runner; on a non-chief worker, its temporary checkpoint folder starts
    with a copy of the chief's latest checkpoint, so that every worker restores the same
    weights in the same way (Model Garden would initialise it afresh: no resume)."""
    import tensorflow as tf
    from official.core import train_lib

    class Runner(train_lib.OrbitExperimentRunner):
        temp_dir: str | None = None  # this worker's own checkpoints, removed when it ends

        def _maybe_build_checkpoint_manager(self):
            manager = super()._maybe_build_checkpoint_manager()
            if manager is None or self.strategy.extended.should_checkpoint:
                return manager
            self.temp_dir = manager.directory
            latest = latest_checkpoint(Path(self.model_dir))
            if not latest:
                return manager
            for path in Path(latest).parent.glob(Path(latest).name + ".*"):
                shutil.copy(path, manager.directory)
            tf.compat.v1.train.update_checkpoint_state(manager.directory, Path(latest).name)
            return tf.train.CheckpointManager(
                manager.checkpoint, directory=manager.directory, max_to_keep=1,
                step_counter=self.trainer.global_step,
                checkpoint_interval=self.params.trainer.checkpoint_interval,
                init_fn=self.trainer.initialize)

    return Runner


class _Training:
    """One session of training: Model Garden's trainer, the progress bar, the evaluator."""

    def __init__(self, run: RunConfig, model_dir: Path, manifest: dict, session: dict,
                 chief: bool):
        self.run, self.model_dir, self.chief = run, model_dir, chief
        self.manifest, self.session = manifest, session
        self.bar = self.trainer = self.runner = self.evaluator = None
        self.failure: str | None = None
        self.nothing_to_do = ""  # why, when the run is already done
        self.started = time.monotonic()
        self.result = TrainResult(model_dir, 0, 0, run.train_steps, 0.0)

    def finished_step(self) -> int | None:
        """The step of the model dir's latest checkpoint when nothing is left to do: it is at
        or past the last step and, if evaluations are asked for, evaluated. The same command
        run again then ends at once instead of building the model (half a minute) to train
        nothing. Never for a multi-worker run: every worker must take the same path, and
        another process may record an evaluation between two workers' checks."""
        if cluster.active():
            return None
        latest = latest_checkpoint(self.model_dir)
        step = checkpoint_step(latest) if latest else None
        if step is None:
            return None
        if step < self.run.train_steps:
            return step if self._out_of_patience(step) else None
        if self.run.eval_every and step not in MetricsStore(self.model_dir).evaluated_steps():
            return None  # killed between its last save and its evaluation: loop() evaluates
        self.nothing_to_do = f"trained to its last step ({self.run.train_steps}) already"
        return step

    def record_nothing_to_do(self, step: int) -> None:
        self.session["start_step"] = self.result.start_step = self.result.end_step = step
        print(f"resuming {self.model_dir} from step {step}: {self.nothing_to_do}; nothing to "
              "do", file=sys.stderr)

    def _out_of_patience(self, step: int) -> bool:
        """Whether --patience evaluations came after the best (in this process or the eval
        service's: both record in eval/metrics.json); never before a first evaluation."""
        if not self.run.patience:
            return False
        since, best = MetricsStore(self.model_dir).since_best()
        if since < self.run.patience:
            return False
        reason = (f"AP has not improved for {since} evaluation{'s' * (since != 1)} since "
                  f"step {best['step']} "
                  f"(AP {best['AP']:.3f}, kept in best/; --patience {self.run.patience})")
        self.result.stopped_early = {"step": step, "best_step": best["step"],
                                     "best_AP": best["AP"], "evaluations_since": since,
                                     "patience": self.run.patience, "reason": reason}
        self.nothing_to_do = f"stopped early: {reason}"
        return True

    def build(self, progress: bool) -> None:
        """The trainer, restored from the latest checkpoint, or the init checkpoint's parts."""
        params = self.run.params
        _Runner = _runner_class()  # noqa: N806 - a class
        self.strategy, task, self.trainer = build_trainer(params, self.model_dir)
        self.bar = ProgressBar(self.trainer.global_step, self.run.train_steps, enabled=progress)
        self.runner = _Runner(
            distribution_strategy=self.strategy, task=task, mode="train", params=params,
            model_dir=str(self.model_dir), trainer=self.trainer, train_actions=[self.bar])
        start = int(self.trainer.global_step.numpy())  # the runner restored the latest
        self.session["start_step"] = self.result.start_step = self.result.end_step = start
        if start == 0 and self.run.init_checkpoint:
            with self.strategy.scope():
                init = restore_for_fine_tuning(self.trainer.model, self.run.init_checkpoint,
                                               params.task.model.num_classes)
            self.result.init = init
            self.manifest["init"] = {"checkpoint": init.checkpoint, "restored": init.restored,
                                     "fresh": init.fresh, "notes": init.notes}
            self.bar.write(f"fine-tuning from {init.checkpoint}: restored "
                           f"{', '.join(init.restored)}"
                           + (f"; {'; '.join(init.notes)}" if init.notes else ""))
        elif start:
            self.bar.write(f"resuming {self.model_dir} from step {start}")
        if self.chief:
            write_manifest(self.model_dir, self.manifest)
        if self.run.eval_every and self.chief and record_files(self.run.val_data):
            from odapi.evaluation.evaluate import Evaluator

            self.evaluator = Evaluator(params, self.run.label_map, self.model_dir, task=task,
                                       model=self.trainer.model)

    def loop(self) -> None:
        """Train to the last step, in loops that end where evaluations are due."""
        run, step = self.run, self.result.start_step
        if self.evaluator and step and (step % run.eval_every == 0 or step >= run.train_steps):
            self._evaluate(step, restore=True)  # a session killed between save and eval
        while step < run.train_steps:
            if self._out_of_patience(step):
                self.bar.write(f"stopping early at step {step}: "
                               f"{self.result.stopped_early['reason']}")
                break
            with self.strategy.scope():  # saves a checkpoint at the end
                self.runner.controller.train(steps=self._next_pause(step))
            step = int(self.trainer.global_step.numpy())
            if self.evaluator:
                self._evaluate(step, restore=False)

    def _next_pause(self, step: int) -> int:
        """Where the next loop ends: the next evaluation's step, or with --patience and the
        evaluations made elsewhere, the next checkpoint's (to look at their results)."""
        every = self.run.eval_every if self.evaluator else \
            int(self.run.params.trainer.checkpoint_interval) if self.run.patience else None
        if not every:
            return self.run.train_steps
        return min(self.run.train_steps, (step // every + 1) * every)

    def _evaluate(self, step: int, restore: bool) -> None:
        evaluation = self.evaluator.evaluate(
            step, self.runner.checkpoint_manager.latest_checkpoint, restore=restore)
        if evaluation:
            self.result.evaluations.append(evaluation)
            self.bar.write(f"eval step {step}: AP {evaluation.metrics['AP']:.3f}  "
                           f"AP50 {evaluation.metrics['AP50']:.3f}"
                           + ("  (best so far)" if evaluation.is_best else ""))

    def save_interrupted(self) -> None:
        self.result.interrupted = True
        if self.runner is not None:
            with self.strategy.scope():
                self.runner.controller.save_checkpoint()

    def finish(self) -> None:
        """The result and the manifest's record of the session, whatever ended it."""
        result, manifest = self.result, self.manifest
        temp_dir = getattr(self.runner, "temp_dir", None)  # a non-chief worker's
        if temp_dir and Path(temp_dir).resolve() != self.model_dir.resolve():
            shutil.rmtree(temp_dir, ignore_errors=True)
        if self.bar is not None:
            self.bar.close()
            result.losses = {k: v for k, v in self.bar.latest.items() if "loss" in k}
        if self.trainer is not None:
            result.end_step = int(self.trainer.global_step.numpy())
        result.seconds = time.monotonic() - self.started
        result.best = MetricsStore(self.model_dir).best()
        early = result.stopped_early and not self.failure and not result.interrupted
        status = "failed" if self.failure else "interrupted" if result.interrupted \
            else "stopped_early" if early else "finished"
        self.session.update(ended=now(), end_step=result.end_step, status=status)
        manifest["status"] = "failed" if self.failure else \
            "finished" if result.end_step >= self.run.train_steps else \
            "stopped_early" if early else "stopped"
        for key in ("error", "stopped_early"):
            manifest.pop(key, None)
        if self.failure:
            manifest["error"] = self.failure
        if early:
            manifest["stopped_early"] = result.stopped_early
        previous = manifest.get("final") or {}  # a session that trained or evaluated nothing
        result.losses = result.losses or previous.get("losses") or {}  # keeps the run's last
        manifest["final"] = {"step": result.end_step, "losses": result.losses,
                             "best": result.best,
                             "last_eval": result.evaluations[-1].metrics
                             if result.evaluations else previous.get("last_eval")}
        if self.chief:
            write_manifest(self.model_dir, manifest)


def summary_table(result: TrainResult) -> str:
    """The end-of-run table: steps, time, final losses, best AP and where its checkpoint is."""
    from tabulate import tabulate

    steps = result.end_step - result.start_step
    rows = [
        ["steps", f"{result.start_step} -> {result.end_step} of {result.train_steps}"
         + ("  (interrupted; run the same command to resume)" if result.interrupted else "")
         + ("  (stopped early)" if result.stopped_early else "")],
        ["time", f"{result.seconds / 60:.1f} min"
         + (f"  ({steps / result.seconds:.2f} steps/s)" if result.seconds and steps else "")],
    ]
    rows += [[name, f"{value:.4f}"] for name, value in sorted(result.losses.items())]
    if result.evaluations:
        last = result.evaluations[-1]
        rows.append([f"AP / AP50 at step {last.step}",
                     f"{last.metrics['AP']:.3f} / {last.metrics['AP50']:.3f}"])
    if result.best:
        rows.append(["best AP", f"{result.best['AP']:.3f} at step {result.best['step']}"])
        rows.append(["best checkpoint", result.best["checkpoint"]])
    rows.append(["model dir", str(result.model_dir)])
    if result.report:
        rows.append(["report", str(result.report)])
    return tabulate(rows, tablefmt="simple_outline")
