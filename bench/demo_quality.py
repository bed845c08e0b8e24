"""Demo time-to-quality: AP50 and AP against wall time for configs/demo.yaml on this machine.

The clock starts before the synthetic data is generated and covers conversion and training,
as `odapi demo` does. Checkpoints are written every 25 steps and evaluated afterwards on the
held-out images, so evaluation does not slow the curve; a checkpoint's time is when its file
was written. Goal: AP50 >= 0.9 within 10 minutes on a 2-core CPU.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import arguments, describe, machine, publish  # noqa: E402

GOAL_AP50, GOAL_MINUTES = 0.9, 10.0


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--every", type=int, default=25, help="checkpoint interval in steps")
    args = parser.parse_args()

    from odapi.data.convert import ConvertOptions
    from odapi.data.prepare import prepare_records
    from odapi.demo import DEMO_SPLIT
    from odapi.engine.config import resolve
    from odapi.engine.train import train
    from odapi.evaluation.evaluate import evaluator_for_run
    from odapi.model_dir.checkpoints import checkpoint_step, list_checkpoints
    from odapi.quiet import quiet_model_garden

    quiet_model_garden(False)
    work = args.work or Path(tempfile.mkdtemp(prefix="odapi-bench-demo-"))
    started = time.time()
    prepare_records(work / "data", work / "records", demo_if_empty=True,
                    options=ConvertOptions(split=DEMO_SPLIT, progress=False),
                    log=lambda _: None)
    prepared = time.time() - started
    run = resolve("demo", data=work / "records",
                  sets=[f"trainer.checkpoint_interval={args.every}", "trainer.max_to_keep=100"])
    result = train(run, work / "model", progress=False)
    trained = time.time() - started

    points = []
    evaluator = evaluator_for_run(work / "model")
    for prefix in list_checkpoints(work / "model"):
        written = Path(prefix + ".index").stat().st_mtime - started
        evaluation = evaluator.evaluate(checkpoint_step(prefix), prefix)
        if evaluation is None:  # evaluated before (a rerun in the same --work)
            continue
        points.append({"step": checkpoint_step(prefix), "minutes": round(written / 60, 2),
                       "AP": round(evaluation.metrics["AP"], 4),
                       "AP50": round(evaluation.metrics["AP50"], 4)})
    reached = next((p for p in points if p["AP50"] >= GOAL_AP50), None)
    info = machine()
    rows = "\n".join(f"| {p['step']} | {p['minutes']:.1f} | {p['AP50']:.3f} | {p['AP']:.3f} |"
                     for p in points)
    verdict = (f"**AP50 {reached['AP50']:.3f} at {reached['minutes']:.1f} min** (step "
               f"{reached['step']}): the goal of AP50 >= {GOAL_AP50} within {GOAL_MINUTES:g} "
               f"min is {'met' if reached['minutes'] <= GOAL_MINUTES else 'NOT met'}"
               if reached else f"**AP50 never reached {GOAL_AP50}: goal NOT met**")
    steps_per_second = (result.end_step - result.start_step) / max(result.seconds, 1e-9)
    markdown = f"""## Demo time-to-quality (`bench/demo_quality.py`)

`configs/demo.yaml`, trained from scratch on 400 synthetic images (340 train, 60 held out).
The clock starts before the data is generated. {verdict}. After {result.end_step} steps the
final AP50 is {points[-1]['AP50']:.3f} and AP {points[-1]['AP']:.3f}. Generating and
converting the data took {prepared:.0f} s; the whole run took {trained / 60:.1f} min, training
at {steps_per_second:.2f} steps/s.

Measured {describe(info)}.

| step | minutes | AP50 | AP |
|---:|---:|---:|---:|
{rows}
"""
    if not args.no_publish:
        publish("demo", markdown, {"machine": info, "points": points, "goal_met": bool(
            reached and reached["minutes"] <= GOAL_MINUTES), "prepare_seconds": prepared,
            "total_seconds": trained})
    print(markdown)


if __name__ == "__main__":
    main()
