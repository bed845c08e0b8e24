"""Progress in logs: whole lines when stderr is not a terminal, a bar when it is.

Through a real pipe (what `docker compose logs`, CI and `| tee` read) conversion and training
print lines; the heartbeat prints one while nothing advances; the bar stays on a terminal.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import termios
import time

from odapi.progress import LineProgress, progress_bar

from conftest import odapi_command

LINE = re.compile(r"^convert (\d+)/(\d+) \(\d+%\) imgs( \| [\d.]+ img/s(, ETA \S+)?)?$")


def test_convert_through_a_pipe_prints_lines(demo_dataset, tmp_path):
    result = subprocess.run(odapi_command("convert", demo_dataset["voc"], "--out",
                                          tmp_path / "out"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("convert")]
    assert lines and all(LINE.match(line) for line in lines), result.stderr
    assert lines[-1].startswith("convert 24/24 (100%)")


def test_convert_on_a_terminal_draws_a_bar(demo_dataset, tmp_path):
    """The same command with a terminal as stderr redraws one line with carriage returns."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(odapi_command("convert", demo_dataset["voc"], "--out",
                                             tmp_path / "out"),
                               stderr=terminal, stdout=subprocess.DEVNULL)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    assert process.wait() == 0
    os.close(controller)
    assert b"\r" in shown and b"24/24" in shown
    assert not LINE.match(shown.decode(errors="replace").splitlines()[-1])


def test_lines_at_most_every_min_interval():
    stream = io.StringIO()
    with LineProgress(1000, "train", "step", stream=stream, min_interval=3600) as progress:
        for _ in range(1000):
            progress.update(1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # the first update, and where it ended
    assert lines[0].startswith("train 1/1000 (0%) steps")
    assert lines[1].startswith("train 1000/1000 (100%) steps | ")


def test_heartbeat_while_nothing_advances_reads_the_step():
    """A long training loop calls no update; the heartbeat polls the global step."""
    stream, step = io.StringIO(), [40]
    progress = LineProgress(100, "train", "step", stream=stream, min_interval=3600,
                            max_interval=0.2, poll=lambda: step[0])
    progress.set_postfix({"total_loss": "0.500", "lr": "0.01"})  # before the first beat
    deadline = time.monotonic() + 30
    while "40/100" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    progress.close()
    first = stream.getvalue().splitlines()[0]
    assert first in ("train 40/100 (40%) steps | total_loss 0.500 lr 0.01",
                     "train 40/100 (40%) steps")  # the postfix may come a beat later


def test_training_progress_counts_each_step_once_after_a_heartbeat(capsys):
    """The heartbeat raised the count to the polled step; the loop's end moves it to the
    step it reached, not past it."""
    import tensorflow as tf

    from odapi.engine.progress import ProgressBar

    step = tf.Variable(0, dtype=tf.int64)
    bar = ProgressBar(step, 300)  # captured stderr is no terminal: lines
    bar.bar.min_interval = 0.0
    step.assign(150)
    bar.bar.n = int(bar.bar.poll())  # what a heartbeat does during a loop
    step.assign(200)
    bar({"total_loss": 1.0})  # the loop's end
    bar.close()
    assert bar.bar.n == 200
    assert "train 200/300 (67%) steps | total_loss 1.000" in capsys.readouterr().err


def test_the_last_line_shows_the_losses_when_a_heartbeat_showed_the_final_step_first(capsys):
    """A slow machine: the heartbeat printed the polled final step (no losses yet) moments
    before the loop's end brought them; the log still ends with the step and its losses."""
    import tensorflow as tf

    from odapi.engine.progress import ProgressBar

    step = tf.Variable(0, dtype=tf.int64)
    bar = ProgressBar(step, 3)
    step.assign(3)
    with bar.bar._lock:  # what a heartbeat does: poll, then print
        bar.bar.n = int(bar.bar.poll())
        bar.bar._print(time.monotonic())
    bar({"total_loss": 1.0})  # within min_interval of the heartbeat's line: not printed
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[-2:] == ["train 3/3 (100%) steps",
                          "train 3/3 (100%) steps | total_loss 1.000"], lines


def test_progress_bar_chooses_by_the_stream():
    assert isinstance(progress_bar(10, "x", "img", stream=io.StringIO()), LineProgress)
    disabled = progress_bar(10, "x", "img", stream=io.StringIO(), enabled=False)
    assert not isinstance(disabled, LineProgress)
