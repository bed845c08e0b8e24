"""TensorFlow/Roboflow CSV: header `filename,width,height,class,xmin,ymin,xmax,ymax`, a row per box.

Coordinates are pixels (normalized values are detected). Roboflow writes one `_annotations.csv`
per split folder, next to that split's images; a row with an empty class and empty coordinates
lists an image without objects.
"""

from __future__ import annotations

import csv
import io
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

NAME = "tf-csv"
DESCRIPTION = "TF/Roboflow CSV with header filename,width,height,class,xmin,ymin,xmax,ymax"
COLUMNS = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")


def sniff(path: Path) -> bool:
    if path.suffix.lower() != ".csv":
        return False
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as f:
            header = f.readline()
    except OSError:
        return False
    names = {c.strip().lower() for c in header.split(",")}
    # most of the header is enough to claim the file, so that read() can name what is missing
    return "filename" in names and len(names & set(COLUMNS)) >= 4


def read(files: list[Path], root: Path, options: ReadOptions) -> ParsedDataset:
    images = ImageLocator(root, options.images)
    return read_each(files, lambda path, dataset: _read_file(path, root, options, images,
                                                             dataset), images)


def _read_file(path: Path, root: Path, options: ReadOptions, locator: ImageLocator,
               dataset: ParsedDataset) -> None:
    text = read_text(path)
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise OdapiError(f"the file is empty; expected a header {','.join(COLUMNS)}", str(path))
    index = {name.strip().lower(): i for i, name in enumerate(header)}
    missing = [c for c in COLUMNS if c not in index]
    if missing:
        raise OdapiError(
            f"missing column(s) {', '.join(missing)}; the header must name "
            f"{','.join(COLUMNS)} (found {','.join(h.strip() for h in header)})",
            where=f"{path}:1",
        )
    images: dict[str, AnnotatedImage | None] = {}  # None: not found (reported once)
    split = split_from_path(path, root)
    for line, row in enumerate(reader, start=2):
        if not row or not any(v.strip() for v in row):
            continue
        where = f"{path}:{line}"
        if len(row) != len(header):
            dataset.issues.append(Issue(
                where, f"expected {len(header)} columns like the header, found {len(row)}",
                Action.SKIPPED_BOX,
            ))
            continue
        value = {c: row[index[c]].strip() for c in COLUMNS}
        filename = value["filename"]
        if not filename:
            dataset.issues.append(Issue(where, "the filename column is empty", Action.SKIPPED_BOX))
            continue
        width, height = parse_float(value["width"]), parse_float(value["height"])
        declared = (round(width), round(height)) if width and height else None
        if filename not in images:
            image_path = locate_image(locator, dataset, where, filename, path)
            images[filename] = None if image_path is None else AnnotatedImage(
                image_path, where, declared_size=declared, split=split)
        image = images[filename]
        if image is None:
            continue
        if declared and image.declared_size and declared != image.declared_size:
            image.skipped_boxes += 1
            dataset.issues.append(Issue(
                where,
                f"{filename} is {declared[0]}x{declared[1]} here but "
                f"{image.declared_size[0]}x{image.declared_size[1]} at {image.where}; "
                "a file has one size, so one of these rows is wrong",
                Action.SKIPPED_BOX,
            ))
            continue
        coordinates = [value[c] for c in ("xmin", "ymin", "xmax", "ymax")]
        if not value["class"] and not any(coordinates):
            continue  # an image listed without objects
        xmin, ymin, xmax, ymax = (parse_float(v) for v in coordinates)
        if not value["class"] or None in (xmin, ymin, xmax, ymax):
            image.skipped_boxes += 1
            dataset.issues.append(Issue(
                where,
                "needs a class name and numeric xmin,ymin,xmax,ymax; found "
                f"{value['class']!r} and {','.join(coordinates)!r}",
                Action.SKIPPED_BOX,
            ))
            continue
        image.boxes.append(Box(value["class"], xmin, ymin, xmax, ymax, where))
    if not images:
        raise OdapiError("the file has a header but no rows", where=str(path))
    dataset.add((image for image in images.values() if image), path, options.coords)


def write(images: list[AnnotatedImage], path: Path) -> None:
    """Write pixel boxes with the TF/Roboflow header; filenames relative to the CSV's folder."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for image in images:
        width, height = image.declared_size
        name = image.image_path.relative_to(path.parent).as_posix()
        if not image.boxes:
            writer.writerow([name, width, height, "", "", "", "", ""])
        for b in image.boxes:
            writer.writerow([name, width, height, b.label, f"{b.xmin:g}", f"{b.ymin:g}",
                             f"{b.xmax:g}", f"{b.ymax:g}"])
    path.write_text(out.getvalue(), "utf-8")
