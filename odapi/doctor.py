"""`odapi doctor`: is this machine ready to train? Versions, GPUs, protos, and folder access."""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from tabulate import tabulate

from odapi import __version__


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fatal: bool = True  # a failed non-fatal check is a warning (e.g. no GPU: training is slower)

    @property
    def status(self) -> str:
        return "ok" if self.ok else ("FAIL" if self.fatal else "warn")


def _package(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _check_tensorflow() -> list[Check]:
    try:
        import tensorflow as tf
    except Exception as e:  # broken installs raise more than ImportError
        return [Check("tensorflow", False, f"cannot import: {e}; run `make setup`")]
    checks = [Check("tensorflow", True, tf.__version__)]
    build = tf.sysconfig.get_build_info()
    cuda = (f"built with CUDA {build.get('cuda_version')}, cuDNN {build.get('cudnn_version')}"
            if build.get("is_cuda_build") else "CPU-only build")
    gpus = tf.config.list_physical_devices("GPU")
    names = ", ".join(g.name for g in gpus)
    checks.append(Check("GPUs", bool(gpus),
                        f"{len(gpus)}: {names} ({cuda})" if gpus
                        else f"none visible ({cuda}); training runs on the CPU", fatal=False))
    return checks


def _check_model_garden() -> Check:
    installed = _package("tf-models-official")
    try:
        import official.vision  # noqa: F401
    except Exception as e:
        return Check("Model Garden", False, f"tf-models-official {installed}: cannot import "
                     f"official.vision ({e}); run `make setup`")
    return Check("Model Garden", True, f"tf-models-official {installed}, "
                 f"tf-keras {_package('tf-keras')}")


def _check_protos() -> Check:
    from odapi.protos.compile import stale_protos

    stale = stale_protos()
    if stale:
        return Check("protos", False, f"not compiled or out of date: "
                     f"{', '.join(p.name for p in stale)}; run `python -m odapi.protos.compile`")
    try:
        from odapi.protos import pipeline_pb2, string_int_label_map_pb2  # noqa: F401
    except Exception as e:
        return Check("protos", False, f"compiled but do not import ({e}); "
                     "run `python -m odapi.protos.compile`")
    return Check("protos", True, "compiled and importable")


def check_readable(folder: Path) -> Check:
    name = f"data {folder}"
    if not folder.is_dir():
        return Check(name, False, "does not exist or is not a folder")
    try:
        next(iter(os.scandir(folder)), None)
    except OSError as e:
        return Check(name, False, f"cannot be listed: {e.strerror}")
    return Check(name, True, "readable")


def check_writable(folder: Path) -> Check:
    name = f"output {folder}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".odapi-doctor-"):
            pass
    except OSError as e:
        return Check(name, False, f"not writable: {e.strerror} (uid {os.getuid()})")
    return Check(name, True, "writable")


def run_checks(data: list[Path] = (), outputs: list[Path] = ()) -> list[Check]:
    checks = [Check("odapi", True, f"{__version__} (Python {sys.version.split()[0]})")]
    checks += _check_tensorflow()
    checks.append(_check_model_garden())
    checks.append(_check_protos())
    checks += [check_readable(Path(p)) for p in data]
    checks += [check_writable(Path(p)) for p in outputs]
    return checks


def format_checks(checks: list[Check]) -> str:
    return tabulate([[c.name, c.status, c.detail] for c in checks],
                    headers=["check", "status", "detail"])
