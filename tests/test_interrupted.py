"""A conversion killed mid-run leaves nothing that looks complete, and the next run succeeds."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import time

from conftest import looks_complete, odapi_command, read_all, snapshot


def wait_until_reading(fifo, process, timeout=180.0) -> int:
    """Block until the converter opens `fifo` as an image, i.e. it is midway through the images.

    Returns the write end, which the caller closes. A FIFO makes the moment exact: no sleeps.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError("the converter never reached the last image")


def test_kill_9_mid_conversion_then_rerun(tmp_path, demo_dataset):
    data = tmp_path / "data"
    shutil.copytree(demo_dataset["tutorial-csv"].parent / "images", data / "images")
    annotations = demo_dataset["tutorial-csv"].read_text()
    # a last image that is a FIFO: reading it blocks until we write, so we kill mid-read
    (data / "annotations.csv").write_text(annotations + "zz-last,10,40,10,40,circle\n")
    fifo = data / "zz-last.jpg"  # where the tutorial CSV looks first
    os.mkfifo(fifo)
    out = tmp_path / "out"
    before = snapshot(data)

    process = subprocess.Popen(
        odapi_command("convert", data / "annotations.csv", "--out", out, "--shards", "2", "-q"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    writer = wait_until_reading(fifo, process)
    try:
        staging = [p for p in out.iterdir() if p.name.startswith(".odapi-partial-")]
        assert len(staging) == 1 and list(staging[0].glob("*.tfrecord"))  # shards being written
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        os.close(writer)
    assert process.returncode == -signal.SIGKILL
    assert not looks_complete(out)  # only the hidden staging folder is left
    assert snapshot(data) == before

    fifo.unlink()  # the user fixes the dataset: a real image this time
    shutil.copyfile(data / "images" / "000000.jpg", fifo)
    result = subprocess.run(
        odapi_command("convert", data / "annotations.csv", "--out", out, "--shards", "2", "-q"),
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # stale staging gone
    assert sorted(p.name for p in out.iterdir()) == [
        "label_map.pbtxt", "report.json", "report.txt",
        "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    assert len(read_all(out)) == 25
