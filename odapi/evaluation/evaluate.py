"""Evaluate a run's checkpoints on its validation records: `odapi eval` and `--eval-every`.

Both paths go through `Evaluator.evaluate`: Model Garden's task runs the model on the validation
input pipeline; odapi gathers COCO metrics with per-class AP, writes them as TensorBoard
summaries (with pictures of ground truth beside detections) under `eval/`, and records them in
`eval/metrics.json`, where the best checkpoint is tracked.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from odapi.data.boxes import in_original_image
from odapi.data.examples import DetectionExample, from_tf_example
from odapi.data.records import read_records, record_files, require_records
from odapi.errors import OdapiError
from odapi.evaluation.coco import COCOResult, PerClassCOCOEvaluator
from odapi.evaluation.curves import pr_curve_summaries
from odapi.evaluation.figures import (
    WORST,
    WorstImage,
    png_to_array,
    render,
    write_figures,
    write_worst,
)
from odapi.evaluation.pictures import Detections, errors_picture, side_by_side
from odapi.labelmap import LabelMap
from odapi.model_dir.checkpoints import (
    checkpoint_step,
    latest_checkpoint,
    list_checkpoints,
    pin_checkpoint,
)
from odapi.model_dir.manifest import load_run, now, read_manifest
from odapi.model_dir.metrics import EVAL_DIR, MetricsStore

PICTURES = 4  # fixed validation images shown in TensorBoard
WORST_IMAGES = 6  # validation images with the most errors, in TensorBoard and eval/worst/


@dataclass
class EvalResult:
    step: int
    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]  # class name -> AP, AP50
    losses: dict[str, float]
    is_best: bool = False
    checkpoint: str | None = None
    metrics_file: str | None = None
    thresholds: dict | None = None  # score with the best F1, overall and per class
    figures: list[str] | None = None  # PNG files of the confusion matrix and curves


@dataclass
class _Outcome:
    """One evaluation's results, before they are recorded."""

    step: int
    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    losses: dict[str, float]
    pictures: dict[str, Detections]  # the fixed samples' detections
    result: COCOResult
    figures: dict[str, tuple[bytes, dict]]  # name: (PNG, numbers)
    worst: list[WorstImage]


class Evaluator:
    """Evaluates one run's model on its validation records, step after step."""

    def __init__(self, params, label_map: LabelMap, model_dir: Path, task=None, model=None,
                 subdir: str = EVAL_DIR):
        import tensorflow as tf
        from official.core import task_factory

        self.params = params
        self.label_map = label_map
        self.model_dir = Path(model_dir)
        self.store = MetricsStore(self.model_dir, subdir)
        self.samples = self._fixed_samples()  # first: it says which records are missing
        self.task = task or task_factory.get_task(params.task, logging_dir=str(model_dir))
        self.model = model or self.task.build_model()
        self.task.build_metrics(training=False)  # defines the task's coco_metric output
        self.dataset = self.task.build_inputs(params.task.validation_data)
        self.writer = tf.summary.create_file_writer(str(self.model_dir / subdir))
        task_, model_ = self.task, self.model

        @tf.function(autograph=False)  # as the training step: odapi/tracing.py
        def step_fn(inputs):
            return task_.validation_step(inputs, model_, metrics=None)

        self._step_fn = step_fn

    def _fixed_samples(self) -> dict[str, DetectionExample]:
        files = require_records(self.params.task.validation_data.input_path, "validation",
                                "give `odapi eval --val-data` records that exist")
        samples = {}
        for serialized in read_records(files[:1]):
            example = from_tf_example(serialized)
            samples[example.source_id] = example
            if len(samples) == PICTURES:
                break
        return samples

    def restore(self, checkpoint: str) -> None:
        import tensorflow as tf

        tf.train.Checkpoint(**self.model.checkpoint_items).read(checkpoint).expect_partial()

    def evaluate(self, step: int, checkpoint: str | None = None,
                 restore: bool = True) -> EvalResult | None:
        """Evaluate the model's weights (restored from `checkpoint` when `restore`).

        Returns None when `step` was evaluated before: a step is never recorded twice. The
        checkpoint is pinned while in use (weights restore lazily, as layers are built, and
        best/ copies it at the end), so training's retention cannot delete it half-way.
        """
        if step in self.store.evaluated_steps():
            return None
        if not checkpoint:
            return self._evaluate(step, None, None, restore)
        with pin_checkpoint(checkpoint, self.model_dir / self.store.subdir) as pinned:
            return self._evaluate(step, checkpoint, pinned, restore)

    def _evaluate(self, step: int, checkpoint: str | None, pinned: str | None,
                  restore: bool) -> EvalResult:
        if pinned and restore:
            self.restore(pinned)
        outcome = self._run(step)
        self._summarize(outcome)
        written = []  # figures first: a step recorded has them (unless a later step's replaced
        if step >= max(self.store.evaluated_steps(), default=0):  # them meanwhile)
            folder = self.store.path.parent
            written = write_figures(folder, outcome.figures, step) + [
                write_worst(folder / WORST, step, outcome.worst)]
        thresholds = outcome.result.curves.thresholds_summary()
        entry = {"step": step, "checkpoint": checkpoint, "time": now(),
                 "metrics": outcome.metrics, "per_class": outcome.per_class,
                 "losses": outcome.losses, "thresholds": thresholds}
        is_best = self.store.add(entry, pinned)
        return EvalResult(step, outcome.metrics, outcome.per_class, outcome.losses, is_best,
                          checkpoint, str(self.store.path), thresholds, written)

    def _run(self, step: int) -> _Outcome:
        """The model on every validation batch, then COCO's numbers and the figures."""
        coco = PerClassCOCOEvaluator(
            self.label_map.names_by_id,
            max_detections=self.params.task.max_num_eval_detections
            if hasattr(self.params.task, "max_num_eval_detections") else 100)
        losses: list[float] = []
        pictures: dict[str, Detections] = {}
        metric_name = self.task.coco_metric.name
        for batch in self.dataset:
            logs = self._step_fn(batch)
            groundtruths, predictions = logs[metric_name]
            coco.update_state(groundtruths, predictions)
            losses.append(float(logs[self.task.loss]))
            self._collect_pictures(groundtruths, predictions, pictures)
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it indexes
            metrics = coco.result()
        result = coco.coco_result
        names = self.label_map.names_by_id
        return _Outcome(step, metrics, {names.get(i, str(i)): v for i, v in
                                        sorted(result.per_class.items())},
                        {"validation_loss": float(np.mean(losses))}, pictures, result,
                        render(result.confusion, result.curves),
                        self._worst_pictures(result.confusion))

    def _summarize(self, outcome: _Outcome) -> None:
        import tensorflow as tf

        with self.writer.as_default(step=outcome.step):
            for name, value in {**outcome.metrics, **outcome.losses}.items():
                tf.summary.scalar(name, value)
            for name, values in outcome.per_class.items():
                tf.summary.scalar(f"AP_per_class/{name}", values["AP"])
                if not math.isnan(values["AP50"]):
                    tf.summary.scalar(f"AP50_per_class/{name}", values["AP50"])
            for source_id, detections in outcome.pictures.items():
                example = self.samples[source_id]
                picture = side_by_side(example, detections, self.label_map)
                tf.summary.image(f"ground_truth_vs_detections/{example.filename}",
                                 picture[None], max_outputs=1)
            for name, (png, _) in outcome.figures.items():
                tf.summary.image(name, png_to_array(png)[None])
            for rank, worst in enumerate(outcome.worst, start=1):
                tf.summary.image(f"worst_images/{rank}", worst.picture[None],
                                 description=f"{worst.filename}: {worst.errors}")
            for summary in pr_curve_summaries(outcome.result.curves):
                tf.summary.experimental.write_raw_pb(summary, step=outcome.step)
        self.writer.flush()

    def _worst_pictures(self, confusion) -> list[WorstImage]:
        """(file name, its errors in words, the picture) of the validation images with the
        most errors at the best-F1 thresholds, read back from the validation records."""
        wanted = confusion.worst(WORST_IMAGES)
        found: dict[int, DetectionExample] = {}
        for serialized in read_records(record_files(self.params.task.validation_data.input_path)):
            if len(found) == len(wanted):
                break
            example = from_tf_example(serialized)
            if example.source_id.isdigit() and int(example.source_id) in wanted:
                found[int(example.source_id)] = example
        pictures = []
        for image_id in wanted:
            if image_id not in found:
                continue
            example, verdict = found[image_id], confusion.verdicts[image_id]
            errors = (f"{len(verdict.missed)} missed, {len(verdict.false)} false, "
                      f"{len(verdict.confused)} of the wrong class")
            pictures.append(WorstImage(example.filename, errors, errors_picture(
                example.encoded, verdict, self.label_map)))
        return pictures

    def _collect_pictures(self, groundtruths, predictions, pictures) -> None:
        ids = [s.decode() if isinstance(s, bytes) else str(s)
               for s in np.asarray(groundtruths["source_id"]).tolist()]
        for index, source_id in enumerate(ids):
            if source_id not in self.samples or source_id in pictures:
                continue
            count = int(predictions["num_detections"][index])
            boxes = in_original_image(predictions["detection_boxes"][index:index + 1],
                                      predictions["image_info"][index:index + 1])
            pictures[source_id] = Detections(
                np.asarray(boxes[0][:count]),
                np.asarray(predictions["detection_classes"][index][:count]),
                np.asarray(predictions["detection_scores"][index][:count]))


def evaluator_for_run(model_dir: Path, val_data: str | None = None) -> Evaluator:
    """An Evaluator built from what `odapi train` recorded in the model dir."""
    params, label_map, _ = load_run(model_dir)
    subdir = results_folder(params, val_data)
    if subdir != EVAL_DIR:
        params.override({"task": {"validation_data": {"input_path": val_data}}})
    # evaluation runs where it is started: on the CPU unless this process sees a GPU
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    dtype = "float16" if gpus and params.runtime.mixed_precision_dtype == "float16" \
        else "float32"
    params.override({"task": {"validation_data": {"dtype": dtype}}})
    if dtype == "float32":
        from official.modeling import performance

        performance.set_mixed_precision_policy("float32")
    return Evaluator(params, label_map, Path(model_dir), subdir=subdir)


def results_folder(params, val_data: str | None) -> str:
    """`eval`, or for other validation data a folder of its own, never mixed with the run's
    own results or its best."""
    if val_data and val_data != params.task.validation_data.input_path:
        return f"{EVAL_DIR}-{hashlib.sha256(val_data.encode()).hexdigest()[:8]}"
    return EVAL_DIR


def evaluate_run(model_dir: Path, checkpoint: str | None = None, val_data: str | None = None,
                 follow: bool = False, poll_seconds: float = 10.0,
                 timeout: float | None = None,
                 on_result: Callable[[EvalResult], None] | None = None,
                 on_wait: Callable[[str], None] | None = None) -> list[EvalResult]:
    """Evaluate the latest (or given) checkpoint; with `follow`, each new one until the last.

    Following starts before training has written anything, survives training restarting, skips
    checkpoints that retention deleted, and returns after the checkpoint at the run's final
    step, or the step it stopped early at (read again from the manifest each time, as a
    restart may change it).
    """
    model_dir = Path(model_dir)
    results: list[EvalResult] = []
    evaluator: Evaluator | None = None
    store: MetricsStore | None = None
    waited_since = time.monotonic()
    told: set[str] = set()

    def say(message: str) -> None:
        if on_wait and message not in told:
            told.add(message)
            on_wait(message)

    while True:
        manifest = read_manifest(model_dir)
        if manifest is None:
            if not follow:
                raise OdapiError("no odapi run here (manifest.json is missing)", str(model_dir))
            say(f"waiting for training to start in {model_dir}")
        else:
            if checkpoint:
                candidates = [checkpoint]
            elif follow:
                candidates = list_checkpoints(model_dir)
            else:
                latest = latest_checkpoint(model_dir)
                if latest is None:
                    raise OdapiError("the run has no checkpoint yet; use --follow to wait for "
                                     "one", where=str(model_dir))
                candidates = [latest]
            store = store or MetricsStore(model_dir, results_folder(load_run(model_dir)[0],
                                                                    val_data))
            done = store.evaluated_steps()
            for prefix in candidates:
                step = checkpoint_step(prefix)
                if step is None or step in done:
                    continue
                # built for the first step to evaluate: nothing new costs no model
                evaluator = evaluator or evaluator_for_run(model_dir, val_data)
                try:
                    result = evaluator.evaluate(step, prefix)
                except _missing_checkpoint_errors() as e:
                    reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e)
                    say(f"checkpoint {prefix} was deleted before it could be evaluated "
                        f"({reason})")
                    continue
                if result:
                    results.append(result)
                    waited_since = time.monotonic()
                    if on_result:
                        on_result(result)
            if not follow or _training_is_over(manifest, store, model_dir, say):
                return results
        if timeout is not None and time.monotonic() - waited_since > timeout:
            raise OdapiError(f"no new checkpoint for {timeout:g}s; is training running?",
                             where=str(model_dir))
        time.sleep(poll_seconds)


def _training_is_over(manifest: dict, store: MetricsStore, model_dir: Path,
                      say: Callable[[str], None]) -> bool:
    """Whether following ends: the run's final step, or the step training stopped early at,
    is evaluated. Training that failed ends it with an error."""
    final = int(manifest["config"]["params"]["trainer"]["train_steps"])
    stopped = manifest.get("stopped_early")
    if stopped and stopped["step"] in store.evaluated_steps():
        say(f"training stopped early at step {stopped['step']} ({stopped['reason']}); "
            "evaluation ends with it")
        return True
    if final in store.evaluated_steps():
        return True
    if manifest.get("status") == "failed":
        raise OdapiError(f"training stopped with an error ({manifest.get('error')}); "
                         "fix it and start training again, then evaluation",
                         where=str(model_dir))
    say(f"waiting for new checkpoints (final step {final})")
    return False


def _missing_checkpoint_errors():
    import tensorflow as tf

    return (tf.errors.NotFoundError, FileNotFoundError)
