"""Conversion memory: peak RSS of `odapi convert` on 10,000 and on 100,000 small images.

The images are tiny JPEGs (32x32, a few hundred bytes), so that what grows with the number of
images (annotations, bookkeeping, the report) is not hidden behind image data. Each conversion
runs as its own `python -m odapi convert` process, and its peak resident memory is read from
the kernel when it exits (getrusage of the child). Goal: the peak on 100,000 images is within
1.2x of the peak on 10,000.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import arguments, describe, machine, publish  # noqa: E402

GOAL = 1.2
# Runs one command and prints its peak RSS: a process of its own, so that RUSAGE_CHILDREN
# holds exactly the converter (and whatever it starts).
MEASURE = """
import resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(code, time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def generate(folder: Path, count: int, distinct: int = 64) -> Path:
    """`count` small JPEGs (copies of `distinct` different ones) and their tutorial CSV."""
    from PIL import Image

    rng = random.Random(0)
    originals = []
    for _ in range(distinct):
        out = io.BytesIO()
        Image.new("RGB", (32, 32), tuple(rng.randrange(256) for _ in range(3))).save(out, "JPEG")
        originals.append(out.getvalue())
    images = folder / "images"
    images.mkdir(parents=True)
    lines = []
    for i in range(count):
        (images / f"{i}.jpg").write_bytes(originals[i % distinct])
        x, y = rng.randrange(0, 16), rng.randrange(0, 16)
        lines.append(f"{i},{x},{x + 12},{y},{y + 12},{('a', 'b', 'c')[i % 3]}\n")
    csv = folder / "annotations.csv"
    csv.write_text("".join(lines))
    return csv


def peak_rss(csv: Path, out: Path) -> dict:
    command = [sys.executable, "-m", "odapi", "convert", str(csv), "--out", str(out), "-q",
               "--split", "train=0.9,val=0.1"]
    result = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True,
                            text=True, check=True)
    code, seconds, kib = result.stdout.split()
    if int(code):
        raise SystemExit(f"odapi convert failed ({code}) on {csv}")
    return {"seconds": float(seconds), "peak_rss_mib": int(kib) / 1024}


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--sizes", default="10000,100000",
                        help="image counts, comma-separated (default: 10000,100000)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    work = args.work or Path(tempfile.mkdtemp(prefix="odapi-bench-memory-"))
    runs = {}
    for count in sizes:
        folder = work / f"images-{count}"
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        csv = generate(folder, count)
        generated = time.perf_counter() - started
        runs[count] = peak_rss(csv, folder / "records")
        runs[count]["generate_seconds"] = generated
        print(count, json.dumps(runs[count]), flush=True)
        shutil.rmtree(folder, ignore_errors=True)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)

    info = machine()
    small, large = runs[sizes[0]], runs[sizes[-1]]
    ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    met = ratio <= GOAL
    rows = "\n".join(
        f"| {count:,} | {r['peak_rss_mib']:,.0f} | {r['seconds']:.1f} | "
        f"{count / r['seconds']:,.0f} |" for count, r in runs.items())
    markdown = f"""## Conversion memory (`bench/convert_memory.py`)

Peak resident memory of `odapi convert` (its own process, read from the kernel at exit) on
tiny generated JPEGs with a tutorial CSV, split train=0.9,val=0.1. **Peak on {sizes[-1]:,}
images / peak on {sizes[0]:,}: {ratio:.2f}x** (goal <= {GOAL}: {'met' if met else 'NOT met'}).
The process includes TensorFlow, imported for the record writer, which is most of the peak.

| images | peak RSS (MiB) | seconds (with start-up) | images/s |
|---:|---:|---:|---:|
{rows}

Measured {describe(info)}.
"""
    data = {"machine": info, "runs": {str(k): v for k, v in runs.items()}, "ratio": ratio,
            "goal_met": met}
    if not args.no_publish:
        publish("memory", markdown, data)
    print(markdown)


if __name__ == "__main__":
    main()
