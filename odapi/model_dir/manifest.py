"""The run manifest, `manifest.json` in the model dir: what ran, on what data, with what result.

Written when a run starts and rewritten when it ends (atomically, so it is always valid JSON).
Each invocation of `odapi train` on the model dir adds a session; the dataset entry records
every record file's size and sha256, so a run can be traced to its exact data.
"""

from __future__ import annotations

import json
import platform
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from odapi import __version__
from odapi.atomic import atomic_write_text

MANIFEST = "manifest.json"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_manifest(model_dir: Path) -> dict | None:
    try:
        return json.loads((Path(model_dir) / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return None


def write_manifest(model_dir: Path, manifest: dict) -> None:
    manifest["updated"] = now()
    atomic_write_text(Path(model_dir) / MANIFEST, json.dumps(manifest, indent=2, default=str))


def versions() -> dict:
    import tensorflow as tf

    def package(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    build = tf.sysconfig.get_build_info()
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "odapi": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
        "tf-models-official": package("tf-models-official"),
        "tf-keras": package("tf-keras"),
        "cuda": build.get("cuda_version") if gpus else None,
        "cudnn": build.get("cudnn_version") if gpus else None,
        "gpus": [g.name for g in gpus],
    }


def load_run(model_dir: Path):
    """A finished or running run's Model Garden params, label map and manifest, from its dir."""
    from official.core import exp_factory
    from official.vision import registry_imports  # noqa: F401  (registers the experiments)

    from odapi.errors import OdapiError
    from odapi.labelmap import LabelMap

    manifest = read_manifest(model_dir)
    if manifest is None:
        raise OdapiError("no odapi run here (manifest.json is missing); give the --model-dir "
                         "that `odapi train` writes to", where=str(model_dir))
    config = manifest["config"]
    params = exp_factory.get_exp_config(config["experiment"])
    params.override(config["params"], is_strict=False)
    return params, LabelMap.read(Path(model_dir) / "label_map.pbtxt"), manifest


def dataset_cache(manifest: dict | None) -> dict[str, dict]:
    """Earlier scans of record files, by path, for `preflight.scan_records`."""
    cache = {}
    for split in (manifest or {}).get("dataset", {}).values():
        if isinstance(split, dict):
            for entry in split.get("files", []):
                cache[entry["path"]] = entry
    return cache
