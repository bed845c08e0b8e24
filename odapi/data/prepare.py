"""From whatever folder a user gives (or mounts) to records that training can read.

A folder `odapi convert` wrote is used as it is. A folder of annotations in any supported
format is converted next to the run, with the conversion options the user gave (`--format`,
`--images`, ...), and converted again only when the dataset or those options change. An empty
folder, when asked for, gets the synthetic demo dataset: what `docker compose up` does with no
dataset mounted.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from odapi.data.convert import ConversionFailed, ConvertOptions, convert
from odapi.data.records import COMPLETION_MARKER, split_files
from odapi.data.synthetic import write_demo_dataset
from odapi.errors import OdapiError

DEFAULT_SPLIT = {"train": 0.8, "val": 0.2}  # for inputs that are not split already
DEMO_IMAGES = 400
IGNORED = ("README", "readme", ".")  # a data folder's own notes do not count as data
# conversion options that only matter when --data holds annotations, not records
DATASET_OPTIONS = ("format", "images", "class_name", "split")


def is_records_dir(folder: Path) -> bool:
    return (folder / "label_map.pbtxt").is_file() and bool(split_files(folder, "train"))


def is_empty(folder: Path) -> bool:
    if not folder.exists():
        return True
    return not any(not p.name.startswith(IGNORED) for p in folder.iterdir())


def _converted_earlier(records: Path) -> dict | None:
    """The inputs and options of the complete conversion in `records`, if there is one."""
    try:
        report = json.loads((records / COMPLETION_MARKER).read_text())
        return {"inputs": report["inputs"], "options": report.get("options")}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def prepare_records(source: Path, records: Path, *,
                    options: ConvertOptions | None = None, demo_if_empty: bool = False,
                    demo_images: int = DEMO_IMAGES, reuse_only: bool = False,
                    log: Callable[[str], None] = print) -> Path:
    """The records folder to train on: `source` itself, or `records` made from it.

    `options` are the conversion's (format, images, class name, label map, split); without a
    split, a dataset that is not split already is split train=0.8,val=0.2. `reuse_only`: use
    a conversion another process made in `records` (a multi-worker run's chief), never write.
    """
    source = Path(source)
    if is_records_dir(source):
        given = [f"--{name.replace('_', '-')}" for name in DATASET_OPTIONS
                 if options and getattr(options, name) is not None]
        if given:
            raise OdapiError(f"{', '.join(given)} apply to a dataset that needs converting, "
                             "and this folder holds records `odapi convert` wrote; leave them "
                             "out", where=str(source))
        return source
    options = dataclasses.replace(options or ConvertOptions(), default_split=DEFAULT_SPLIT,
                                  overwrite=True)
    if is_empty(source):
        if not demo_if_empty:
            raise OdapiError("no dataset here: give a folder `odapi convert` wrote, or a "
                             "folder of annotations in a format odapi reads", where=str(source))
        demo = records.parent / "demo-data"
        if _converted_earlier(records) == {"inputs": [str(demo / "voc")],
                                           "options": options.request()}:
            log(f"using the synthetic demo records in {records}")
            return records
        _refuse_to_write(reuse_only, "the synthetic demo", records)
        log(f"{source} holds no dataset: generating the synthetic demo ({demo_images} images) "
            f"in {demo}")
        if not (demo / "voc").exists():
            write_demo_dataset(demo, count=demo_images, seed=0, formats=("voc",))
        source = demo / "voc"
    elif _converted_earlier(records) == {"inputs": [str(source)], "options": options.request()}:
        log(f"using the records converted earlier from {source} in {records}")
        return records
    _refuse_to_write(reuse_only, str(source), records)
    log(f"converting {source} to {records}")
    try:
        report = convert([source], records, options)
    except ConversionFailed as e:
        log(e.report.summary(written=False))  # what was skipped, and why
        raise
    log(report.summary())
    return records


def _refuse_to_write(reuse_only: bool, source: str, records: Path) -> None:
    """With `reuse_only`, a conversion that is not there already is an error: converting
    would write into another process's folder."""
    if reuse_only:
        raise OdapiError(f"no complete conversion of {source} with these options to use here, "
                         "and this process only reads the one the chief worker makes: give "
                         "every worker the same --data (at the same path), conversion options "
                         "and model dir", where=str(records))
