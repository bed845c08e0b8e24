"""Two real `odapi train` processes on this machine, one run: TensorFlow's multi-worker engine
(MultiWorkerMirroredStrategy) on loopback ports, TF_CONFIG for each, as on several hosts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from odapi.model_dir.checkpoints import checkpoint_step, latest_checkpoint

from conftest import TINY, odapi_command, run_odapi


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def cluster_env(hosts: list[str], index: int, style: str) -> dict:
    """Worker `index`'s environment: TF_CONFIG, or odapi's ODAPI_WORKERS (the compose way)."""
    if style == "odapi":
        return {"ODAPI_WORKERS": ",".join(hosts), "ODAPI_WORKER_INDEX": str(index)}
    return {"TF_CONFIG": json.dumps({"cluster": {"worker": hosts},
                                     "task": {"type": "worker", "index": index}})}


def two_workers(data: Path, model_dirs: tuple[Path, Path], steps: int, logs: Path,
                style: str = "TF_CONFIG") -> list[tuple[subprocess.Popen, Path]]:
    """`odapi train` started as worker 0 and worker 1 of one cluster on loopback ports, each
    with a temporary folder of its own for this launch, tmp-INDEX-LAUNCH (to see what it
    leaves there); the processes and their logs."""
    hosts = [f"127.0.0.1:{port}" for port in free_ports(2)]
    launch = len(list(logs.glob("worker-0-*")))
    started = []
    for index, model_dir in enumerate(model_dirs):
        tmp = logs / f"tmp-{index}-{launch}"
        tmp.mkdir()
        worker_env = {**os.environ, "TMPDIR": str(tmp), **cluster_env(hosts, index, style)}
        log = logs / f"worker-{index}-{launch}.log"
        with open(log, "w") as sink:
            started.append((subprocess.Popen(
                odapi_command("train", "--config", "demo", "--data", data, "--model-dir",
                              model_dir, "--steps", steps, *TINY),
                stdout=sink, stderr=subprocess.STDOUT, env=worker_env), log))
    return started


def ended(workers: list[tuple[subprocess.Popen, Path]], timeout: float = 900) -> list[str]:
    """What each worker printed, once all have ended (each within `timeout` s of the call)."""
    try:
        for process, _ in workers:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"a worker still runs after {timeout:g} s: " + " | ".join(
                    log.read_text()[-1500:] for _, log in workers)) from None
    finally:
        for process, _ in workers:
            process.kill()
            process.wait()
    return [log.read_text() for _, log in workers]


def wait_for(path: Path, workers: list, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert all(p.poll() is None for p, _ in workers), [log.read_text() for _, log in workers]
        assert time.monotonic() < deadline, f"no {path.name} after {timeout:g} s"
        time.sleep(0.05)


@pytest.mark.slow
def test_two_workers_train_one_run_survive_losing_one_and_resume(records, tmp_path):
    """Two workers train one run on a dataset to convert: the chief converts it into the model
    dir while the other waits, then uses its records. Worker 1 is killed (SIGKILL) after the
    first checkpoint: the chief stops within a bounded time and says what happened and what to
    do. The same two commands again (given ODAPI_WORKERS, the compose way) resume from the
    chief's last checkpoint and both reach the final step in lockstep (the same losses: one
    model, its batch split between them); only the chief (worker 0) writes the run's files,
    and nothing of the other is left; the manifest records the cluster."""
    dataset = records.parent / "data" / "voc"  # what the shared records were converted from
    model_dir = tmp_path / "model"
    workers = two_workers(dataset, (model_dir, model_dir), 9, tmp_path)
    wait_for(model_dir / "ckpt-3.index", workers)
    workers[1][0].kill()
    killed = time.monotonic()
    chief, other = ended(workers, timeout=300)
    print(f"the chief ended {time.monotonic() - killed:.0f} s after worker 1 was killed")
    assert f"converting {dataset} to {model_dir / 'records'}" in chief, chief[-3000:]
    assert f"using the records converted earlier from {dataset}" in other, other[-3000:]
    assert f"converting {dataset}" not in other
    assert [p.returncode for p, _ in workers] == [1, -9], chief[-3000:]
    assert "error: worker 0 lost contact with worker 1 (127.0.0.1:" in chief, chief[-3000:]
    assert "start them all again with the same commands" in chief and "Traceback" not in chief
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "lost contact with worker 1" in manifest["error"]
    latest = checkpoint_step(latest_checkpoint(model_dir))  # what a resume starts from
    assert latest in (3, 6)

    outputs = ended(two_workers(dataset, (model_dir, model_dir), 9, tmp_path, style="odapi"))
    finals = []
    for output in outputs:
        assert f"from step {latest}" in output and "train 9/9" in output, output[-3000:]
        finals.append([line for line in output.splitlines() if line.startswith("train 9/9")][-1])
    assert finals[0].split("|")[1] == finals[1].split("|")[1], finals  # the same losses
    assert "report.html" in outputs[0] and "report.html" not in outputs[1]  # one writes it
    assert sorted(p.name for p in model_dir.iterdir() if not p.name.startswith("ckpt-")) == [
        "checkpoint", "label_map.pbtxt", "manifest.json", "params.yaml", "records",
        "report.html", "train"]
    assert (model_dir / "ckpt-9.index").exists()
    assert not [p for p in model_dir.rglob("*") if "temp" in p.name]  # no save cut short
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert [(s["start_step"], s["end_step"]) for s in manifest["sessions"]][-1] == (latest, 9)
    cluster = manifest["sessions"][-1]["cluster"]
    assert len(cluster["workers"]) == 2 and cluster["this"] == "worker 0"
    assert cluster["global_batch_size"] == 4 and cluster["batch_per_replica"] == 2
    # worker 1 saved its copies of the checkpoints in a temporary folder (Model Garden's
    # way: saving reads variables, which every worker must join), removed when it ended
    assert not list((tmp_path / "tmp-1-1").glob("*/ckpt-*")), \
        list((tmp_path / "tmp-1-1").rglob("*"))

    # a worker that does not see the chief's model dir (no shared storage): both stop
    # before step one, each saying what each saw; given records, at the checkpoints
    elsewhere = tmp_path / "not-shared"
    workers = two_workers(dataset, (model_dir, elsewhere), 9, tmp_path)
    chief, other = ended(workers)
    assert [p.returncode for p, _ in workers] == [1, 1], [chief, other]
    assert "error: worker 1 (127.0.0.1:" in chief and ") could not prepare the records: its " \
        "own output says why; mend that, then start every worker again" in chief, chief[-3000:]
    assert f"error: {elsewhere / 'records'}: no complete conversion of {dataset} with these " \
        "options to use here, and this process only reads the one the chief worker makes" \
        in other, other[-3000:]
    assert not elsewhere.exists()
    workers = two_workers(records, (model_dir, elsewhere), 9, tmp_path)
    outputs = ended(workers)
    assert [p.returncode for p, _ in workers] == [1, 1], outputs
    for output in outputs:
        assert "the workers see different checkpoints in the model dir (worker 0 " \
            "(127.0.0.1:" in output and "step 9; worker 1 (127.0.0.1:" in output, output[-3000:]
        assert "no checkpoint)" in output and "train 1/" not in output
    assert json.loads((model_dir / "manifest.json").read_text()) == manifest


@pytest.mark.slow
def test_a_worker_alone_gives_up_after_the_join_timeout_and_refusals_come_first(records,
                                                                                tmp_path):
    """A worker whose cluster never forms ends after ODAPI_CLUSTER_TIMEOUT with an error
    naming the cluster (TensorFlow alone would wait forever); what several workers cannot
    do (--eval-every) is refused at once, before the wait; a second worker with the same
    index is refused as such."""
    hosts = [f"127.0.0.1:{port}" for port in free_ports(2)]
    env = {**os.environ, "ODAPI_CLUSTER_TIMEOUT": "5", "TF_CONFIG": json.dumps(
        {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": 0}})}
    command = odapi_command("train", "--config", "demo", "--data", records, "--steps", "3",
                            *TINY)
    alone = subprocess.Popen([*command, "--model-dir", tmp_path / "alone"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with socket.socket() as taken:  # as by a worker given the same index: 1, here
        taken.bind(("127.0.0.1", int(hosts[1].split(":")[1])))
        taken.listen()
        twin = subprocess.run([*command, "--model-dir", tmp_path / "twin"], env={
            **env, "TF_CONFIG": json.dumps({"cluster": {"worker": hosts},
                                            "task": {"type": "worker", "index": 1}})},
            capture_output=True, text=True, timeout=300)
    refused = subprocess.run([*command, "--model-dir", tmp_path / "refused", "--eval-every",
                              "3"], env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: --eval-every is not supported with several workers (TF_CONFIG): every worker "
        "must take every step together; evaluate beside training with `odapi eval --follow` "
        "instead")
    out, err = alone.communicate(timeout=300)
    assert alone.returncode != 0
    assert f"error: worker 0 waited 5 s for the other workers of its TF_CONFIG cluster " \
        f"({hosts[0]}, {hosts[1]}), and not all of them joined" in err, err
    assert not (tmp_path / "alone").exists()  # nothing written
    assert twin.returncode == 1
    assert f"error: worker 1 cannot listen on {hosts[1]}: another process on this machine " \
        "already does, most likely a worker started with the same index" in twin.stderr, \
        twin.stderr


@pytest.mark.parametrize("workers, index, message", [
    ("a,b:2223,a:2222", "1", "ODAPI_WORKERS names a worker twice ('a,b:2223,a:2222')"),
    ("a,b", "2", "ODAPI_WORKER_INDEX must say which of the 2 workers in ODAPI_WORKERS this "
                 "one is, 0 to 1 (0, the first, is the chief), not '2'"),
    ("a,b", "", "ODAPI_WORKER_INDEX must say which of the 2 workers"),
    ("a,b:x", "0", "ODAPI_WORKERS: 'b:x' is not a worker's host[:port] (port 1-65535; 2222 "
                   "when left out)"),
    ("", "1", "ODAPI_WORKER_INDEX is 1 but ODAPI_WORKERS, the list of workers, is not set"),
    ("a,b", "0", "both TF_CONFIG and ODAPI_WORKERS name a cluster: set one of them"),
])
def test_cluster_settings_that_do_not_add_up_are_refused(records, tmp_path, monkeypatch,
                                                         workers, index, message):
    """ODAPI_WORKERS and ODAPI_WORKER_INDEX (the compose stack's cluster) checked before
    anything else: a worker twice, an index outside the list or without one, a port that is
    not one, TF_CONFIG given as well."""
    monkeypatch.setenv("ODAPI_WORKERS", workers)
    monkeypatch.setenv("ODAPI_WORKER_INDEX", index)
    if message.startswith("both"):
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:1"]}}))
    code, out, err = run_odapi("train", "--config", "demo", "--data", records, "--model-dir",
                               tmp_path / "model", "--steps", "3", *TINY)
    assert code == 1 and f"error: {message}" in err, err
    assert not (tmp_path / "model").exists()
