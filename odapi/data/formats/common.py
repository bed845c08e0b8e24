"""Helpers every format reader shares: options, reading text, finding images next to annotations."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from odapi.data.annotations import Action, Issue, ParsedDataset
from odapi.errors import OdapiError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ReadOptions:
    """What a user can tell a reader that the files do not say."""

    images: Path | None = None  # folder to look for images in, before the format's defaults
    class_name: str | None = None  # the tutorial CSV's single class
    coords: Literal["auto", "pixel", "normalized"] = "auto"


def read_each(files: list[Path], read_file: Callable[[Path, ParsedDataset], None]
              ) -> ParsedDataset:
    """Run a format's `read_file` over its annotation files; a file that fails as a whole
    (unreadable, empty, wrong columns) becomes a skipped-file issue, and the others go on."""
    dataset = ParsedDataset(images=[])
    for path in files:
        try:
            read_file(path, dataset)
        except OdapiError as e:
            dataset.issues.append(Issue(e.where or str(path), e.message, Action.SKIPPED_FILE))
    return dataset


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


def is_image(path: str | Path) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def find_image(name: str, folders: list[Path | None],
               listings: dict[str, set[str]] | None = None) -> str:
    """The first existing `folder/name`, else the first candidate (reported missing later).

    `name` may lack an extension (the tutorial CSV's ids); then the common ones are tried. That
    is six names per folder: with `listings` (a dict kept for one annotation file), each folder
    is listed once and only a listed name is checked, instead of a `stat` per name. A string,
    not a Path: see AnnotatedImage.
    """
    names = [name]
    if not is_image(name):
        names = [name + ext for ext in (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")]
    candidates = [n if os.path.isabs(n) else os.path.join(folder, n)
                  for folder in folders if folder is not None for n in names]
    if not candidates:
        raise ValueError("find_image needs at least one folder")
    for candidate in candidates:
        if listings is not None:
            folder, base = os.path.split(candidate)
            if folder not in listings:
                try:
                    listings[folder] = set(os.listdir(folder or "."))
                except OSError:
                    listings[folder] = set()
            if base not in listings[folder]:
                continue
        if os.path.isfile(candidate):
            return candidate
    return candidates[0]


def parse_float(text: str | None) -> float | None:
    """A finite float, or None when the text is not one."""
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None
