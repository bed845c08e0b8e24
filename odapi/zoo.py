"""Checkpoints by name: the ones Model Garden publishes, fetched once into a local cache.

`--init-checkpoint coco` is the COCO checkpoint of the config's architecture, and
`--init-checkpoint NAME` any entry of CHECKPOINTS. The first use downloads it over HTTPS, with
progress, into the cache `$ODAPI_CACHE` (default `~/.cache/odapi`; in the compose stack the
`checkpoints` volume, or the host folder ODAPI_CHECKPOINTS names), checks its size and sha256
(pinned here where known; otherwise recorded at the first download and checked at every later
one), and unpacks it into its folder with one rename. An interrupted or corrupt download leaves
nothing that looks complete. With the checkpoint in the cache no network is used; without
either, the error names the URL to fetch and the folder to put the file in (air-gapped hosts).
`ODAPI_CHECKPOINT_MIRROR` names a server holding the same files under the same paths.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from odapi.atomic import PrivateFolder, atomic_write_text, exclusive, probe_writable, sha256_of
from odapi.errors import OdapiError

PUBLISHER = "https://storage.googleapis.com"
RECORD = "odapi-checkpoint.json"  # in an unpacked checkpoint: its files' sizes and digests
KNOWN = "known.json"  # digests recorded at first downloads, by URL
CHUNK = 1 << 20
TIMEOUT = 60.0  # seconds without a byte before a download is given up


@dataclass(frozen=True)
class Published:
    """A checkpoint someone publishes: where, what it fits, how large, its digests."""

    urls: tuple[str, ...]  # one .tar.gz, or the files of one checkpoint
    what: str
    fits: tuple[str, ...]  # presets it initializes
    coco_for: tuple[str, ...] = ()  # Model Garden experiments it is the `coco` checkpoint of
    size: str = "unknown until downloaded"
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> digest, where known


CHECKPOINTS: dict[str, Published] = {
    "retinanet-resnet50fpn-coco": Published(
        urls=(f"{PUBLISHER}/tf_model_garden/vision/retinanet/retinanet-resnet50fpn.tar.gz",),
        what="RetinaNet, ResNet-50 FPN, COCO, 640 px (box AP 36.8)",
        fits=("retinanet_resnet50_fpn",), coco_for=("retinanet_resnetfpn_coco",)),
    "spinenet49mobile-coco": Published(
        urls=(f"{PUBLISHER}/tf_model_garden/vision/retinanet/spinenet49mobile.tar.gz",),
        what="RetinaNet, SpineNet-Mobile-49, COCO, 384 px (box AP 28.1)",
        fits=("retinanet_mobile", "demo"), coco_for=("retinanet_mobile_coco",)),
    "resnet50-imagenet": Published(
        urls=tuple(f"{PUBLISHER}/cloud-tpu-checkpoints/vision-2.0/resnet50_imagenet/"
                   f"ckpt-28080.{suffix}" for suffix in ("index", "data-00000-of-00001")),
        what="ResNet-50, ImageNet classification (the backbone only)",
        fits=("retinanet_resnet50_fpn", "faster_rcnn_resnet50_fpn")),
}
COCO = "coco"  # the name that means "the COCO checkpoint of this config's architecture"


def cache_dir() -> Path:
    """Where checkpoints are kept: `$ODAPI_CACHE`, else ~/.cache/odapi. Inside: a folder per
    unpacked checkpoint, `downloads/` with the files as published, `known.json`."""
    return Path(os.environ.get("ODAPI_CACHE") or Path.home() / ".cache" / "odapi")


def coco_checkpoint(experiment: str) -> str:
    """The name of the COCO checkpoint for a Model Garden experiment."""
    for name, entry in CHECKPOINTS.items():
        if experiment in entry.coco_for:
            return name
    others = ", ".join(CHECKPOINTS)
    raise OdapiError(f"Model Garden publishes no COCO checkpoint for {experiment}; choose one "
                     f"of {others} with --init-checkpoint, or train --from-scratch")


def is_name(value: str) -> bool:
    return value == COCO or value in CHECKPOINTS


def url_of(url: str) -> str:
    """The URL to fetch: the publisher's, or the same path on ODAPI_CHECKPOINT_MIRROR."""
    mirror = os.environ.get("ODAPI_CHECKPOINT_MIRROR", "").rstrip("/")
    if mirror and not mirror.startswith(("http://", "https://")):
        raise OdapiError(f"ODAPI_CHECKPOINT_MIRROR must be a URL such as "
                         f"https://mirror.example.com, not {mirror!r}")
    return mirror + url[len(PUBLISHER):] if mirror and url.startswith(PUBLISHER) else url


def cached_prefix(name: str, cache: Path | None = None) -> str | None:
    """The checkpoint prefix of NAME if its unpacked files are in the cache, whole in size."""
    folder = (cache or cache_dir()) / name
    try:
        record = json.loads((folder / RECORD).read_text())
        if all((folder / f).stat().st_size == v["bytes"] for f, v in record["files"].items()):
            return str(folder / record["prefix"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def fetch(name: str, log: Callable[[str], None] = print, progress: bool = True,
          cache: Path | None = None) -> str:
    """The local checkpoint prefix of NAME, downloaded and unpacked on first use."""
    if name not in CHECKPOINTS:
        raise OdapiError(f"no published checkpoint named {name!r}; known: "
                         f"{', '.join(CHECKPOINTS)} (`odapi checkpoints list`)")
    cache = cache or cache_dir()
    found = cached_prefix(name, cache)
    if found:
        return found
    _check_writable(cache, name)
    with exclusive(cache / f".{name}.lock"):  # one download at a time, across containers
        found = cached_prefix(name, cache)  # another process may just have finished it
        if found:
            return found
        entry = CHECKPOINTS[name]
        files, fresh = {}, []
        for url in entry.urls:
            files[url], downloaded = _download(url, entry, cache, log, progress)
            fresh += [files[url]] if downloaded else []
        try:
            prefix = _unpack(name, list(files.values()), cache, log)
        except OdapiError as e:
            for path in fresh:  # a download that is no checkpoint is not kept
                path.unlink(missing_ok=True)
            e.message += ("; it was removed: run again to download it anew" if fresh else
                          "; replace it with the published file")
            raise
        _record_digests(files, cache)  # only files that unpacked into a checkpoint count
        return prefix


def _check_writable(cache: Path, name: str) -> None:
    try:
        probe_writable(cache)
    except OSError as e:
        raise OdapiError(
            f"{name} is not in the checkpoint cache, and the cache is not writable "
            f"({e.strerror}); download it where it is (`odapi checkpoints download {name}`) "
            "or set ODAPI_CACHE to a writable folder", where=str(cache)) from None


def _download(url: str, entry: Published, cache: Path, log,
              progress: bool) -> tuple[Path, bool]:
    """`cache/downloads/<file>`, fetched unless it is there already, checked either way;
    and whether it was fetched now."""
    target = cache / "downloads" / url.rsplit("/", 1)[1]
    if target.exists():
        _check_digest(url, target, entry, cache, target)
        return target, False
    source = url_of(url)
    log(f"downloading {source}")
    with PrivateFolder(target.parent, f".{target.name}.partial-") as staging:
        partial = staging / target.name
        _fetch_to(source, partial, target, progress)
        _check_digest(url, partial, entry, cache, target)
        os.replace(partial, target)
    return target, True


def _fetch_to(source: str, partial: Path, target: Path, progress: bool) -> None:
    from odapi.progress import progress_bar

    def failed(reason: str) -> OdapiError:
        return OdapiError(
            f"cannot download {source} ({reason}). Without internet access here, fetch that "
            f"file elsewhere and put it in {target.parent}/ (with docker compose: downloads/ "
            "in the folder ODAPI_CHECKPOINTS names); odapi checks and unpacks it from there")

    try:
        with urllib.request.urlopen(source, timeout=TIMEOUT) as response, \
                partial.open("wb") as out:
            length = int(response.headers.get("Content-Length") or 0)  # ValueError if not
            done = 0
            with progress_bar(-(-length // CHUNK) or None, "download", "MB",
                              enabled=progress) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    bar.update(1)
    except urllib.error.HTTPError as e:
        raise failed(f"HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:  # no route, refused, timed out, cut off
        raise failed(str(getattr(e, "reason", e))) from None
    except http.client.HTTPException as e:  # a broken response: cut off mid-chunk, garbled
        raise failed(f"{type(e).__name__}: {e}") from None
    except ValueError as e:  # not a URL urllib can fetch (a mirror without http://), a bad
        raise failed(str(e)) from None  # Content-Length
    if length and done != length:
        raise failed(f"the connection ended after {done} of {length} bytes")


def _check_digest(url: str, path: Path, entry: Published, cache: Path, target: Path) -> None:
    """The file's sha256 against the pinned one, else the one recorded at the first download
    that unpacked."""
    digest = sha256_of(path)
    name = url.rsplit("/", 1)[1]
    expected = entry.sha256.get(name) or _read_json(cache / KNOWN).get(url, {}).get("sha256")
    if expected and digest != expected:
        whence = "published" if name in entry.sha256 else "recorded at its first download"
        raise OdapiError(
            f"{name} is not the file it should be: sha256 {digest}, {whence} {expected}. "
            f"It is damaged or was replaced; delete {target} (if it is there) and download "
            "it again", where=str(path))


def _record_digests(files: dict[str, Path], cache: Path) -> None:
    """Remember each URL's size and sha256 the first time its file unpacked: later downloads
    must match (a damaged mirror, a replaced file)."""
    with exclusive(cache / f".{KNOWN}.lock"):
        known = _read_json(cache / KNOWN)
        new = {url: {"bytes": path.stat().st_size, "sha256": sha256_of(path)}
               for url, path in files.items() if url not in known}
        if new:
            atomic_write_text(cache / KNOWN, json.dumps({**known, **new}, indent=2))


def _unpack(name: str, files: list[Path], cache: Path, log) -> str:
    """Unpack (a .tar.gz) or copy the files into `cache/NAME`, in one rename at the end."""
    with PrivateFolder(cache, f".{name}.partial-") as staging:
        folder = staging / name
        folder.mkdir()
        for path in files:
            if path.name.endswith((".tar.gz", ".tgz", ".tar")):
                try:
                    _extract(path, folder)
                except (tarfile.TarError, OSError, EOFError) as e:
                    raise OdapiError(f"cannot unpack {path.name} ({e}): it is damaged, or "
                                     "not the published file", where=str(path)) from None
            else:
                shutil.copyfile(path, folder / path.name)
        indexes = sorted(folder.rglob("*.index"))
        if len(indexes) != 1:
            raise OdapiError(f"{name} should hold one checkpoint, found {len(indexes)} "
                             ".index files", where=str(files[0]))
        prefix = indexes[0].relative_to(folder).as_posix()[:-len(".index")]
        record = {"name": name, "prefix": prefix, "urls": list(CHECKPOINTS[name].urls),
                  "files": {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size,
                                                                "sha256": sha256_of(p)}
                            for p in sorted(folder.rglob("*")) if p.is_file()}}
        (folder / RECORD).write_text(json.dumps(record, indent=2))
        shutil.rmtree(cache / name, ignore_errors=True)  # an incomplete one, if any
        os.replace(folder, cache / name)
    log(f"{name} is in {cache / name}")
    return str(cache / name / prefix)


def listing(cache: Path | None = None) -> list[tuple[str, Published, str, str]]:
    """(name, entry, size, cache state) for each published checkpoint."""
    cache = cache or cache_dir()
    known = _read_json(cache / KNOWN)
    rows = []
    for name, entry in CHECKPOINTS.items():
        sizes = [known.get(url, {}).get("bytes") for url in entry.urls]
        size = f"{sum(sizes) / 1e6:.0f} MB" if all(sizes) else entry.size
        state = "cached" if cached_prefix(name, cache) else "-"
        rows.append((name, entry, size, state))
    return rows


def _extract(archive_path: Path, folder: Path) -> None:
    """Unpack files and folders only, all inside `folder` (what Python 3.11.4's "data" filter
    does; the images' Debian Python is older)."""
    with tarfile.open(archive_path) as archive:
        members = archive.getmembers()
        for member in members:
            parts = Path(member.name).parts
            if not (member.isfile() or member.isdir()) or Path(member.name).is_absolute() \
                    or ".." in parts:
                raise tarfile.TarError(f"{member.name!r} is not a plain file inside it")
        archive.extractall(folder, members=members)  # noqa: S202 - checked above


def verify(cache: Path | None = None) -> dict[str, str]:
    """Each cached checkpoint's state: "ok", or what is wrong with it."""
    cache = cache or cache_dir()
    states = {}
    for name in CHECKPOINTS:
        folder = cache / name
        if not folder.exists():
            continue
        record = _read_json(folder / RECORD)
        if not record.get("files"):
            states[name] = f"incomplete: {RECORD} is missing; delete {folder}"
            continue
        bad = [f for f, v in record["files"].items()
               if not (folder / f).is_file() or sha256_of(folder / f) != v["sha256"]]
        states[name] = "ok" if not bad else \
            f"damaged: {', '.join(bad)} changed since it was unpacked; delete {folder}"
    return states


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
