"""Conversion speed: `odapi convert` against a plain copy and two other converters.

On the same generated JPEGs (2,000 by default, 640x480, one box each), four contenders run one
after another, each in a fresh process and timed from the moment its imports are done (so
TensorFlow's start-up, a few seconds for every one of them, is left out):

- copy: every image's bytes read and appended to one file: the I/O limit;
- odapi: `odapi convert annotations.csv --out DIR -q` through odapi's CLI entry point;
- tutorial: bench/tutorial_converter.py, the single-process converter of the tutorial's Step 2;
- model-garden: `python -m official.vision.data.create_coco_tf_record` on the same data as COCO
  JSON (its own worker processes, one per core).

Two regimes. Cold: the page cache is dropped before each run (root only), so images come from
the disk, as on a first conversion; this is where the copy is the I/O limit, and where the goal
of at least 0.8x the copy is judged. Warm: every image is already in memory, so the copy is a
memory copy and every contender is bound by its CPU work. Each figure is the median of
--repeat runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import arguments, describe, machine, publish  # noqa: E402

CONTENDERS = ("copy", "odapi", "tutorial", "model-garden")
EXTRA = ("odapi --verify-pixels",)  # shown for what the full decode costs; warm only
GOAL = 0.8
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


# --- the dataset ------------------------------------------------------------------------------

def generate(folder: Path, count: int, size: tuple[int, int] = (640, 480)) -> dict:
    """`count` distinct JPEGs with one box each, as a tutorial CSV and as COCO JSON."""
    import numpy as np
    from PIL import Image

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    width, height = size
    bases = [rng.normal(128, 40, (height, width, 3)).clip(0, 255).astype(np.uint8)
             for _ in range(8)]
    rows, coco_images, coco_annotations = [], [], []
    for i in range(count):
        pixels = bases[i % len(bases)].copy()
        x1, y1 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
        x2, y2 = x1 + int(rng.integers(20, width // 2)), y1 + int(rng.integers(20, height // 2))
        pixels[y1:y2, x1:x2] = rng.integers(0, 255, 3)  # the object: a flat rectangle
        Image.fromarray(pixels).save(images / f"{i}.jpg", quality=90)
        rows.append(f"{i},{x1},{x2},{y1},{y2},box\n")
        coco_images.append({"id": i + 1, "file_name": f"{i}.jpg", "width": width,
                            "height": height})
        coco_annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 1,
                                 "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0,
                                 "area": (x2 - x1) * (y2 - y1)})
    (folder / "annotations.csv").write_text("".join(rows))
    (folder / "coco.json").write_text(json.dumps({
        "images": coco_images, "annotations": coco_annotations,
        "categories": [{"id": 1, "name": "box"}]}))
    files = sorted(images.iterdir())
    return {"images": count, "bytes": sum(f.stat().st_size for f in files)}


# --- one contender, in this (fresh) process ---------------------------------------------------

def _prepare(name: str):
    """Import what `name` needs and return the function that does its work."""
    if name == "copy":
        def run(data: Path, out: Path) -> None:
            with open(out / "images.bin", "wb") as sink:
                for path in sorted((data / "images").iterdir()):
                    with open(path, "rb") as f:
                        sink.write(f.read())
        return run
    if name.startswith("odapi"):
        import odapi.data.convert  # noqa: F401  (what the command imports, before the clock)
        from odapi.cli import main

        def run(data: Path, out: Path) -> None:
            extra = name.split()[1:]
            code = main(["convert", str(data / "annotations.csv"), "--out", str(out / "records"),
                         "-q", *extra])
            assert code == 0, f"odapi convert exited {code}"
        return run
    if name == "tutorial":
        import tutorial_converter

        def run(data: Path, out: Path) -> None:
            tutorial_converter.convert(data / "annotations.csv", data / "images",
                                       out / "output.tfrecord")
        return run
    if name == "model-garden":
        from absl import flags
        from official.vision.data import create_coco_tf_record

        def run(data: Path, out: Path) -> None:
            flags.FLAGS(["create_coco_tf_record", f"--image_dir={data / 'images'}",
                         f"--object_annotations_file={data / 'coco.json'}",
                         f"--output_file_prefix={out / 'train'}", "--num_shards=4"])
            create_coco_tf_record.main(None)
        return run
    raise ValueError(name)


def drop_caches() -> bool:
    try:
        os.sync()
        DROP_CACHES.write_text("3\n")
        return True
    except OSError:
        return False


def run_one(name: str, data: Path, out: Path, cold: bool) -> float:
    run = _prepare(name)
    if cold:
        assert drop_caches(), "cannot drop the page cache"
    else:
        for path in (data / "images").iterdir():  # every image in memory
            path.read_bytes()
    started = time.perf_counter()
    run(data, out)
    return time.perf_counter() - started


def measure(name: str, data: Path, cold: bool) -> float:
    """Run `name` in a fresh process (as a user would) and return its seconds of work."""
    with tempfile.TemporaryDirectory(dir=data.parent) as out:
        result = subprocess.run(
            [sys.executable, __file__, "--run", name, "--data", str(data), "--out", out]
            + (["--cold"] if cold else []), capture_output=True, text=True, check=False)
        lines = [line for line in result.stdout.splitlines() if line.startswith("SECONDS ")]
        if result.returncode or not lines:
            raise SystemExit(f"{name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
        return float(lines[-1].split()[1])


# --- the benchmark ----------------------------------------------------------------------------

def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--run", help=argparse.SUPPRESS)  # internal: one contender, this process
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(f"SECONDS {run_one(args.run, args.data, args.out, args.cold)}")
        return

    work = args.work or Path(tempfile.mkdtemp(prefix="odapi-bench-convert-"))
    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    dataset = generate(data, args.images)
    regimes = ["warm"] + (["cold"] if drop_caches() else [])
    seconds: dict[str, dict[str, float]] = {}
    runs: dict[str, dict[str, list[float]]] = {}
    for regime in regimes:
        names = CONTENDERS + (EXTRA if regime == "warm" else ())
        times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.repeat):  # interleaved, so drift in the machine hits all alike
            for name in names:
                times[name].append(measure(name, data, regime == "cold"))
        runs[regime] = times
        seconds[regime] = {name: statistics.median(t) for name, t in times.items()}
        print(regime, {k: round(v, 3) for k, v in seconds[regime].items()}, flush=True)
    shutil.rmtree(work, ignore_errors=True) if not args.work else None

    info = machine()
    megabytes = dataset["bytes"] / 1e6
    headline = "cold" if "cold" in seconds else "warm"
    odapi = seconds[headline]["odapi"]
    ratio = {name: seconds[headline][name] / odapi for name in CONTENDERS}  # speed of odapi
    copy_ratio = seconds[headline]["copy"] / odapi
    met = copy_ratio >= GOAL and ratio["tutorial"] > 1 and ratio["model-garden"] > 1

    def row(name: str) -> str:
        cells = []
        for regime in regimes:
            s = seconds[regime].get(name)
            cells += [f"{s:.2f}", f"{dataset['images'] / s:,.0f}", f"{megabytes / s:,.0f}"] \
                if s else ["", "", ""]
        speed = seconds[headline]["copy"] / seconds[headline][name] \
            if name in seconds[headline] else None
        return f"| {name} | " + " | ".join(cells) + (f" | {speed:.2f}x |" if speed else " | |")

    head = " | ".join(f"{r} s | {r} img/s | {r} MB/s" for r in regimes)
    rows = "\n".join(row(name) for name in CONTENDERS + EXTRA)
    cold_note = ("" if "cold" in seconds else " The page cache could not be dropped (not "
                 "root), so only the warm regime was measured.")
    markdown = f"""## Conversion speed (`bench/convert_speed.py`)

{dataset['images']:,} generated 640x480 JPEGs ({megabytes:.0f} MB, one box each), converted by
each contender in a fresh process; time from the end of its imports to the end of its work,
median of {args.repeat} runs. Cold: page cache dropped before each run, images read from the
disk. Warm: images already in memory.{cold_note}

**odapi converts at {copy_ratio:.2f}x the speed of a plain copy** ({headline}; goal >= {GOAL}),
**{ratio['tutorial']:.2f}x the tutorial-style converter** and **{ratio['model-garden']:.2f}x
Model Garden's `create_coco_tf_record`**: the goals are {'met' if met else 'NOT met'}. Warm, with
nothing to wait for but its own CPU work, odapi runs at
{seconds['warm']['copy'] / seconds['warm']['odapi']:.2f}x the copy and
{seconds['warm']['tutorial'] / seconds['warm']['odapi']:.2f}x the tutorial's converter.

| contender | {head} | speed vs copy ({headline}) |
|---|{'---:|' * (3 * len(regimes) + 1)}
{rows}

odapi checks each JPEG's structure (markers, end-of-image) and hashes it (`image/key/sha256`);
`--verify-pixels` decodes every image as well, at the cost shown. The tutorial's converter and
Model Garden's check nothing. Measured {describe(info)}.
"""
    data_out = {"machine": info, "dataset": dataset, "repeat": args.repeat, "seconds": seconds,
                "runs": runs, "headline_regime": headline, "odapi_vs_copy": copy_ratio,
                "odapi_vs_tutorial": ratio["tutorial"],
                "odapi_vs_model_garden": ratio["model-garden"], "goal_met": met}
    if not args.no_publish:
        publish("convert", markdown, data_out)
    print(markdown)


if __name__ == "__main__":
    main()
