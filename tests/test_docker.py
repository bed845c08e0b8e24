"""The image and the compose stack, for real: a Docker engine builds and runs them.

Skipped, with the reason, where no Docker engine answers, unless ODAPI_REQUIRE_DOCKER=1 (CI sets
it, so there a missing engine fails instead). The image is built with `docker buildx`, started
in the background with the session's first tests (conftest's `image_build`); containers and
their results are inspected through the Docker SDK.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from test_layouts import labelimg, tutorial_repo

from odapi.data.synthetic import write_demo_dataset

from conftest import FAST, IMAGE, ROOT, TINY, Server

HOST_UID, HOST_GID = 4321, 4321  # a "host user" that is not root, even when tests run as root
# ODAPI_TRAIN_ARGS, split on spaces by compose; a demo of 40 images (400 by default)
TRAIN_ARGS = " ".join(["--steps", "6", "--demo-images", "40", *TINY])

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="session")
def client():
    docker = pytest.importorskip("docker")
    try:
        engine = docker.from_env()
        engine.ping()
    except Exception as e:  # no socket, no permission, daemon down
        if os.environ.get("ODAPI_REQUIRE_DOCKER") == "1":
            pytest.fail(f"ODAPI_REQUIRE_DOCKER=1 but no Docker engine answers: {e}")
        pytest.skip(f"no Docker engine answers ({e}); these tests need one")
    return engine


@pytest.fixture(scope="session")
def image(client, image_build):
    """odapi:cpu, built from this checkout (conftest starts the build early)."""
    code, output = image_build.result()
    assert code == 0, output[-6000:]
    return client.images.get(IMAGE)


def run(client, *args, **kwargs) -> tuple[int, str]:
    container = client.containers.run(IMAGE, list(args), detach=True, **kwargs)
    try:
        code = container.wait(timeout=600)["StatusCode"]
        return code, container.logs().decode()
    finally:
        container.remove(force=True)


def test_image_runs_doctor_with_compiled_protos_as_a_non_root_user(client, image):
    code, out = run(client, "doctor", "--output", "/model")
    assert code == 0, out
    assert "compiled and importable" in out
    assert "tf-models-official 2.20.0" in out
    config = image.attrs["Config"]
    assert config["Entrypoint"] == ["odapi"]
    assert config["User"] == "odapi"
    code, out = run(client, entrypoint=["id", "-u"])
    assert code == 0 and out.strip() != "0"
    # no PYTHONPATH / LD_LIBRARY_PATH exported by hand; the presets are baked in
    env = dict(e.split("=", 1) for e in config["Env"])
    assert "PYTHONPATH" not in env and "LD_LIBRARY_PATH" not in env
    code, out = run(client, "train", "--help")
    assert "demo" in out and "faster_rcnn_resnet50_fpn" in out


def test_no_build_tools_or_pip_cache_in_the_image(client, image):
    code, out = run(client, entrypoint=["sh", "-c",
                                        "command -v gcc cc make g++; ls /root/.cache 2>&1; "
                                        "du -s /home/odapi/.cache 2>/dev/null; true"],
                    user="0:0")
    assert "gcc" not in out and "make" not in out
    assert "No such file or directory" in out  # /root/.cache does not exist


def test_files_written_to_a_bind_mount_belong_to_the_host_user(client, image, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    os.chown(out_dir, HOST_UID, HOST_GID)
    code, out = run(client, "demo-data", "/out/demo", "--count", "2",
                    user=f"{HOST_UID}:{HOST_GID}",
                    volumes={str(out_dir): {"bind": "/out", "mode": "rw"}})
    assert code == 0, out
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in (out_dir / "demo").rglob("*")}
    assert owners == {(HOST_UID, HOST_GID)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def compose(env: dict, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "compose", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def wait_for_exit(client, project: str, service: str, timeout: float = 1800) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.containers.list(all=True, filters={
            "label": [f"com.docker.compose.project={project}",
                      f"com.docker.compose.service={service}"]})
        if found and found[0].status == "exited":
            return found[0].attrs["State"]["ExitCode"]
        time.sleep(2)
    raise AssertionError(f"{service} did not finish within {timeout}s")


def test_stack_trains_evaluates_and_serves_tensorboard(client, image, tmp_path):
    """`docker compose up` with no dataset: the demo, with train, eval and TensorBoard; in the
    multiworker profile, so two workers (train the chief, and worker) train it together."""
    project = f"odapi-test-{uuid.uuid4().hex[:8]}"
    data, model_dir = tmp_path / "data", tmp_path / "runs" / "model"  # model dir not created
    data.mkdir()
    port = 6006 if _port_free(6006) else free_port()
    env = {**os.environ, "COMPOSE_PROJECT_NAME": project,
           "COMPOSE_FILE": "compose.yaml:compose.cpu.yaml",
           "ODAPI_DATA": str(data), "ODAPI_MODEL_DIR": str(model_dir),
           "ODAPI_UID": str(HOST_UID), "ODAPI_GID": str(HOST_GID),
           "ODAPI_TRAIN_ARGS": TRAIN_ARGS, "ODAPI_EVAL_POLL": "2",
           "ODAPI_TENSORBOARD_PORT": str(port),
           "COMPOSE_PROFILES": "multiworker", "ODAPI_WORKERS": "train,worker"}
    try:
        result = compose(env, "up", "--detach", "--no-build", "train", "worker", "eval",
                         "tensorboard")
        assert result.returncode == 0, result.stderr
        for service in ("train", "worker", "eval"):
            assert wait_for_exit(client, project, service) == 0, \
                compose(env, "logs", service).stdout[-4000:]
        logs = {service: compose(env, "logs", service).stdout for service in ("train", "worker")}
        assert "generating the synthetic demo (40 images)" in logs["train"], \
            logs["train"][-4000:]
        assert "using the synthetic demo records in /model/records" in logs["worker"], \
            logs["worker"][-4000:]
        for output in logs.values():
            assert "train 6/6 (100%) steps" in output, output[-4000:]
        cluster = json.loads((model_dir / "manifest.json").read_text())["sessions"][-1]["cluster"]
        assert cluster["workers"] == ["train:2222", "worker:2222"] and cluster["replicas"] == 2

        assert model_dir.stat().st_uid == HOST_UID  # not root, though Docker created it
        assert (model_dir / "ckpt-6.index").exists()
        assert {(p.stat().st_uid, p.stat().st_gid) for p in model_dir.rglob("*")} == \
            {(HOST_UID, HOST_GID)}
        metrics = json.loads((model_dir / "eval" / "metrics.json").read_text())
        assert metrics["evaluations"][-1]["step"] == 6

        tags = _tensorboard_tags(port)
        assert {"total_loss", "learning_rate"} <= set(tags["train"])
        assert {"AP", "AP50", "ARmax100"} <= set(tags["eval"])
        healthy = client.containers.list(filters={
            "label": [f"com.docker.compose.project={project}",
                      "com.docker.compose.service=tensorboard"]})[0]
        assert _wait_healthy(healthy)

        # the tool services, on the same volumes
        exported = compose(env, "run", "--rm", "--no-deps", "export", "--model-dir", "/model",
                           "--out", "/model/export")
        assert exported.returncode == 0, exported.stdout + exported.stderr
        assert (model_dir / "export" / "saved_model" / "saved_model.pb").exists()
        images = [f"/model/demo-data/images/00000{i}.jpg" for i in range(2)]  # two will do
        predicted = compose(env, "run", "--rm", "--no-deps", "predict", "--model",
                            "/model/export", *images, "--out", "/model/predictions", "-q")
        assert predicted.returncode == 0, predicted.stdout + predicted.stderr
        assert "2 image(s)" in predicted.stdout
        assert "WARNING" not in exported.stderr + predicted.stderr  # TensorFlow's, on loading
        assert (model_dir / "predictions" / "detections.json").exists()
        assert sorted(p.name for p in (model_dir / "predictions" / "images").iterdir()) == \
            ["000000.jpg", "000001.jpg"]
        assert (model_dir / "predictions" / "images").stat().st_uid == HOST_UID
    finally:
        down = compose(env, "down", "--volumes", "--remove-orphans")
    assert down.returncode == 0, down.stderr
    assert client.containers.list(all=True, filters={
        "label": f"com.docker.compose.project={project}"}) == []


def stack_env(tmp_path: Path, data: Path, train_args: str) -> dict:
    """The environment of a compose project of its own, on `data`, with a host model dir."""
    return {**os.environ, "COMPOSE_PROJECT_NAME": f"odapi-test-{uuid.uuid4().hex[:8]}",
            "COMPOSE_FILE": "compose.yaml:compose.cpu.yaml",
            "ODAPI_DATA": str(data), "ODAPI_MODEL_DIR": str(tmp_path / "model"),
            "ODAPI_UID": str(HOST_UID), "ODAPI_GID": str(HOST_GID),
            "ODAPI_TRAIN_ARGS": train_args, "ODAPI_EVAL_POLL": "2",
            "ODAPI_TENSORBOARD_PORT": str(free_port())}


def container_of(client, env: dict, service: str):
    found = client.containers.list(all=True, filters={"label": [
        f"com.docker.compose.project={env['COMPOSE_PROJECT_NAME']}",
        f"com.docker.compose.service={service}"]})
    return found[0] if found else None


KILL_THE_TRAINER = """
import os, signal
for pid in os.listdir("/proc"):
    if pid.isdigit() and open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[1] == "1":
        if b"train" in open(f"/proc/{pid}/cmdline", "rb").read():
            os.kill(int(pid), signal.SIGKILL)
            print("killed", pid)
"""


def test_a_labelimg_dataset_fine_tunes_shows_progress_and_survives_a_crash(client, image,
                                                                         tmp_path, published):
    """`docker compose up train` with only ODAPI_DATA, a LabelImg dataset: it converts (no
    dataset flags), chooses a real preset fine-tuned from its COCO checkpoint, downloaded
    (from a mirror on this host holding the publisher's files) into the checkpoints volume,
    and says so; `docker compose logs train` shows progress lines while it trains; the
    trainer killed with SIGKILL (what the OOM killer does) starts again and resumes; the
    service ends with 0."""
    write_demo_dataset(tmp_path / "source", count=24, seed=1, formats=("voc",))
    data = labelimg(tmp_path / "source", tmp_path / "dataset")
    path = "/tf_model_garden/vision/retinanet/spinenet49mobile.tar.gz"
    mirror = Server({path: published}, host="0.0.0.0")
    env = stack_env(tmp_path, data, " ".join(["--steps", "30", *FAST]))
    env["ODAPI_CHECKPOINT_MIRROR"] = mirror.url("host.docker.internal")
    try:
        assert compose(env, "up", "--detach", "--no-build", "train").returncode == 0
        deadline = time.monotonic() + 900
        while not re.search(r"train \d+/30 \(\d+%\) steps \| total_loss",
                            logs := compose(env, "logs", "train").stdout):
            assert time.monotonic() < deadline, logs[-3000:]
            time.sleep(2)
        train = container_of(client, env, "train")
        train.reload()
        assert train.status == "running", logs[-3000:]  # the line came while it trains
        assert "train 30/30" not in logs and "\r" not in logs
        assert "found in /data/images" in logs  # no --images: LabelImg's layout was found
        assert "no --config: training the `retinanet_mobile` preset (no GPU here" in logs
        assert f"downloading {env['ODAPI_CHECKPOINT_MIRROR']}{path}" in logs
        assert "fine-tuning from /checkpoints/spinenet49mobile-coco/ckpt-2: restored backbone" \
            in logs

        while not list((tmp_path / "model").glob("ckpt-*.index")):  # something to resume
            assert time.monotonic() < deadline
            time.sleep(1)
        code, killed = train.exec_run(["python", "-c", KILL_THE_TRAINER],
                                      user=f"{HOST_UID}:{HOST_GID}")
        assert code == 0 and killed.startswith(b"killed"), killed
        assert wait_for_exit(client, env["COMPOSE_PROJECT_NAME"], "train") == 0
        logs = compose(env, "logs", "train").stdout
        assert logs.count("crashed: killed by SIGKILL") == 1, logs[-3000:]
        assert "resuming /model from step" in logs
        assert "train 30/30 (100%) steps" in logs
        train.reload()
        assert train.attrs["RestartCount"] == 0  # odapi restarted it, not Docker
        assert mirror.requests == [path]  # downloaded once; the resumed run needs no more
        assert (tmp_path / "model" / "ckpt-30.index").exists()
    finally:
        mirror.close()
        compose(env, "down", "--volumes", "--remove-orphans")


def _without_images(source: Path, root: Path) -> Path:
    data = labelimg(source, root)
    shutil.rmtree(data / "images")
    return data


@pytest.mark.parametrize("layout, says", [
    (_without_images, ["error: no images to convert",
                       "image not found: 000000.jpg; looked in /data/annotations"]),
    (tutorial_repo, ["choose one with --format voc or --format tf-csv\n",
                     "(the compose stack takes options in ODAPI_TRAIN_ARGS: set it in .env"]),
], ids=["no usable image", "two formats"])
def test_a_dataset_to_fix_ends_the_stack_once(client, image, tmp_path, layout, says):
    """A dataset the user must fix (no image can be found; two annotation formats to choose
    from): `docker compose up` (train, eval, tensorboard) prints the error once, with where
    the option it asks for goes, and returns; nothing is restarted, and eval and TensorBoard
    never start."""
    write_demo_dataset(tmp_path / "source", count=4, seed=1, formats=("voc", "tf-csv"))
    data = layout(tmp_path / "source", tmp_path / "dataset")
    env = stack_env(tmp_path, data, "")
    try:
        result = compose(env, "up", "--no-build", timeout=900)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output[-3000:]
        assert output.count("error: ") == 1, output[-3000:]
        for line in says:
            assert line in output, output[-3000:]
        train = container_of(client, env, "train")
        assert train.attrs["State"]["ExitCode"] == 1
        assert train.attrs["RestartCount"] == 0
        for service in ("eval", "tensorboard"):
            other = container_of(client, env, service)
            assert other is None or other.attrs["State"]["Status"] == "created", service
    finally:
        compose(env, "down", "--volumes", "--remove-orphans")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _tensorboard_tags(port: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                assert page.status == 200
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/data/plugin/scalars/tags", timeout=5) as answer:
                tags = json.loads(answer.read())
            if "eval" in tags:
                return tags
        except OSError:
            pass
        assert time.monotonic() < deadline, "TensorBoard did not answer on 127.0.0.1"
        time.sleep(2)


def _wait_healthy(container, timeout: float = 180) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        if container.attrs["State"].get("Health", {}).get("Status") == "healthy":
            return True
        time.sleep(2)
    return False
