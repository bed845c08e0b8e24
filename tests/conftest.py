"""Shared helpers: run the CLI the way a user does, read what it wrote, prove inputs untouched;
records to train on, a published-style checkpoint and a loopback HTTP server that serves it."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.server
import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from odapi.cli import main  # noqa: E402
from odapi.data.examples import DetectionExample, from_tf_example  # noqa: E402
from odapi.data.records import read_records  # noqa: E402
from odapi.data.synthetic import FORMATS, write_demo_dataset  # noqa: E402


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def __iter__(self):  # code, out, err = run_odapi(...)
        return iter((self.code, self.out, self.err))


# The suite runs the CLI two ways, and only these two:
# - in this process, `run_odapi` (or the `odapi` fixture, the same function): the real entry
#   point, `main()`, its output captured; quick, and what most tests need;
# - as a process of its own, `odapi_command` (the command line, for subprocess.run or Popen with
#   the test's own env, pipes, terminal, timeout) or `odapi_running` (that process for a block,
#   killed at its end): where a test must signal, kill or supervise it, give it an environment or
#   a terminal of its own, or run several at once.
# Two tests go around them on purpose: test_cli runs the installed `odapi` script (to test that
# entry point), and test_distributed_docs only parses a command line (`build_parser`).
def run_odapi(*args: str | Path | int) -> CliResult:
    """`odapi ARGS...` in this process through the real entry point, its output captured (no
    terminal: progress comes as lines)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse usage errors
            code = e.code if isinstance(e.code, int) else 1
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture(autouse=True)
def alone(monkeypatch):
    """Every test trains alone unless it says otherwise: no cluster exported in a developer's
    shell leaks into it."""
    for name in ("TF_CONFIG", "ODAPI_WORKERS", "ODAPI_WORKER_INDEX"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def odapi():
    """`run_odapi`, for tests that take it as a fixture."""
    return run_odapi


def odapi_command(*args: str | Path | int) -> list[str]:
    """The command line of `odapi ARGS...` as a process of its own: `python -m odapi` with this
    interpreter, so the child runs the odapi this process imports."""
    return [sys.executable, "-m", "odapi", *map(str, args)]


@contextlib.contextmanager
def odapi_running(*args: str | Path | int) -> Iterator[subprocess.Popen]:
    """`odapi ARGS...` as a separate process for the block, stdout and stderr piped (text);
    killed when the block ends, so a failing test leaves no trainer, follower or server running
    into the next tests."""
    process = subprocess.Popen(odapi_command(*args),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        process.kill()  # a no-op once it has exited
        process.wait()


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under root with its hash and mtime, to show a run modified nothing."""
    result = {}
    for path in sorted(Path(root).rglob("*")):
        if path.is_file():
            stat = path.stat()
            result[str(path)] = (hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_mtime_ns)
    return result


def read_split(out: Path, split: str) -> list[DetectionExample]:
    paths = sorted(Path(out).glob(f"{split}-*-of-*.tfrecord"))
    return [from_tf_example(r) for r in read_records(paths)]


def read_all(out: Path) -> list[DetectionExample]:
    paths = sorted(Path(out).glob("*-*-of-*.tfrecord"))
    return [from_tf_example(r) for r in read_records(paths)]


def looks_complete(out: Path) -> bool:
    """Whether `out` holds anything a user or a training job could take for a conversion."""
    out = Path(out)
    if not out.exists():
        return False
    names = ("report.json", "report.txt", "label_map.pbtxt")
    return any((out / n).exists() for n in names) or any(out.glob("*.tfrecord"))


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory) -> dict[str, Path]:
    """A small synthetic dataset annotated in every format odapi reads."""
    root = tmp_path_factory.mktemp("demo")
    return write_demo_dataset(root / "data", count=24, seed=3, formats=FORMATS)


# `--set` overrides that make a RetinaNet preset train in seconds, its own backbone kept: for
# tests where the preset's model matters (fine-tuning from its published checkpoint, the
# pipeline.config translations). One convolution in the head instead of four: a fifth less to
# trace and run (measured on an earlier machine: 52 s of CPU for a 3-step run with an
# evaluation, 42 s with it).
FAST = ["--set", "task.model.input_size=[128,128,3]",
        "--set", "task.model.head.num_convs=1",
        "--set", "task.train_data.global_batch_size=4",
        "--set", "task.validation_data.global_batch_size=4",
        "--set", "trainer.steps_per_loop=3",
        "--set", "trainer.checkpoint_interval=3",
        "--set", "trainer.summary_interval=3"]
# FAST with a ResNet-10 and a feature pyramid in place of the demo preset's SpineNet-Mobile, for
# the tests of what odapi does around a model (resume, evaluate, patience, export, drills,
# the compose stack), which any real Model Garden detector serves: far fewer ops to build,
# trace and run the first time (the same 3-step run, side by side on one machine: 70 s of
# CPU with FAST, 42 s with TINY).
RESNET10 = ["--set", "task.model.backbone.type=resnet",
            "--set", "task.model.backbone.resnet.model_id=10",
            "--set", "task.model.decoder.type=fpn"]
TINY = [*FAST, *RESNET10]


def shared_folder(tmp_path_factory) -> Path:
    """The session's temporary folder that every pytest-xdist worker sees."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the folder every worker's temporary folder sits in
    return root


def once_per_session(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder `build` fills, built once per test session however many pytest-xdist workers
    ask for it (xdist's recipe for session fixtures): the first to ask builds it under a file
    lock, the others wait for it and read it. A build that failed is tried again by the next."""
    root = shared_folder(tmp_path_factory)
    folder = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (folder / ".complete").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".complete").touch()
    return folder


@pytest.fixture(scope="session")
def records(tmp_path_factory) -> Path:
    """Records to train on: 48 synthetic images, 36 train and 12 val."""
    def build(root: Path) -> None:
        write_demo_dataset(root / "data", count=48, seed=0, formats=("voc",))
        assert run_odapi("convert", root / "data" / "voc", "--out", root / "records",
                         "--split", "train=0.75,val=0.25", "-q").code == 0

    return once_per_session(tmp_path_factory, "training-records", build) / "records"


@dataclass
class TrainedRun:
    model_dir: Path
    output: str  # what `odapi train` printed, stdout and stderr


@pytest.fixture(scope="session")
def trained_run(records, tmp_path_factory) -> TrainedRun:
    """The suite's one short run: the demo preset made TINY, for 6 steps on `records`, evaluated
    at steps 3 and 6 (so `best` had a choice). Read it; to change it, take a `fresh_copy`."""
    def build(root: Path) -> None:
        result = run_odapi("train", "--config", "demo", "--data", records, "--model-dir",
                           root / "model", "--steps", "6", "--eval-every", "3", *TINY)
        assert result.code == 0, result.text
        (root / "output.txt").write_text(result.text)

    root = once_per_session(tmp_path_factory, "trained", build)
    return TrainedRun(root / "model", (root / "output.txt").read_text())


def fresh_copy(model_dir: Path, into: Path) -> Path:
    """A copy of a shared run for a test that changes it (resumes, evaluates again, ...);
    the copy's eval/metrics.json names its own best/ checkpoint (it holds absolute paths; the
    checkpoint state files hold relative ones)."""
    copy = Path(into) / "model"
    shutil.copytree(model_dir, copy)
    metrics = copy / "eval" / "metrics.json"
    if metrics.exists():
        metrics.write_text(metrics.read_text().replace(str(model_dir), str(copy)))
    return copy


# A run long enough to learn: the demo preset at 128x128 with TINY's model (RESNET10, one
# convolution in the head), batch 16, 100 steps on `records`, evaluated once at the end. With
# its learning rate doubled to 0.006 it reached AP50 0.80, 0.73, 0.72 and 0.81 on the 12
# validation images (step 80: 0.60-0.74; step 40: 0.20-0.30; step 120: 0.80-0.85, 1 min
# more); at the preset's 0.003, 0.68 and 0.74 at step 120 (test_drills has the rest).
# `--steps` sets the length; it would also stretch the preset's 300-step schedule, so the
# schedule keys given with --set keep it as measured.
# (No test exports SpineNet since: `make bench` does, bench/export_formats.py with the demo
# model; the int8 trouble its squeeze-excitation gave has its own test, DeadGate's.)
LEARNED_STEPS = 100
LEARN = ["--config", "demo", "--steps", str(LEARNED_STEPS), "-q", *RESNET10,
         "--set", "task.model.head.num_convs=1",
         "--set", "task.model.input_size=[128,128,3]",
         "--set", "task.train_data.global_batch_size=16",
         "--set", "task.train_data.seed=7",  # the same data order in every run and restart
         "--set", "trainer.steps_per_loop=10",
         "--set", "trainer.checkpoint_interval=10",
         "--set", "trainer.summary_interval=10",
         "--set", "trainer.optimizer_config.learning_rate.cosine.initial_learning_rate=0.006",
         "--set", "trainer.optimizer_config.learning_rate.cosine.decay_steps=300",
         "--set", "trainer.optimizer_config.warmup.linear.warmup_steps=30",
         "--eval-every", str(LEARNED_STEPS)]  # one evaluation, at the end, by the same command


@pytest.fixture(scope="session")
def learned_run(records, tmp_path_factory) -> Path:
    """`odapi train --data RECORDS LEARN...` run once, uninterrupted, in its own process: the
    SIGKILL drill's reference and the model export and predict are checked with. Read it; to
    change it, take a `fresh_copy`."""
    def build(root: Path) -> None:
        result = subprocess.run(odapi_command("train", "--data", records,
                                              "--model-dir", root / "model", *LEARN),
                                capture_output=True, text=True, timeout=1800, check=False)
        assert result.returncode == 0, result.stdout + result.stderr

    return once_per_session(tmp_path_factory, "learned", build) / "model"


# The shared runs that train a model: every test that takes one is slow (make test-fast
# leaves it out), wherever it is declared.
TRAINED = {"trained_run", "learned_run", "published"}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if TRAINED & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# The test files that take longest, longest first (measured with --durations=0): started first,
# so that no worker is left finishing one alone while the other has nothing to do. The rest
# follow in collection order. (xdist would start the files with the most tests first: the fuzz
# cases.)
LONGEST_FIRST = ["tests/test_drills.py", "tests/test_train.py", "tests/test_docker.py",
                 "tests/test_export_predict.py", "tests/test_multiworker.py", "tests/test_zoo.py",
                 "tests/test_pipeline_config.py", "tests/test_layouts.py"]


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: unknown without it
def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile, LONGEST_FIRST, a file at a time to a worker."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class LongestFilesFirst(LoadFileScheduling):
        def _assign_work_unit(self, node) -> None:
            rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
            for path in sorted(self.workqueue, key=lambda p: rank.get(p, len(rank))):
                self.workqueue.move_to_end(path)
            super()._assign_work_unit(node)

        def _reschedule(self, node) -> None:
            # xdist hands a worker its next file while two of its tests are still to run;
            # behind a 10-minute test, that file would wait while the other worker idles.
            # One is the least: a worker starts its last test only once it knows the next.
            if self.workqueue and self._pending_of(self.assigned_work[node]) > 1:
                return
            super()._reschedule(node)

    return LongestFilesFirst(config, log)


@pytest.fixture(scope="session")
def published(records, tmp_path_factory) -> bytes:
    """spinenet49mobile.tar.gz as Model Garden lays it out: the retinanet_mobile model's built
    parts (its backbone; the head is built by a first call) and a global step, as ckpt-2,
    untrained: fine-tuning restores the backbone, and no test depends on the values (a real
    training here would take a minute)."""
    def build(root: Path) -> None:
        import tensorflow as tf
        from official.core import task_factory

        from odapi.engine.config import resolve

        run = resolve("retinanet_mobile", data=records, sets=FAST[1::2])
        model = task_factory.get_task(run.params.task).build_model()
        step = tf.Variable(2, dtype=tf.int64)
        tf.train.Checkpoint(global_step=step, **model.checkpoint_items).write(
            str(root / "ckpt-2"))
        with tarfile.open(root / "spinenet49mobile.tar.gz", mode="w:gz") as archive:
            for path in sorted(root.glob("ckpt-2.*")):
                archive.add(path, arcname=path.name)

    return (once_per_session(tmp_path_factory, "published", build)
            / "spinenet49mobile.tar.gz").read_bytes()


# ------------------------------------------------------------------ the image, built early

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "odapi:cpu"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def image_build_command() -> list[str]:
    """`docker buildx build` of odapi:cpu from this checkout (the Docker SDK cannot use
    BuildKit's secrets and cache mounts)."""
    base = os.environ.get("ODAPI_BASE_IMAGE", "debian:bookworm-slim")
    command = ["docker", "buildx", "build", "-f", "docker/Dockerfile", "--target", "cpu",
               "-t", IMAGE, "--build-arg", f"BASE_IMAGE={base}"]
    if CA_BUNDLE.exists():
        command += ["--secret", f"id=extra_ca,src={CA_BUNDLE}"]
    return [*command, str(ROOT)]


@dataclass
class ImageBuild:
    """The image build, one per test session, run in the background: its output and exit
    status land in `folder`."""

    folder: Path

    def start(self) -> None:
        """Start the build unless a worker already has."""
        with open(self.folder.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if self.folder.exists():
                return
            self.folder.mkdir()
            script = '"$@" >"$0/output.txt" 2>&1; echo $? >"$0/status.part"; ' \
                     'mv "$0/status.part" "$0/status"'
            # in the session's process group: Ctrl-C stops the build with the tests
            subprocess.Popen(["sh", "-c", script, str(self.folder), *image_build_command()],
                             cwd=ROOT)

    def result(self, timeout: float = 3600) -> tuple[int, str]:
        """The build's exit status and output, once it has ended."""
        self.start()
        deadline = time.monotonic() + timeout
        while not (self.folder / "status").exists():
            assert time.monotonic() < deadline, f"the image build still runs after {timeout} s"
            time.sleep(1)
        status = int((self.folder / "status").read_text())
        return status, (self.folder / "output.txt").read_text()


@pytest.fixture(scope="session", autouse=True)
def image_build(request, tmp_path_factory) -> ImageBuild:
    """The image build, started with a worker's first test where the session has a docker
    test to run: the build mostly downloads and writes files (about 200 s on a fresh
    machine), which needs no worker to wait for it while the first tests train."""
    build = ImageBuild(shared_folder(tmp_path_factory) / "image-build")
    wanted = any(item.get_closest_marker("docker") for item in request.session.items)
    if wanted and shutil.which("docker"):
        build.start()
    return build


class Server:
    """A loopback HTTP server for the mirror; `mode` says how it misbehaves."""

    def __init__(self, files: dict[str, bytes], host: str = "127.0.0.1"):
        self.files, self.mode, self.requests = dict(files), "ok", []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the standard library's name
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.mode == "truncated":  # promise it all, send half, hang up
                    self.wfile.write(body[:len(body) // 2])
                elif server.mode == "stall":  # send half, then nothing, connection open
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    time.sleep(30)
                else:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
