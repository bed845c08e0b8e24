"""Image bytes for a record: checked, in the orientation the boxes were drawn on, decodable as RGB.

Training decodes `image/encoded` to 3-channel RGB with TensorFlow, which ignores EXIF and cannot
read CMYK JPEGs or 16-bit PNGs the way a user expects. So: 3-channel JPEGs and 8-bit RGB PNGs pass
through byte for byte; everything else is converted (JPEGs stay JPEG at quality 95, other formats
become lossless PNG; transparency is flattened onto white).

Checking that an image is whole: a JPEG's structure is walked (`jpeg.py`), which costs
microseconds; other formats, and every image with `verify_pixels`, are decoded in full.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from odapi.data.jpeg import is_jpeg, jpeg_problem

JPEG_QUALITY = 95
_ORIENTATION_TAG = 0x0112
_TRANSPOSING = (5, 6, 7, 8)  # EXIF orientations that swap width and height


class ImageProblem(Exception):
    """The image cannot go into a record; the message says why and what to do."""


@dataclass
class PreparedImage:
    encoded: bytes
    image_format: str  # "jpeg" or "png", as the OD API's image/format expects
    width: int
    height: int
    notes: list[str] = field(default_factory=list)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageProblem(f"image not found: {path}; check the path or pass --images DIR") \
            from None
    except IsADirectoryError:
        raise ImageProblem(f"{path} is a folder, not an image") from None
    except OSError as e:
        raise ImageProblem(f"cannot read image {path}: {e.strerror}") from None


def prefetch(path: str | Path) -> None:
    """Ask the kernel to start reading `path` now (Linux), so that a cold disk streams the next
    images while the CPU works on earlier ones; a no-op where that cannot be asked."""
    if not hasattr(os, "posix_fadvise"):
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block here
    except OSError:
        return  # reported when the image itself is read
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
    except OSError:
        pass
    finally:
        os.close(fd)


def _open(data: bytes, path: Path) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageProblem(f"{path} is not an image odapi can read (empty or unknown format)") \
            from None
    except Image.DecompressionBombError as e:
        raise ImageProblem(f"{path} is too large to decode safely: {e}") from None


def _check_decodes(data: bytes, path: Path, image: Image.Image) -> None:
    """Decode every byte of the image, so truncated or corrupt files are caught now.

    JPEGs decode at 1/8 scale (libjpeg's DCT scaling), which still reads the whole stream.
    """
    try:
        check = Image.open(io.BytesIO(data))
        if check.format == "JPEG":
            check.draft(check.mode, (max(1, image.width // 8), max(1, image.height // 8)))
        check.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageProblem(
            f"{path} is truncated or corrupt ({e}); re-export it or remove it from the dataset"
        ) from None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit gray: scale as viewers do
        pixels = np.asarray(image, dtype=np.float64)
        full_scale = 65535.0 if pixels.max() <= 65535 else pixels.max()
        image = Image.fromarray(np.round(pixels * (255.0 / full_scale)).astype(np.uint8), "L")
    if "transparency" in image.info and image.mode in ("RGB", "L", "P"):  # a colour key
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _encode(image: Image.Image, as_jpeg: bool) -> bytes:
    out = io.BytesIO()
    if as_jpeg:
        image.save(out, "JPEG", quality=JPEG_QUALITY)
    else:
        image.save(out, "PNG", compress_level=3)
    return out.getvalue()


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not lose the image; its pixels are fine
        return 1
    return value if value in range(1, 9) else 1


def prepare_image(path: Path, declared_size: tuple[int, int] | None,
                  declared_where: str = "the annotation",
                  verify_pixels: bool = False) -> PreparedImage:
    """Read, check and (only when needed) convert one image.

    With an EXIF orientation, `declared_size` (the annotation's width, height) tells which view
    the boxes were drawn on: the stored pixels or the rotated view a viewer shows. Without a
    declared size, or when both views have the same size, the rotated view is assumed, since
    browsers and labelling tools display that one.
    """
    data = _read(path)
    jpeg = is_jpeg(data)
    if jpeg and not verify_pixels:  # before PIL, whose header parse would fail less clearly
        problem = jpeg_problem(data)
        if problem:
            raise ImageProblem(f"{path} is truncated or corrupt ({problem}); re-export it or "
                               "remove it from the dataset")
    image = _open(data, path)
    if verify_pixels or not jpeg:
        _check_decodes(data, path, image)
    stored = image.size
    orientation = _orientation(image)
    viewed = (stored[1], stored[0]) if orientation in _TRANSPOSING else stored
    notes: list[str] = []

    if declared_size is not None and declared_size not in (stored, viewed):
        raise ImageProblem(
            f"{declared_where} says the image is {declared_size[0]}x{declared_size[1]} but "
            f"{path} is {viewed[0]}x{viewed[1]}; the boxes may belong to another version of "
            "this image: fix the size in the annotation or re-export it")
    rotate = orientation != 1
    if rotate and declared_size == stored and stored != viewed:
        rotate = False
        notes.append(f"EXIF orientation {orientation}: the annotation's size "
                     f"{stored[0]}x{stored[1]} matches the stored pixels; kept them unrotated")
    elif rotate:
        why = ("the annotation's size matches the rotated view" if declared_size
               and stored != viewed else "assumed the boxes were drawn on the rotated view")
        notes.append(f"EXIF orientation {orientation}: {why}; wrote rotated pixels")

    source_format = image.format
    colour_key = "transparency" in image.info
    if source_format in ("JPEG", "PNG") and image.mode == "RGB" and not rotate \
            and not colour_key:
        return PreparedImage(data, source_format.lower(), stored[0], stored[1], notes)

    as_jpeg = source_format == "JPEG"
    try:
        image.load()
        if image.mode != "RGB":
            notes.append(f"converted {source_format} mode {image.mode} to RGB")
        elif colour_key:
            notes.append(f"flattened the {source_format}'s transparent colour onto white")
        elif not as_jpeg and source_format != "PNG":
            notes.append(f"re-encoded {source_format} as PNG")
        if rotate:
            image = ImageOps.exif_transpose(image)
        converted = _to_rgb(image)
    except (OSError, ValueError) as e:
        raise ImageProblem(f"cannot convert {path} to RGB: {e}") from None
    return PreparedImage(_encode(converted, as_jpeg), "jpeg" if as_jpeg else "png",
                         converted.width, converted.height, notes)
