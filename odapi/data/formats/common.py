"""Helpers every format reader shares: options, the per-file loop, reading text, finding images."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from odapi.data.annotations import Action, Issue, ParsedDataset
from odapi.data.formats.locate import AmbiguousImage, ImageLocator, ImageNotFound
from odapi.errors import OdapiError


@dataclass(frozen=True)
class ReadOptions:
    """What a user can tell a reader that the files do not say."""

    images: Path | None = None  # folder to look for images in, before the format's defaults
    class_name: str | None = None  # the tutorial CSV's single class
    coords: Literal["auto", "pixel", "normalized"] = "auto"


def read_each(files: list[Path], read_file: Callable[[Path, ParsedDataset], None],
              images: ImageLocator) -> ParsedDataset:
    """Run a format's `read_file` over its annotation files; a file that fails as a whole
    (unreadable, empty, wrong columns) becomes a skipped-file issue, and the others go on.
    The report then says where `images` found the images."""
    dataset = ParsedDataset(images=[])
    for path in files:
        try:
            read_file(path, dataset)
        except OdapiError as e:
            dataset.issues.append(Issue(e.where or str(path), e.message, Action.SKIPPED_FILE))
    dataset.notes += images.notes()
    return dataset


def locate_image(images: ImageLocator, dataset: ParsedDataset, where: str, name: str,
                 annotation: Path, recorded: str | None = None,
                 folder: str | None = None) -> str | None:
    """The image's path, or None with a skipped-image issue saying why (see locate.py)."""
    try:
        return images.find(name, annotation, recorded=recorded, folder=folder)
    except (ImageNotFound, AmbiguousImage) as e:
        dataset.issues.append(Issue(where, str(e), Action.SKIPPED_IMAGE))
        return None


def read_text(path: Path) -> str:
    """UTF-8 text (a BOM is allowed); undecodable bytes are an error naming the line."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise OdapiError(f"cannot read annotation file: {e.strerror}", where=str(path)) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise OdapiError(
            f"byte {data[e.start]:#04x} is not UTF-8 text; save the file as UTF-8 and try again",
            where=f"{path}:{line}",
        ) from None


def parse_float(text: str | None) -> float | None:
    """A finite float, or None when the text is not one."""
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None
