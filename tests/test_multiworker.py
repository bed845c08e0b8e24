"""Two real `odapi train` processes on this machine, one run: TensorFlow's multi-worker engine
(MultiWorkerMirroredStrategy) on loopback ports, TF_CONFIG for each, as on several hosts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY

pytestmark = pytest.mark.slow


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def train_on_two_workers(records: Path, model_dir: Path, steps: int, logs: Path) -> list[str]:
    """`odapi train` as worker 0 and worker 1 at once; what each printed (both must end 0).
    Each has a temporary folder of its own, to see what it leaves there."""
    hosts = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        (logs / f"tmp-{index}").mkdir(exist_ok=True)
        env = {**os.environ, "TMPDIR": str(logs / f"tmp-{index}"), "TF_CONFIG": json.dumps(
            {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})}
        log = open(logs / f"worker-{index}-{steps}.log", "w")  # noqa: SIM115 - closed below
        processes.append((subprocess.Popen(
            [sys.executable, "-m", "odapi", "train", "--config", "demo", "--data", str(records),
             "--model-dir", str(model_dir), "--steps", str(steps), *TINY],
            stdout=log, stderr=subprocess.STDOUT, env=env), log))
    outputs = []
    try:
        for process, log in processes:
            try:
                process.wait(timeout=900)
            except subprocess.TimeoutExpired:
                raise AssertionError("a worker still runs after 15 minutes: " + " | ".join(
                    Path(log.name).read_text()[-1500:] for _, log in processes)) from None
            log.close()
            outputs.append(Path(log.name).read_text())
    finally:
        for process, _ in processes:
            process.kill()
            process.wait()
    for (process, _), output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
    return outputs


def test_two_workers_train_one_run_and_resume_it(records, tmp_path):
    """Both reach the final step in lockstep (the same losses: one model, its batch split
    between them); only the chief (worker 0) writes the run's files, and nothing of the other
    is left; the manifest records the cluster. The same two commands then resume from the
    chief's last checkpoint."""
    model_dir = tmp_path / "model"
    outputs = train_on_two_workers(records, model_dir, 3, tmp_path)
    finals = [[line for line in out.splitlines() if line.startswith("train 3/3")][-1]
              for out in outputs]  # the bar's last line, with the losses
    assert finals[0].split("|")[1] == finals[1].split("|")[1], finals  # the same losses
    assert "report.html" in outputs[0] and "report.html" not in outputs[1]  # one writes it
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "checkpoint", "ckpt-3.data-00000-of-00001", "ckpt-3.index", "label_map.pbtxt",
        "manifest.json", "params.yaml", "report.html", "train"]
    manifest = json.loads((model_dir / "manifest.json").read_text())
    cluster = manifest["sessions"][-1]["cluster"]
    assert len(cluster["workers"]) == 2 and cluster["this"] == "worker 0"
    assert cluster["global_batch_size"] == 4 and cluster["batch_per_replica"] == 2

    outputs = train_on_two_workers(records, model_dir, 6, tmp_path)
    for output in outputs:
        assert "from step 3" in output and "train 6/6" in output, output[-3000:]
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert [(s["start_step"], s["end_step"]) for s in manifest["sessions"]] == [(0, 3), (3, 6)]
    assert (model_dir / "ckpt-6.index").exists()
    assert not [p for p in model_dir.rglob("*") if "temp" in p.name]  # no save cut short
    # worker 1 saved its copies of the checkpoints in a temporary folder (Model Garden's
    # way: saving reads variables, which every worker must join), removed when it ended
    assert not list((tmp_path / "tmp-1").glob("*/ckpt-*")), list((tmp_path / "tmp-1").rglob("*"))

