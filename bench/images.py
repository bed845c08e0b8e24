"""Image sizes, and how long a rebuild takes after a code-only change.

The reference is a full build of the cpu target without cache in the same run; the subject is a
rebuild of the same target after one source file changed, which must only redo odapi's own
layers. The CUDA image's size is measured when `--cuda` builds it (about 3 GB of downloads).
The images built here are removed afterwards: each is several GB.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, describe, machine, publish  # noqa: E402

CA = Path("/etc/ssl/certs/ca-certificates.crt")
BENCH_TAGS = ("odapi:bench-cpu", "odapi:bench-cpu-changed", "odapi:bench-cuda")


def build(context: Path, target: str, tag: str, no_cache: bool = False) -> float:
    command = ["docker", "buildx", "build", "-f", "docker/Dockerfile", "--target", target,
               "-t", tag]
    if CA.exists():
        command += ["--secret", f"id=extra_ca,src={CA}"]
    if no_cache:
        command.append("--no-cache")
    started = time.monotonic()
    subprocess.run([*command, "."], cwd=context, check=True, capture_output=True)
    return time.monotonic() - started


def size_gb(tag: str) -> float:
    out = subprocess.run(["docker", "image", "inspect", tag, "--format", "{{.Size}}"],
                         check=True, capture_output=True, text=True).stdout
    return int(out) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cuda", action="store_true", help="also build the CUDA image")
    args = parser.parse_args()
    try:
        measure(args.cuda)
    finally:
        subprocess.run(["docker", "image", "rm", "--force", *BENCH_TAGS], capture_output=True)


def measure(cuda: bool) -> None:
    full = build(ROOT, "cpu", "odapi:bench-cpu", no_cache=True)
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp) / "odapi"
        files = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True,
                               text=True).stdout.split()
        for name in files:
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, context / name)
        with (context / "odapi" / "cli" / "__init__.py").open("a") as f:
            f.write(f"\n# code-only change {time.time()}\n")
        rebuild = build(context, "cpu", "odapi:bench-cpu-changed")
    sizes = {"cpu": size_gb("odapi:bench-cpu")}
    if cuda:
        build(ROOT, "cuda", "odapi:bench-cuda")
        sizes["cuda"] = size_gb("odapi:bench-cuda")
    info = machine()
    cuda_size = f"{sizes['cuda']:.2f} GB" if "cuda" in sizes else "not built (run with --cuda)"
    markdown = f"""## Images (`bench/images.py`)

| | value |
|---|---:|
| cpu image size | {sizes['cpu']:.2f} GB |
| CUDA image size | {cuda_size} |
| full cpu build, no cache (reference) | {full:.0f} s |
| rebuild after a code-only change | {rebuild:.1f} s |
| **rebuild / full build** | **{rebuild / full:.3f}** |

Most of both images is TensorFlow and Model Garden's dependencies; the CUDA image adds the
NVIDIA libraries of `tensorflow[and-cuda]`. Measured {describe(info)}.
"""
    publish("images", markdown, {"machine": info, "sizes_gb": sizes,
                                 "full_build_seconds": full, "rebuild_seconds": rebuild})
    print(markdown)


if __name__ == "__main__":
    main()
