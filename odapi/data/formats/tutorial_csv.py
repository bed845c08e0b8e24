"""The tutorial's CSV: `id,x1,x2,y1,y2` per box, images at `<images>/<id>.jpg`, one class.

An optional sixth column names the class, so one file can hold several classes (`odapi demo-data`
writes it that way). Note the column order: both x before both y.
"""

from __future__ import annotations

import csv
import io
import itertools
from pathlib import Path

from odapi.data.annotations import (
    Action,
    AnnotatedImage,
    Box,
    Issue,
    ParsedDataset,
    split_from_path,
)
from odapi.data.formats.common import (
    ReadOptions,
    locate_image,
    parse_float,
    read_each,
    read_text,
)
from odapi.data.formats.locate import ImageLocator
from odapi.errors import OdapiError

NAME = "tutorial-csv"
DESCRIPTION = "the tutorial's CSV: id,x1,x2,y1,y2[,class] per box, images at <images>/<id>.jpg"
HEADER_NAMES = {"id", "x1", "x2", "y1", "y2", "class", "label", "name"}


def sniff(path: Path) -> bool:
    if path.suffix.lower() != ".csv":
        return False
    first = _first_line(path)
    if first is None:
        return False
    fields = [f.strip().lower() for f in first.split(",")]
    if len(fields) in (5, 6) and all(parse_float(f) is not None for f in fields[1:5]):
        return True
    return fields[:5] == ["id", "x1", "x2", "y1", "y2"]


def _first_line(path: Path) -> str | None:
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as f:
            for line in f:
                if line.strip():
                    return line
    except OSError:
        return None
    return None


def read(files: list[Path], root: Path, options: ReadOptions) -> ParsedDataset:
    images = ImageLocator(root, options.images)
    return read_each(files, lambda path, dataset: _read_file(path, root, options, images,
                                                             dataset), images)


def _read_file(path: Path, root: Path, options: ReadOptions, locator: ImageLocator,
               dataset: ParsedDataset) -> None:
    text = read_text(path)
    # rows one at a time: a list of them all would be the largest thing in a big conversion
    rows = ((n, row) for n, row in enumerate(csv.reader(io.StringIO(text)), start=1) if row)
    first = next(rows, None)
    if first is None:
        raise OdapiError("the file is empty; expected lines like `0,10,50,20,60`", where=str(path))
    if not {c.strip().lower() for c in first[1]} <= HEADER_NAMES:
        rows = itertools.chain([first], rows)
    images: dict[str, AnnotatedImage | None] = {}  # None: not found (reported once)
    split = split_from_path(path, root)
    for line, row in rows:
        where = f"{path}:{line}"
        if len(row) not in (5, 6):
            dataset.issues.append(Issue(
                where,
                f"expected 5 columns id,x1,x2,y1,y2 (or 6, with a class name), found {len(row)}",
                Action.SKIPPED_BOX,
            ))
            continue
        image_id = row[0].strip()
        label = row[5].strip() if len(row) == 6 else options.class_name
        if not label:
            raise OdapiError(
                "this CSV has no class column; name its class with --class-name, e.g. "
                "--class-name Ball",
                where=where,
            )
        x1, x2, y1, y2 = (parse_float(v) for v in row[1:5])
        if not image_id:
            dataset.issues.append(Issue(where, "the id column is empty; it names the image "
                                        "(<id>.jpg)", Action.SKIPPED_BOX))
            continue
        if image_id not in images:
            image_path = locate_image(locator, dataset, where, image_id, path)
            images[image_id] = None if image_path is None else AnnotatedImage(
                image_path, where, split=split)
        image = images[image_id]
        if image is None:
            continue
        if None in (x1, x2, y1, y2):
            image.skipped_boxes += 1
            dataset.issues.append(Issue(
                where,
                f"cannot read {','.join(row[:5])!r} as id,x1,x2,y1,y2 numbers",
                Action.SKIPPED_BOX,
            ))
            continue
        image.boxes.append(Box(label, x1, y1, x2, y2, where))
    dataset.add((image for image in images.values() if image), path, options.coords)


def write(images: list[AnnotatedImage], path: Path) -> None:
    """Write pixel boxes as `id,x1,x2,y1,y2,class` lines; each id is the image's file stem."""
    lines = []
    for image in images:
        for b in image.boxes:
            lines.append(f"{image.image_path.stem},{b.xmin:g},{b.xmax:g},{b.ymin:g},{b.ymax:g},"
                         f"{b.label}\n")
    path.write_text("".join(lines), "utf-8")
