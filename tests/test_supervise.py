"""`--restart-on-crash`: a crash is run again; an error to fix is said once and ends the
command; a stop signal is passed on and nothing is restarted.

What the compose services run as PID 1. The crashes are real: the child odapi process is
killed with SIGKILL, as the kernel's OOM killer does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from odapi.supervise import supervise

from conftest import odapi_command, odapi_running


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry))
    return found


def wait_for(condition, timeout: float = 300, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_an_error_to_fix_is_said_once_and_ends_it(tmp_path):
    (tmp_path / "data").mkdir()
    result = subprocess.run(
        odapi_command("train", "--restart-on-crash", "--config", "demo",
                      "--data", tmp_path / "data", "--model-dir", tmp_path / "model"),
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.count("no dataset here") == 1, result.stderr
    assert "crashed" not in result.stderr


def test_a_crash_is_run_again_and_a_stop_is_passed_on(tmp_path):
    """The follower killed with SIGKILL starts again (training's resume after such a restart
    is drilled with the compose stack, in test_docker.py); SIGTERM to the supervisor reaches
    the running child, and nothing restarts after it."""
    with odapi_running("eval", "--restart-on-crash", "--model-dir", tmp_path / "model",
                       "--follow", "--poll", "1") as supervisor:
        assert "waiting for training to start" in supervisor.stdout.readline()
        (first,) = children(supervisor.pid)
        os.kill(first, signal.SIGKILL)
        assert "waiting for training to start" in supervisor.stdout.readline()  # again
        (second,) = children(supervisor.pid)
        assert second != first
        supervisor.send_signal(signal.SIGTERM)
        out, err = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 128 + signal.SIGTERM
    assert err.count("odapi eval crashed: killed by SIGKILL (the kernel's OOM killer") == 1
    assert "Starting it again in 2 s (crash 1 in a row; it gives up after 5)" in err
    assert not Path(f"/proc/{second}").exists()


def killing(tmp_path: Path, count: int) -> tuple[threading.Thread, list[int]]:
    """A thread that kills (SIGKILL) this process's children running on `tmp_path`, each as
    it starts, `count` of them; the pids it killed."""
    me, killed = os.getpid(), []

    def killer() -> None:
        while len(killed) < count:
            for child in children(me):  # the supervised follower of this test's folder
                if child not in killed and str(tmp_path).encode() in \
                        Path(f"/proc/{child}/cmdline").read_bytes():
                    os.kill(child, signal.SIGKILL)
                    killed.append(child)
            time.sleep(0.1)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    return thread, killed


def test_gives_up_after_crashes_in_a_row(tmp_path):
    """Each run killed soon after it starts: after `crash_limit` in a row, the last signal's
    status, and a line that says so."""
    said = []
    thread, killed = killing(tmp_path, 2)
    code = supervise(["eval", "--model-dir", str(tmp_path), "--follow", "--poll", "1"],
                     said.append, crash_limit=2)
    thread.join(timeout=5)
    assert code == 128 + signal.SIGKILL
    assert len(killed) == 2
    assert said[0].startswith("odapi eval crashed: killed by SIGKILL")
    assert said[-1].startswith("odapi eval crashed 2 times in a row (last: SIGKILL); giving up")


def test_one_of_several_workers_is_not_started_again_alone(tmp_path, monkeypatch):
    """Restarted alone, a worker would wait for the others, which its crash has stopped."""
    monkeypatch.setenv("ODAPI_WORKERS", "127.0.0.1:2222,127.0.0.1:2223")
    monkeypatch.setenv("ODAPI_WORKER_INDEX", "1")
    said = []
    thread, killed = killing(tmp_path, 1)
    code = supervise(["eval", "--model-dir", str(tmp_path), "--follow", "--poll", "1"],
                     said.append)
    thread.join(timeout=5)
    assert code == 128 + signal.SIGKILL and len(killed) == 1
    assert said == ["odapi eval crashed: killed by SIGKILL (the kernel's OOM killer sends it "
                    "when memory runs out). Not started again: it is one of several workers, "
                    "which stop together; start every worker again to resume"]
