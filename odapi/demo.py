"""`odapi demo`: the whole pipeline on synthetic data, offline and on a CPU in minutes.

demo data -> records (with a held-out validation split) -> train `configs/demo.yaml` ->
evaluate on the held-out images -> a table of the result; `engine/job.py` does the middle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from odapi.data.convert import ConvertOptions
from odapi.engine.job import TrainRequest, run_training
from odapi.engine.length import Length
from odapi.engine.train import TrainResult, summary_table
from odapi.errors import OdapiError
from odapi.evaluation.coco import metrics_table

DEMO_SPLIT = {"train": 0.85, "val": 0.15}


@dataclass
class DemoResult:
    train: TrainResult
    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]

    @property
    def ok(self) -> bool:
        return not self.train.interrupted


def run_demo(out: Path, steps: int | None = None, count: int = 400, progress: bool = True,
             log: Callable[[str], None] = print) -> DemoResult:
    out = Path(out)
    model_dir = out / "model"
    log(f"1/4 synthetic images, 2/4 records, 3/4 training configs/demo.yaml into {model_dir} "
        "(the same command resumes)")
    request = TrainRequest(model_dir, config="demo", data=out / "data", demo_if_empty=True,
                           demo_images=count,
                           reading=ConvertOptions(split=DEMO_SPLIT, progress=progress),
                           length=Length(steps=steps), eval_at_end=True)
    result = run_training(request, log, progress=progress)
    log(summary_table(result))
    if result.interrupted:
        return DemoResult(result, {}, {})
    if not result.evaluations:  # already trained and evaluated earlier
        from odapi.model_dir.metrics import MetricsStore

        evaluations = MetricsStore(model_dir).load()["evaluations"]
        if not evaluations:
            raise OdapiError("the demo run has no evaluation; run `odapi eval --model-dir "
                             f"{model_dir}`")
        metrics, per_class = evaluations[-1]["metrics"], evaluations[-1]["per_class"]
    else:
        metrics, per_class = result.evaluations[-1].metrics, result.evaluations[-1].per_class
    log("4/4 held-out evaluation")
    log(metrics_table(metrics, per_class))
    log(f"\nsee it learn: odapi tensorboard --model-dir {model_dir}")
    return DemoResult(result, metrics, per_class)
