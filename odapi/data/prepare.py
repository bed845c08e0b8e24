"""From whatever folder a user gives (or mounts) to records that training can read.

A folder `odapi convert` wrote is used as it is. A folder of annotations in any supported
format is converted next to the run. An empty folder, when asked for, gets the synthetic demo
dataset: what `docker compose up` does with no dataset mounted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from odapi.data.convert import ConvertOptions, convert
from odapi.data.records import COMPLETION_MARKER
from odapi.data.synthetic import write_demo_dataset
from odapi.errors import OdapiError

DEFAULT_SPLIT = {"train": 0.8, "val": 0.2}  # for inputs that are not split already
DEMO_IMAGES = 400
IGNORED = ("README", "readme", ".")  # a data folder's own notes do not count as data


def is_records_dir(folder: Path) -> bool:
    return (folder / "label_map.pbtxt").is_file() and any(folder.glob("train-*.tfrecord"))


def is_empty(folder: Path) -> bool:
    if not folder.exists():
        return True
    return not any(not p.name.startswith(IGNORED) for p in folder.iterdir())


def _converted_from(records: Path) -> list[str] | None:
    try:
        return json.loads((records / COMPLETION_MARKER).read_text())["inputs"]
    except (OSError, ValueError, KeyError):
        return None


def prepare_records(source: Path, records: Path, *, demo_if_empty: bool = False,
                    split: dict[str, float] | None = None, demo_images: int = DEMO_IMAGES,
                    progress: bool = True, log: Callable[[str], None] = print) -> Path:
    """The records folder to train on: `source` itself, or `records` made from it."""
    source = Path(source)
    if is_records_dir(source):
        return source
    if is_empty(source):
        if not demo_if_empty:
            raise OdapiError("no dataset here: give a folder `odapi convert` wrote, or a "
                             "folder of annotations in a format odapi reads", where=str(source))
        demo = records.parent / "demo-data"
        if _converted_from(records) == [str(demo / "voc")]:
            log(f"using the synthetic demo records in {records}")
            return records
        log(f"{source} holds no dataset: generating the synthetic demo ({demo_images} images) "
            f"in {demo}")
        if not (demo / "voc").exists():
            write_demo_dataset(demo, count=demo_images, seed=0, formats=("voc",))
        source = demo / "voc"
    elif _converted_from(records) == [str(source)]:
        log(f"using the records converted earlier from {source} in {records}")
        return records
    log(f"converting {source} to {records}")
    options = ConvertOptions(split=split, default_split=DEFAULT_SPLIT, overwrite=True,
                             progress=progress)
    convert([source], records, options)
    return records
