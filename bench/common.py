"""Shared by the benchmark scripts: the machine's description, and rewriting docs/benchmarks.md.

Each script owns one section of docs/benchmarks.md, between `<!-- bench:NAME -->` markers, and
writes its raw numbers to bench/results/NAME.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "bench" / "results"


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        pages = 0
    import tensorflow as tf

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(pages / 2**30, 1),
        "gpus": [g.name for g in tf.config.list_physical_devices("GPU")],
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
    }


def describe(info: dict) -> str:
    gpus = ", ".join(info["gpus"]) or "no GPU"
    return (f"{info['date'][:10]}, {info['cores']} cores ({info['cpu']}), "
            f"{info['memory_gib']} GiB, {gpus}, Python {info['python']}, "
            f"TensorFlow {info['tensorflow']}")


def arguments(doc: str | None) -> argparse.ArgumentParser:
    """The options every benchmark shares: where to work, and whether to publish."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, help="working folder (default: a temp folder)")
    parser.add_argument("--no-publish", action="store_true",
                        help="print only; leave docs/benchmarks.md alone")
    return parser


def publish(name: str, markdown: str, data: dict) -> None:
    """Write bench/results/NAME.json and replace the NAME section of docs/benchmarks.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    section = f"{begin}\n{markdown.strip()}\n{end}"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) \
        else text.rstrip() + "\n\n" + section + "\n"
    DOC.write_text(text)


def cpu_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def wait_for_idle(limit: float, threshold: float = 0.15) -> float:
    """Wait (at most `limit` s) until other work uses < `threshold` of the CPUs; the share."""
    deadline = time.monotonic() + limit
    while True:
        busy, total = cpu_busy()
        time.sleep(2)
        busy2, total2 = cpu_busy()
        share = (busy2 - busy) / max(total2 - total, 1e-9)
        if share < threshold or time.monotonic() > deadline:
            return share
        time.sleep(3)
