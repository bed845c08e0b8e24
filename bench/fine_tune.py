"""Fine-tuning against training from scratch, the same steps on the same data, side by side.

What `--init-checkpoint` buys on this machine. The checkpoint is odapi-made (nothing can be
downloaded here): `configs/demo.yaml` trained for --pretrain-steps on 400 synthetic images of
another seed. Both runs then train --steps steps of `configs/demo.yaml` on the demo's own data
(340 train, 60 held out), through `odapi.engine.job.run_training` as `odapi train` does, with
checkpoints every --steps/4 evaluated afterwards on the held-out images.
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


def train_and_evaluate(request, label: str) -> dict:
    """Train, then AP50 and AP of each checkpoint on the held-out images."""
    from odapi.engine.job import run_training
    from odapi.evaluation.evaluate import evaluator_for_run
    from odapi.model_dir.checkpoints import checkpoint_step, list_checkpoints

    started = time.monotonic()
    result = run_training(request, log=lambda m: print(f"[{label}] {m}"), progress=False)
    seconds = time.monotonic() - started
    evaluator = evaluator_for_run(request.model_dir)
    points = []
    for prefix in list_checkpoints(request.model_dir):
        evaluation = evaluator.evaluate(checkpoint_step(prefix), prefix)
        if evaluation:
            points.append({"step": checkpoint_step(prefix),
                           "AP50": round(evaluation.metrics["AP50"], 4),
                           "AP": round(evaluation.metrics["AP"], 4)})
    return {"seconds": round(seconds, 1), "init": result.init.checkpoint if result.init
            else None, "points": points}


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--steps", type=int, default=60, help="steps of each compared run")
    parser.add_argument("--pretrain-steps", type=int, default=300)
    args = parser.parse_args()

    from odapi.data.convert import ConvertOptions
    from odapi.data.synthetic import write_demo_dataset
    from odapi.demo import DEMO_SPLIT
    from odapi.engine.job import TrainRequest, run_training
    from odapi.engine.length import Length
    from odapi.quiet import quiet_model_garden

    quiet_model_garden(False)
    work = args.work or Path(tempfile.mkdtemp(prefix="odapi-bench-finetune-"))
    if not (work / "other-shapes").exists():
        write_demo_dataset(work / "other-shapes", count=400, seed=7, formats=("voc",))
    pretrained = work / "pretrained"
    run_training(TrainRequest(pretrained, config="demo", data=work / "other-shapes" / "voc",
                              reading=ConvertOptions(progress=False),
                              length=Length(steps=args.pretrain_steps)),
                 log=lambda m: print(f"[pretrain] {m}"), progress=False)
    every = [f"trainer.checkpoint_interval={max(1, args.steps // 4)}", "trainer.max_to_keep=20"]
    runs = {}
    for label, init in (("fine-tuned", str(pretrained)), ("from scratch", None)):
        request = TrainRequest(work / label.replace(" ", "-"), config="demo",
                               data=work / "data", demo_if_empty=True,
                               reading=ConvertOptions(split=DEMO_SPLIT, progress=False),
                               length=Length(steps=args.steps), sets=every,
                               init_checkpoint=init)
        runs[label] = train_and_evaluate(request, label)

    info = machine()
    tuned, scratch = runs["fine-tuned"]["points"], runs["from scratch"]["points"]
    rows = "\n".join(f"| {a['step']} | {a['AP50']:.3f} | {b['AP50']:.3f} | {a['AP']:.3f} | "
                     f"{b['AP']:.3f} |" for a, b in zip(tuned, scratch, strict=True))
    last_tuned, last_scratch = tuned[-1], scratch[-1]
    markdown = f"""## Fine-tuning against training from scratch (`bench/fine_tune.py`)

`configs/demo.yaml` for {args.steps} steps on the demo's 340 synthetic training images, once
fine-tuned from an odapi-made checkpoint ({args.pretrain_steps} steps on 400 images of another
seed: the same classes, other pictures) and once from scratch; the held-out 60 images judge
both. After {args.steps} steps the fine-tuned run reaches **AP50 {last_tuned['AP50']:.3f}**
(AP {last_tuned['AP']:.3f}) and the run from scratch AP50 {last_scratch['AP50']:.3f} (AP
{last_scratch['AP']:.3f}). Training took {runs['fine-tuned']['seconds']:.0f} s and
{runs['from scratch']['seconds']:.0f} s. This measures the mechanism (restoring every part,
the schedule stretched to the run) on the one pretraining available offline, not how much
COCO weights help on real photographs.

Measured {describe(info)}.

| step | AP50 fine-tuned | AP50 from scratch | AP fine-tuned | AP from scratch |
|---:|---:|---:|---:|---:|
{rows}
"""
    if not args.no_publish:
        publish("fine_tune", markdown, {"machine": info, "steps": args.steps,
                                        "pretrain_steps": args.pretrain_steps, "runs": runs})
    print(markdown)


if __name__ == "__main__":
    main()
