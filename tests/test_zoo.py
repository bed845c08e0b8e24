"""Published checkpoints by name, downloaded over real HTTP from a loopback server.

The server holds a tarball laid out like Model Garden's (`ckpt-N.index` and its data file at the
top), made from a short odapi run of the same architecture, under the publisher's path; tests
point ODAPI_CHECKPOINT_MIRROR at it. It also misbehaves on request: a file cut short, a stall
mid-file, content that changed since the first download; and sometimes it is not there at all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from odapi import zoo

from conftest import FAST, Server, odapi_command, run_odapi

NAME = "spinenet49mobile-coco"
URL_PATH = "/tf_model_garden/vision/retinanet/spinenet49mobile.tar.gz"  # as published


@pytest.fixture
def server(published):
    running = Server({URL_PATH: published})
    yield running
    running.close()


@pytest.fixture
def cache(tmp_path, monkeypatch, server) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("ODAPI_CACHE", str(folder))
    monkeypatch.setenv("ODAPI_CHECKPOINT_MIRROR", server.url())
    return folder


def nothing_looks_complete(cache: Path) -> bool:
    """No unpacked checkpoint, no downloaded file, no record: only hidden leftovers at most."""
    return not (cache / NAME).exists() and not list((cache / "downloads").glob("*.tar.gz")) \
        and not (cache / "known.json").exists()


def test_download_list_verify(odapi, cache, server, published):
    result = odapi("checkpoints", "download", NAME)
    assert result.code == 0, result.text
    assert f"downloading {server.url()}{URL_PATH}" in result.err
    prefix = result.out.strip().split(": ", 1)[1]
    assert prefix == str(cache / NAME / "ckpt-2") and Path(prefix + ".index").exists()
    assert (cache / "downloads" / "spinenet49mobile.tar.gz").read_bytes() == published
    known = json.loads((cache / "known.json").read_text())
    assert known[zoo.CHECKPOINTS[NAME].urls[0]]["sha256"] == zoo.sha256_of(
        cache / "downloads" / "spinenet49mobile.tar.gz")

    listed = odapi("checkpoints", "list")
    (row,) = [line for line in listed.out.splitlines() if line.startswith(NAME)]
    assert "cached" in row and f"{len(published) / 1e6:.0f} MB" in row
    assert odapi("checkpoints", "verify").out.strip() == f"{NAME}: ok"

    again = odapi("checkpoints", "download", NAME)  # cached: no request
    assert again.code == 0 and server.requests == [URL_PATH]

    data = next((cache / NAME).glob("ckpt-2.data-*"))
    data.write_bytes(data.read_bytes()[:-1] + b"\0")
    damaged = odapi("checkpoints", "verify")
    assert damaged.code == 1
    assert damaged.out.startswith(f"{NAME}: damaged: {data.name} changed since it was unpacked")


def test_no_server_names_the_url_and_the_folder(odapi, cache, server):
    server.close()
    result = odapi("checkpoints", "download", NAME)
    assert result.code == 1
    assert f"cannot download {server.url()}{URL_PATH} (" in result.err
    assert f"put it in {cache / 'downloads'}/" in result.err
    assert nothing_looks_complete(cache)


def test_a_file_put_in_downloads_by_hand_is_used_offline(odapi, cache, server, published):
    server.close()
    (cache / "downloads").mkdir(parents=True)
    (cache / "downloads" / "spinenet49mobile.tar.gz").write_bytes(published)
    result = odapi("checkpoints", "download", NAME)
    assert result.code == 0, result.text
    assert (cache / NAME / "ckpt-2.index").exists()


@pytest.mark.parametrize("mode, reason", [
    ("truncated", "the connection ended after"),
    ("stall", "timed out"),
])
def test_a_download_cut_short_leaves_nothing_complete(odapi, cache, server, monkeypatch, mode,
                                                      reason):
    monkeypatch.setattr(zoo, "TIMEOUT", 2.0)
    server.mode = mode
    result = odapi("checkpoints", "download", NAME)
    assert result.code == 1
    assert reason in result.err, result.err
    assert nothing_looks_complete(cache)
    server.mode = "ok"  # the next try succeeds
    assert odapi("checkpoints", "download", NAME).code == 0


def test_a_file_that_changed_since_the_first_download_is_refused(odapi, cache, server,
                                                                 published):
    assert odapi("checkpoints", "download", NAME).code == 0
    shutil.rmtree(cache / NAME)
    (cache / "downloads" / "spinenet49mobile.tar.gz").unlink()
    server.files[URL_PATH] = published[:-10] + b"0123456789"  # same size, other bytes
    result = odapi("checkpoints", "download", NAME)
    assert result.code == 1
    assert "is not the file it should be" in result.err
    assert "recorded at its first download" in result.err
    assert not (cache / NAME).exists()
    assert not (cache / "downloads" / "spinenet49mobile.tar.gz").exists()


def test_a_download_that_is_no_checkpoint_is_not_kept(odapi, cache, server, published):
    """A complete download that does not unpack is removed and records no digest: the right
    file, served next, is taken."""
    server.files[URL_PATH] = b"this is not a tar.gz archive"
    result = odapi("checkpoints", "download", NAME)
    assert result.code == 1
    assert "cannot unpack spinenet49mobile.tar.gz" in result.err
    assert "it was removed: run again to download it anew" in result.err
    assert nothing_looks_complete(cache)
    server.files[URL_PATH] = published
    assert odapi("checkpoints", "download", NAME).code == 0


def test_a_bad_mirror_setting_is_a_clear_error(odapi, cache, monkeypatch):
    monkeypatch.setenv("ODAPI_CHECKPOINT_MIRROR", "mirror.example.com")  # no scheme
    result = odapi("checkpoints", "download", NAME)
    assert result.code == 1
    assert result.err.strip() == ("error: ODAPI_CHECKPOINT_MIRROR must be a URL such as "
                                  "https://mirror.example.com, not 'mirror.example.com'")
    assert nothing_looks_complete(cache)


READ_ONLY = """
set -e
mount --bind "$1" "$1"
mount -o remount,ro,bind "$1"
shift
exec "$@"
"""


def run_on_read_only(cache: Path, *args) -> subprocess.CompletedProcess:
    """`odapi ARGS` with `cache` mounted read-only (a private mount namespace: needs root)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a read-only mount needs root and unshare")
    return subprocess.run(["unshare", "--mount", "sh", "-c", READ_ONLY, "sh", str(cache),
                           *odapi_command(*args)],
                          capture_output=True, text=True, timeout=600)


def test_a_read_only_cache(odapi, cache, server):
    cache.mkdir()
    empty = run_on_read_only(cache, "checkpoints", "download", NAME)
    assert empty.returncode == 1
    assert "is not in the checkpoint cache, and the cache is not writable" in empty.stderr
    assert server.requests == []

    assert odapi("checkpoints", "download", NAME).code == 0
    filled = run_on_read_only(cache, "checkpoints", "download", NAME)
    assert filled.returncode == 0, filled.stderr
    assert filled.stdout.strip() == f"{NAME}: {cache / NAME / 'ckpt-2'}"


@pytest.mark.slow
def test_coco_fine_tunes_a_real_dataset_by_default(cache, server, records, tmp_path):
    """No --config on a real dataset: retinanet_mobile (no GPU here) from its COCO checkpoint,
    said at the start, downloaded once; the learning-rate schedule follows --steps."""
    model_dir = tmp_path / "model"
    code, out, err = run_odapi("train", "--data", records, "--model-dir", model_dir,
                               "--steps", "4", *FAST)
    assert code == 0, err
    assert "no --config: training the `retinanet_mobile` preset (no GPU here" in err
    assert "fine-tuned from coco (its COCO checkpoint), for 4 steps" in err
    assert f"downloading {server.url()}{URL_PATH}" in err
    assert f"fine-tuning from {cache / NAME / 'ckpt-2'}: restored backbone" in err
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["init"]["checkpoint"] == str(cache / NAME / "ckpt-2")
    assert manifest["config"]["length"] == {"steps": 4, "epochs": 0.44, "from": "--steps"}

    server.close()  # the same command again: it resumes, and needs no checkpoint to start from
    # (finished: nothing to train; resumed training is test_train's, this is about the download)
    code, out, err = run_odapi("train", "--data", records, "--model-dir", model_dir,
                               "--steps", "4", *FAST)
    assert code == 0, err
    assert f"resuming {model_dir} from step 4: trained to its last step (4) already; " \
        "nothing to do" in err and "downloading" not in err
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    assert [(s["start_step"], s["end_step"], s["status"]) for s in manifest["sessions"]] == \
        [(0, 4, "finished"), (4, 4, "finished")]
    schedule = manifest["config"]["params"]["trainer"]["optimizer_config"]
    assert schedule["learning_rate"]["cosine"]["decay_steps"] == 4  # 20000 in the preset
    assert schedule["warmup"]["linear"]["warmup_steps"] == 1  # 1000 in the preset
