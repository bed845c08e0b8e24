"""Annotation formats: a registry of readers, and detection of which one an input is in.

Each format module has NAME, DESCRIPTION, `sniff(path) -> bool` (is this file one of my
annotation files?) and `read(files, root, options) -> ParsedDataset`.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from odapi.data.annotations import ParsedDataset
from odapi.data.formats import coco, tf_csv, tutorial_csv, voc, yolo
from odapi.data.formats.common import ReadOptions
from odapi.errors import OdapiError

FORMATS: dict[str, ModuleType] = {m.NAME: m for m in (tutorial_csv, tf_csv, voc, coco, yolo)}
# When one file could be either, the more specific format wins.
_SNIFF_ORDER = (yolo, coco, voc, tf_csv, tutorial_csv)

__all__ = ["FORMATS", "ReadOptions", "detect", "read_dataset"]


def _walk(folder: Path, exclude: set[Path]):
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith(".") and (here / d).resolve() not in exclude)
        for name in sorted(filenames):
            if not name.startswith("."):
                yield here / name


def _is_blank(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return not f.read(1 << 16).strip()
    except OSError:
        return False


def detect(source: Path, format_name: str | None = None,
           exclude: set[Path] | None = None) -> tuple[ModuleType, list[Path]]:
    """The format of `source` (a file or folder) and its annotation files."""
    source = Path(source)
    if not source.exists():
        raise OdapiError("no such file or folder", where=str(source))
    if format_name is not None and format_name not in FORMATS:
        raise OdapiError(f"unknown format {format_name!r}; choose one of {', '.join(FORMATS)}")
    if source.is_file():
        if format_name:
            return FORMATS[format_name], [source]
        if _is_blank(source):
            raise OdapiError("the file is empty; it holds no annotations", where=str(source))
        for fmt in _SNIFF_ORDER:
            if fmt.sniff(source):
                return fmt, [source]
        raise OdapiError(
            "cannot tell which annotation format this is; name it with --format "
            f"({', '.join(FORMATS)})", where=str(source))

    exclude = {p.resolve() for p in exclude or ()}
    candidates = [FORMATS[format_name]] if format_name else list(_SNIFF_ORDER)
    found: dict[str, list[Path]] = {}
    for path in _walk(source, exclude):
        for fmt in candidates:
            if fmt.sniff(path):
                found.setdefault(fmt.NAME, []).append(path)
                break
    if "yolo" in found:  # a YOLO tree's data.yaml explains everything below it
        found = {"yolo": found["yolo"]}
    if not found:
        wanted = FORMATS[format_name].DESCRIPTION if format_name else "any known format"
        raise OdapiError(f"found no annotation files in {wanted}; formats odapi reads: "
                         + "; ".join(f"{n}: {m.DESCRIPTION}" for n, m in FORMATS.items()),
                         where=str(source))
    if len(found) > 1:
        listing = "; ".join(f"{name}: {len(files)} file(s), e.g. {files[0]}"
                            for name, files in found.items())
        choices = " or ".join(f"--format {name}" for name in found)
        raise OdapiError(f"found more than one annotation format ({listing}); "
                         f"choose one with {choices}", where=str(source))
    (name, files), = found.items()
    return FORMATS[name], files


def read_dataset(source: Path, options: ReadOptions, format_name: str | None = None,
                 exclude: set[Path] | None = None) -> tuple[str, ParsedDataset]:
    """Detect and read one input; return the format's name and what it read."""
    fmt, files = detect(source, format_name, exclude)
    root = source if source.is_dir() else source.parent
    return fmt.NAME, fmt.read(files, root, options)
