"""Training overhead: steps/s of `odapi train` against Model Garden's own trainer,
`python -m official.vision.train`, on the same experiment and the same records.

The records are 400 synthetic images generated and converted as `odapi demo` does. The
experiment is configs/demo.yaml (retinanet_mobile_coco, 256x256, batch 8, steps_per_loop 10,
summary_interval 10, checkpoint_interval 50) resolved by odapi onto those records for --steps
steps. Model Garden's trainer gets exactly that experiment as its `--config_file` (the
params.yaml odapi would write) with `--mode=train`, so it trains and never evaluates; odapi
gets `odapi train --config demo --data RECORDS --steps N`. Afterwards the params.yaml each run
wrote into its model dir are compared, and must be identical.

Each run is a fresh process, as users run them, and they alternate, --repeat times each.
Start-up (imports, building the model, reading the records) and the first loop (which traces
the training graph) are left out: both trainers write a TensorBoard train summary every
summary_interval steps, and steps/s is taken between the first summary and the last, from the
summaries' own wall times. That window holds whatever each trainer does between loops in
steady state (summaries, checkpoints, odapi's progress bar). Goal: odapi at >= 0.97x Model
Garden's steps/s. Beside it, without a goal, the seconds from launch to the first summary:
the start-up every session and every restart pays.

On 2 cores another busy process moves these numbers by far more than 3%, so before each run
the script waits (up to --wait s) for the CPUs to be idle, and reports for every run the share
of the CPUs other processes took while it trained. Beside steps/s it reports each trainer's
CPU seconds per step over the same window (its process's CPU time, sampled 4 times a second
and interpolated at the two summaries), which contention disturbs far less; when other
processes took more than 10% of the CPUs during any run, the goal is judged on steps per CPU
second instead of steps per wall second, and the section says so.
"""

from __future__ import annotations

import glob
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import arguments, cpu_busy, describe, machine, publish, wait_for_idle  # noqa: E402

GOAL = 0.97
CONTENDERS = ("odapi", "model-garden")


def summary_times(model_dir: Path) -> dict[int, float]:
    """{step: wall time} of the train summaries in model_dir/train (earliest per step)."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    times: dict[int, float] = {}
    for path in sorted(glob.glob(str(model_dir / "train" / "events.out.tfevents.*"))):
        for raw in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(raw.numpy())
            if event.HasField("summary"):
                times[event.step] = min(times.get(event.step, event.wall_time), event.wall_time)
    return times


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def command(name: str, records: Path, config: Path, model_dir: Path, steps: int) -> list[str]:
    if name == "odapi":
        return [sys.executable, "-m", "odapi", "train", "--config", "demo", "--data",
                str(records), "--model-dir", str(model_dir), "--steps", str(steps)]
    return [sys.executable, "-m", "official.vision.train", "--experiment=retinanet_mobile_coco",
            "--mode=train", f"--model_dir={model_dir}", f"--config_file={config}"]


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) process `pid` has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def at(samples: list[tuple[float, float]], when: float) -> float:
    """The CPU seconds of (wall time, CPU seconds) `samples` at `when`, interpolated."""
    for (t0, c0), (t1, c1) in zip(samples, samples[1:], strict=False):
        if t0 <= when <= t1:
            return c0 + (c1 - c0) * (when - t0) / max(t1 - t0, 1e-9)
    raise SystemExit(f"no CPU sample around {when}")


def measure(name: str, records: Path, config: Path, model_dir: Path, steps: int) -> dict:
    """Train `name` into a fresh `model_dir`; its steady-state steps/s from the summaries,
    and the CPU seconds it spent per step in the same window."""
    shutil.rmtree(model_dir, ignore_errors=True)
    busy, total = cpu_busy()
    own = children_cpu()
    samples = []  # (wall time, CPU seconds of the run), 4 a second
    launched = time.time()
    with open(model_dir.parent / f"{model_dir.name}.log", "w") as log:
        process = subprocess.Popen(command(name, records, config, model_dir, steps),
                                   stdout=log, stderr=subprocess.STDOUT)
        while process.poll() is None:
            cpu = process_cpu(process.pid)
            if cpu is not None:
                samples.append((time.time(), cpu))
            time.sleep(0.25)
    busy2, total2 = cpu_busy()
    # the CPU share other processes took while this run trained: 0 on a quiet machine
    other = max(0.0, (busy2 - busy) - (children_cpu() - own)) / max(total2 - total, 1e-9)
    if process.returncode:
        raise SystemExit(f"{name} exited {process.returncode}; see {log.name}")
    if (model_dir / "validation").exists():
        raise SystemExit(f"{name} evaluated ({model_dir / 'validation'} exists)")
    times = summary_times(model_dir)
    first, last = min(times), max(times)
    if last != steps or len(times) < 3:
        raise SystemExit(f"{name}: train summaries at steps {sorted(times)}, expected up to "
                         f"{steps}")
    seconds = times[last] - times[first]
    cpu = at(samples, times[last]) - at(samples, times[first])
    return {"first_step": first, "last_step": last, "seconds": seconds,
            "to_first_summary": times[first] - launched,
            "steps_per_second": (last - first) / seconds,
            "cpu_seconds_per_step": cpu / (last - first), "other_cpu_share": round(other, 3)}


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--steps", type=int, default=60, help="steps each run trains")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the median counts")
    parser.add_argument("--wait", type=float, default=30,
                        help="seconds to wait, before each run, for other work to finish")
    args = parser.parse_args()

    import yaml
    from official.core import train_utils

    from odapi.data.convert import ConvertOptions
    from odapi.data.prepare import prepare_records
    from odapi.demo import DEMO_SPLIT
    from odapi.engine.config import resolve
    from odapi.engine.length import Length

    work = args.work or Path(tempfile.mkdtemp(prefix="odapi-bench-train-"))
    records = prepare_records(work / "data", work / "records", demo_if_empty=True,
                    options=ConvertOptions(split=DEMO_SPLIT, progress=False),
                    log=lambda _: None)
    params = resolve("demo", data=records, length=Length(steps=args.steps)).params
    trainer = params.trainer
    if args.steps % trainer.steps_per_loop or trainer.summary_interval != trainer.steps_per_loop:
        raise SystemExit("--steps must be a multiple of steps_per_loop, and summaries written "
                         "every loop")
    (work / "experiment").mkdir(exist_ok=True)
    train_utils.serialize_config(params, str(work / "experiment"))  # Model Garden's params.yaml
    config = work / "experiment" / "params.yaml"

    runs: dict[str, list[dict]] = {name: [] for name in CONTENDERS}
    for i in range(args.repeat):  # alternating, so drift in the machine hits both alike
        for name in CONTENDERS:
            model_dir = work / f"{name}-{i}"
            wait_for_idle(args.wait)
            runs[name].append(measure(name, records, config, model_dir, args.steps))
            r = runs[name][-1]
            print(f"{name} run {i + 1}: {r['steps_per_second']:.3f} steps/s, "
                  f"{r['cpu_seconds_per_step']:.3f} CPU s/step (other processes took "
                  f"{r['other_cpu_share']:.0%} of the CPUs)", flush=True)
    written = {name: yaml.safe_load((work / f"{name}-0" / "params.yaml").read_text())
               for name in CONTENDERS}
    if written["odapi"] != written["model-garden"]:
        raise SystemExit("the two runs trained different experiments; compare "
                         f"{work}/odapi-0/params.yaml and {work}/model-garden-0/params.yaml")

    rate = {name: statistics.median(r["steps_per_second"] for r in runs[name])
            for name in CONTENDERS}
    ratio = rate["odapi"] / rate["model-garden"]
    cpu = {name: statistics.median(r["cpu_seconds_per_step"] for r in runs[name])
           for name in CONTENDERS}
    cpu_ratio = cpu["model-garden"] / cpu["odapi"]  # steps per CPU second, odapi / MG
    start = {name: statistics.median(r["to_first_summary"] for r in runs[name])
             for name in CONTENDERS}
    busiest = max(r["other_cpu_share"] for name in CONTENDERS for r in runs[name])
    disturbed = busiest > 0.1  # then wall time says more about the neighbours than the trainers
    judged = cpu_ratio if disturbed else ratio
    met = judged >= GOAL
    first, last = runs["odapi"][0]["first_step"], runs["odapi"][0]["last_step"]
    batch = int(params.task.train_data.global_batch_size)
    size = list(params.task.model.input_size)
    info = machine()

    def row(name: str) -> str:
        each = ", ".join(f"{r['steps_per_second']:.3f}" for r in runs[name])
        other = ", ".join(f"{r['other_cpu_share']:.0%}" for r in runs[name])
        return (f"| {'`odapi train`' if name == 'odapi' else '`official.vision.train`'} | "
                f"{rate[name]:.3f} | {rate[name] * batch:.1f} | {each} | {cpu[name]:.3f} | "
                f"{other} | {rate[name] / rate['model-garden']:.3f}x | {start[name]:.1f} |")


    verdict = f"(goal >= {GOAL:g}x): the goal is {'met' if met else 'NOT met'}"
    if disturbed:
        headline = f"""Other processes took up to {busiest:.0%} of the CPUs during these runs, so
the wall-time ratio ({ratio:.2f}x) measures the neighbours more than the trainers; per CPU
second, which they disturb far less: **odapi train runs at {cpu_ratio:.2f}x the steps/s of
Model Garden's trainer** {verdict}. Rerun on a quiet machine for the wall-time figure."""
    else:
        headline = f"""**odapi train runs at {ratio:.2f}x the steps/s of Model Garden's
trainer** {verdict}. Per CPU second: {cpu_ratio:.2f}x."""
    headline += f"""

From launch to the first summary (step {first}: imports, model, tracing, the first loop)
odapi takes {start['odapi']:.0f} s, Model Garden's trainer {start['model-garden']:.0f} s."""

    markdown = f"""## Training overhead (`bench/train_overhead.py`)

`configs/demo.yaml` (retinanet_mobile_coco, {size[0]}x{size[1]}, batch {batch},
steps_per_loop {trainer.steps_per_loop}, summaries every {trainer.summary_interval} steps,
checkpoints every {trainer.checkpoint_interval}) on 400 synthetic images, {args.steps} steps,
trained by `odapi train` and by Model Garden's `python -m official.vision.train --mode=train`
given the identical resolved experiment (both params.yaml compared equal). Each run a fresh
process, alternating, {args.repeat} of each; steps/s from the wall times of the train
summaries at steps {first} and {last}, so start-up and graph tracing are left out.

{headline}

| trainer | steps/s (median) | images/s | each run (steps/s) | CPU s/step | other load \
| steps/s vs Model Garden | to step {first} (s) |
|---|---:|---:|---|---:|---|---:|---:|
{row('odapi')}
{row('model-garden')}

"CPU s/step": the trainer process's own CPU time (all threads) over the same window, per step,
median. "To step {first}": seconds from launch to the first train summary, median. "Other
load": the share of the CPUs other processes used while the run trained.
Measured {describe(info)}.
"""
    data = {"machine": info, "config": "demo", "steps": args.steps, "repeat": args.repeat,
            "batch_size": batch, "input_size": size,
            "steps_per_loop": trainer.steps_per_loop,
            "summary_interval": trainer.summary_interval,
            "checkpoint_interval": trainer.checkpoint_interval,
            "commands": {name: " ".join(command(name, Path("RECORDS"), Path("params.yaml"),
                                                Path("MODEL_DIR"), args.steps))
                         .replace(sys.executable, "python") for name in CONTENDERS},
            "runs": runs, "steps_per_second": rate, "ratio": ratio, "goal": GOAL,
            "cpu_seconds_per_step": cpu, "steps_per_cpu_second_ratio": cpu_ratio,
            "seconds_to_first_summary": start, "disturbed": disturbed, "judged_ratio": judged,
            "goal_met": met}
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    if not args.no_publish:
        publish("train_overhead", markdown, data)
    print(markdown)


if __name__ == "__main__":
    main()
