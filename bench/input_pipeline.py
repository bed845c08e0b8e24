"""Input pipeline headroom: images/s the training input pipeline delivers against images/s the
model consumes, for configs/demo.yaml on this machine.

One process, built the way `odapi train` builds it (odapi.engine.train): 400 synthetic images
generated and converted as `odapi demo` does, configs/demo.yaml resolved onto them, then Model
Garden's task and trainer under the same distribution strategy. Both rates use the demo
config's own input size and batch size.

- delivered: the trainer's own training dataset (`trainer.train_dataset`: the task's
  `build_inputs` for `task.train_data`, distributed as the trainer distributes it: decode,
  augmentation, anchor labelling, batching, prefetch), iterated for --batches batches after
  --warmup batches, with nothing else running;
- consumed: the trainer's own training loop (`trainer.train`, a `tf.while_loop` of
  `steps_per_loop` steps: forward, loss, gradients, optimizer update, metrics) fed one batch
  taken from that dataset and held in memory (`Dataset.from_tensors(batch).repeat()`), so no
  input work is left in it; --loops loops after one warm-up loop (which traces the graph).

The two are measured one after the other, each alone. Goal: the pipeline delivers >= 3x what
training consumes, so it is never what training waits for, even on a CPU where the two share
the cores. Median of --repeat rounds, interleaved. Before each round the script waits (up to
--wait s) for the CPUs to be idle, and it reports the share of the CPUs other processes took
while each was measured.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import arguments, cpu_busy, describe, machine, publish, wait_for_idle  # noqa: E402

GOAL = 3.0


def build(records: Path, model_dir: Path):
    """configs/demo.yaml on `records`: (params, strategy, trainer), built by odapi's own code."""
    from odapi.engine.config import resolve
    from odapi.engine.train import build_trainer

    params = resolve("demo", data=records).params
    strategy, _, trainer = build_trainer(params, model_dir)
    return params, strategy, trainer


def delivered(dataset, warmup: int, batches: int) -> tuple[float, object]:
    """Seconds for `batches` batches of `dataset` after `warmup`; and the first batch."""
    iterator = iter(dataset)
    first = next(iterator)
    for _ in range(warmup - 1):
        next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    seconds = time.perf_counter() - started
    del iterator  # stops its prefetching threads before anything else is timed
    gc.collect()
    return seconds, first


def consumed(trainer, strategy, loops: int, steps_per_loop: int) -> float:
    """Seconds for `loops` training loops of `steps_per_loop` steps (after a warm-up loop)."""
    import tensorflow as tf

    steps = tf.constant(steps_per_loop, dtype=tf.int32)
    with strategy.scope():
        trainer.train(steps)  # traces the loop
        started = time.perf_counter()
        for _ in range(loops):
            trainer.train(steps)
        return time.perf_counter() - started


def others_share(timed):
    """Run `timed()`; return its result and the share of the CPUs other processes took."""
    import resource

    def own() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    busy, total, mine = *cpu_busy(), own()
    result = timed()
    busy2, total2 = cpu_busy()
    other = max(0.0, (busy2 - busy) - (own() - mine)) / max(total2 - total, 1e-9)
    return result, round(other, 3)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--batches", type=int, default=150, help="batches delivered, timed")
    parser.add_argument("--warmup", type=int, default=10, help="batches delivered, untimed")
    parser.add_argument("--loops", type=int, default=2,
                        help="training loops (of steps_per_loop steps) timed per round")
    parser.add_argument("--repeat", type=int, default=2, help="rounds; the median is reported")
    parser.add_argument("--wait", type=float, default=60,
                        help="seconds to wait, before each round, for other work to finish")
    args = parser.parse_args()

    from odapi.data.convert import ConvertOptions
    from odapi.data.prepare import prepare_records
    from odapi.demo import DEMO_SPLIT
    from odapi.quiet import quiet_model_garden

    quiet_model_garden(False)
    import tensorflow as tf

    work = args.work or Path(tempfile.mkdtemp(prefix="odapi-bench-input-"))
    prepare_records(work / "data", work / "records", demo_if_empty=True,
                    options=ConvertOptions(split=DEMO_SPLIT, progress=False),
                    log=lambda _: None)
    params, strategy, trainer = build(work / "records", work / "model")
    batch_size = int(params.task.train_data.global_batch_size)
    steps_per_loop = int(params.trainer.steps_per_loop)
    input_size = list(params.task.model.input_size)
    real_dataset = trainer.train_dataset

    deliver_s, consume_s, others, fixed = [], [], [], None
    for _ in range(args.repeat):  # interleaved, so drift in the machine hits both alike
        wait_for_idle(args.wait)
        (seconds, first), other = others_share(
            lambda: delivered(real_dataset, args.warmup, args.batches))
        deliver_s.append(seconds)
        others.append(other)
        if fixed is None:  # one real batch, held in memory, fed to every training step
            batch = tf.nest.map_structure(tf.identity, first)
            fixed = strategy.distribute_datasets_from_function(
                lambda _, b=batch: tf.data.Dataset.from_tensors(b).repeat())
            trainer.train_dataset = fixed
        del first
        seconds, other = others_share(
            lambda: consumed(trainer, strategy, args.loops, steps_per_loop))
        consume_s.append(seconds)
        others.append(other)
        print(f"delivered {args.batches * batch_size / deliver_s[-1]:.1f} img/s, consumed "
              f"{args.loops * steps_per_loop * batch_size / consume_s[-1]:.1f} img/s (other "
              f"processes took {others[-2]:.0%} and {others[-1]:.0%} of the CPUs)", flush=True)

    deliver_rate = args.batches * batch_size / statistics.median(deliver_s)
    steps_per_second = args.loops * steps_per_loop / statistics.median(consume_s)
    consume_rate = steps_per_second * batch_size
    ratio = deliver_rate / consume_rate
    met = ratio >= GOAL
    busy_note = (f" Other processes took up to {max(others):.0%} of the CPUs during a "
                 "measurement, so the absolute rates are lower than on a quiet machine."
                 if max(others) > 0.1 else "")
    info = machine()
    markdown = f"""## Input pipeline headroom (`bench/input_pipeline.py`)

`configs/demo.yaml` ({input_size[0]}x{input_size[1]} input, batch {batch_size}) on 400
synthetic images, built as `odapi train` builds it. Delivered: the trainer's own training
dataset (decode, augmentation, anchor labelling, batching) iterated alone for {args.batches}
batches after {args.warmup}. Consumed: the trainer's own training loop fed one batch held in
memory, {args.loops} loops of {steps_per_loop} steps after a warm-up loop. Median of
{args.repeat} interleaved rounds.

**The input pipeline delivers {ratio:.1f}x what training consumes** (goal >= {GOAL:g}x): the
goal is {'met' if met else 'NOT met'}.

| | images/s | batches (steps)/s | seconds per round |
|---|---:|---:|---:|
| input pipeline delivers | {deliver_rate:,.1f} | {deliver_rate / batch_size:.2f} | \
{statistics.median(deliver_s):.1f} |
| training consumes | {consume_rate:,.1f} | {steps_per_second:.2f} | \
{statistics.median(consume_s):.1f} |

Each is measured alone; on a CPU the two share the cores during training, so the headroom is
what keeps the pipeline's share small.{busy_note} Measured {describe(info)}.
"""
    data = {"machine": info, "other_cpu_share": others, "config": "demo",
            "input_size": input_size,
            "batch_size": batch_size, "steps_per_loop": steps_per_loop,
            "batches": args.batches, "warmup": args.warmup, "loops": args.loops,
            "repeat": args.repeat, "delivered_seconds": deliver_s, "consumed_seconds": consume_s,
            "delivered_images_per_second": deliver_rate,
            "consumed_images_per_second": consume_rate, "train_steps_per_second": steps_per_second,
            "ratio": ratio, "goal": GOAL, "goal_met": met}
    if not args.work:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    if not args.no_publish:
        publish("input_pipeline", markdown, data)
    print(markdown)


if __name__ == "__main__":
    main()
