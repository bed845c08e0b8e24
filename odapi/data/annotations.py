"""What every annotation format reads into: images with boxes, plus what went wrong on the way.

Readers only parse; they do not look at pixels. Geometry checks that need the real image size
happen later, in `odapi.data.boxes`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

Coords = Literal["pixel", "normalized"]


class Action(StrEnum):
    """What odapi did about an issue."""

    SKIPPED_FILE = "skipped file"  # nothing in this annotation file could be used
    SKIPPED_IMAGE = "skipped image"  # the image is not in the output
    SKIPPED_BOX = "skipped box"  # the image is in the output without this box
    FIXED = "fixed"  # kept after a correction (clipped box, converted pixels, ...)
    NOTE = "note"  # nothing changed; worth knowing

    @property
    def is_skip(self) -> bool:
        return self in (Action.SKIPPED_FILE, Action.SKIPPED_IMAGE, Action.SKIPPED_BOX)


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding, located precisely enough that the user can open the file and fix it."""

    where: str  # "labels/a.csv:17", "Annotations/x.xml: <object>[2]", ...
    message: str  # what is wrong and what to do about it
    action: Action

    def to_dict(self) -> dict[str, str]:
        return {"where": self.where, "action": self.action.value, "message": self.message}


@dataclass(slots=True)
class Box:
    """A box as the annotation file gives it, in that file's coordinate frame."""

    label: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    where: str
    difficult: bool = False
    is_crowd: bool = False


@dataclass(slots=True)
class AnnotatedImage:
    """One image and all of its boxes, before any pixel is read.

    Conversion holds one per image until the end, so the path is kept as a string: a Path
    object costs about 0.8 KB, which made it most of a large conversion's growing memory.
    """

    file: str | Path  # the image's path; read it as `image_path`
    where: str  # where the annotation file declares this image
    boxes: list[Box] = field(default_factory=list)
    coords: Coords = "pixel"
    declared_size: tuple[int, int] | None = None  # (width, height) stated by the annotation
    split: str | None = None  # given by the input's layout (train/valid/test folders)
    skipped_boxes: int = 0  # boxes the reader could not parse; with none left, the image is
    #                         skipped rather than passed off as a background

    def __post_init__(self) -> None:
        self.file = str(Path(self.file))  # normalized as a Path would print it

    @property
    def image_path(self) -> Path:
        return Path(self.file)


@dataclass
class ParsedDataset:
    """A format reader's output."""

    images: list[AnnotatedImage]
    issues: list[Issue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # dataset-level facts, e.g. detected coords

    def add(self, images: Iterable[AnnotatedImage], source: Path, coords: str = "auto",
            expected: Coords = "pixel") -> None:
        """Add one annotation file's images, settling their coordinate frame for the whole file.

        `coords` is the user's choice ("auto" detects); a detected frame other than the format's
        `expected` one is noted, so the report says why the boxes were read that way.
        """
        images = list(images)
        if coords == "auto":
            coords = coords_of((v for im in images for b in im.boxes
                                for v in (b.xmin, b.ymin, b.xmax, b.ymax)), expected)
            if coords != expected:
                self.notes.append(f"{source}: {coords} coordinates detected")
        for image in images:
            image.coords = coords  # type: ignore[assignment]
        self.images.extend(images)


def coords_of(values: Iterable[float], expected: Coords = "pixel") -> Coords:
    """Which frame a file's box coordinates are in, judged from all of them together.

    Pixel files (VOC, COCO, CSV) read as normalized only when every value lies in [0, 1] and one
    is fractional: values that are all 0 or 1 could be either, and pixel is the safe reading
    because such boxes are then rejected as tiny. Normalized files (YOLO) read as pixel only
    when a value is clearly above 1, since rounding puts edges a hair outside [0, 1].
    """
    if expected == "normalized":
        return "pixel" if any(v > 1.05 for v in values) else "normalized"
    fractional = False
    for value in values:
        if value < 0.0 or value > 1.0:
            return "pixel"
        fractional = fractional or value not in (0.0, 1.0)
    return "normalized" if fractional else "pixel"


_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "eval": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


def split_from_name(name: str) -> str | None:
    """The split a file or folder name implies: `valid/`, `train.csv`, `instances_val2017.json`."""
    for token in re.split(r"[^a-zA-Z0-9]+", Path(name).stem.lower()):
        split = _SPLIT_ALIASES.get(token.rstrip("0123456789"))
        if split:
            return split
    return None


def split_from_path(path: Path, root: Path) -> str | None:
    """The split implied by a file's folders below the input root, innermost first, or its name."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = path.parts[-2:]
    for part in reversed(parts):
        split = split_from_name(part)
        if split:
            return split
    return None
