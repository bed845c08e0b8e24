"""`odapi demo`: the whole pipeline on synthetic data, offline and on a CPU in minutes.

demo data -> records (with a held-out validation split) -> train `configs/demo.yaml` ->
evaluate on the held-out images -> a table of the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from odapi.data.convert import ConvertOptions
from odapi.data.prepare import prepare_records
from odapi.engine.config import resolve
from odapi.engine.train import TrainResult, summary_table, train
from odapi.errors import OdapiError

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
    records, model_dir = out / "records", out / "model"
    log(f"1/4 synthetic images, 2/4 records in {records}")
    prepare_records(out / "data", records, options=ConvertOptions(split=DEMO_SPLIT,
                                                                  progress=progress),
                    demo_if_empty=True, demo_images=count, log=log)
    run = resolve("demo", data=records, steps=steps)
    run.eval_every = run.train_steps  # one evaluation, on the held-out images, at the end
    log(f"3/4 training configs/demo.yaml for {run.train_steps} steps into {model_dir} "
        "(the same command resumes)")
    result = train(run, model_dir, progress=progress)
    log(summary_table(result))
    if result.interrupted:
        return DemoResult(result, {}, {})
    if not result.evaluations:  # already trained and evaluated earlier
        from odapi.evaluation.store import MetricsStore

        evaluations = MetricsStore(model_dir).load()["evaluations"]
        if not evaluations:
            raise OdapiError("the demo run has no evaluation; run `odapi eval --model-dir "
                             f"{model_dir}`")
        metrics, per_class = evaluations[-1]["metrics"], evaluations[-1]["per_class"]
    else:
        metrics, per_class = result.evaluations[-1].metrics, result.evaluations[-1].per_class
    log("4/4 held-out evaluation")
    log(tabulate([[k, f"{v:.3f}"] for k, v in metrics.items()], tablefmt="plain"))
    log(tabulate([[n, f"{v['AP']:.3f}", f"{v['AP50']:.3f}"] for n, v in per_class.items()],
                 headers=["class", "AP", "AP50"]))
    log(f"\nsee it learn: odapi tensorboard --model-dir {model_dir}")
    return DemoResult(result, metrics, per_class)
