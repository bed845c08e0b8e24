"""`odapi demo-data`: an offline synthetic detection dataset of coloured shapes.

Several shape classes, several objects per image, varied backgrounds and image sizes: enough to
exercise every step of the pipeline and to train a detector in minutes on a CPU. The same
images are annotated in every format odapi reads, each in its usual layout.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from odapi.data.annotations import AnnotatedImage, Box
from odapi.data.boxes import iou
from odapi.data.formats import coco, tf_csv, tutorial_csv, voc, yolo
from odapi.errors import OdapiError

CLASSES = ("circle", "square", "triangle")
FORMATS = ("tutorial-csv", "voc", "coco", "tf-csv", "yolo")
DEFAULT_FORMATS = ("tutorial-csv", "voc")


def _background(rng: random.Random, width: int, height: int) -> Image.Image:
    kind = rng.choice(("solid", "gradient", "noise", "stripes"))
    base = np.array([rng.randint(0, 255) for _ in range(3)], dtype=np.float32)
    if kind == "solid":
        pixels = np.broadcast_to(base, (height, width, 3)).copy()
    elif kind == "gradient":
        other = np.array([rng.randint(0, 255) for _ in range(3)], dtype=np.float32)
        t = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
        pixels = np.broadcast_to(base * (1 - t) + other * t, (height, width, 3)).copy()
    elif kind == "noise":
        noise = np.random.default_rng(rng.randrange(2**32)).normal(0, 30, (height, width, 3))
        pixels = base + noise
    else:
        period = rng.randint(8, 32)
        stripes = ((np.arange(width) // period) % 2)[None, :, None].astype(np.float32)
        pixels = np.broadcast_to(base * (0.6 + 0.4 * stripes), (height, width, 3)).copy()
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple, color: tuple) -> tuple:
    """Draw `shape` filling `box`; return the shape's exact bounding box."""
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "square":
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=color)
    else:
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=color)
    return box


def _contrasting(rng: random.Random, image: Image.Image, box: tuple) -> tuple:
    region = np.asarray(image.crop(box), dtype=np.float32).reshape(-1, 3).mean(axis=0)
    while True:
        color = tuple(rng.randint(0, 255) for _ in range(3))
        if np.abs(np.array(color) - region).sum() > 200:
            return color


def generate_image(rng: random.Random, min_size: int = 192, max_size: int = 320
                   ) -> tuple[Image.Image, list[Box]]:
    width, height = rng.randint(min_size, max_size), rng.randint(min_size, max_size)
    image = _background(rng, width, height)
    draw = ImageDraw.Draw(image)
    boxes: list[Box] = []
    placed: list[tuple] = []
    for _ in range(rng.randint(1, 4)):
        shape = rng.choice(CLASSES)
        for _attempt in range(20):
            w = rng.randint(int(0.15 * min(width, height)), int(0.4 * min(width, height)))
            h = w if shape != "triangle" else int(w * rng.uniform(0.75, 1.33))
            x0, y0 = rng.randint(0, width - w), rng.randint(0, height - h)
            box = (x0, y0, x0 + w, y0 + h)
            if all(iou(box, other) < 0.1 for other in placed):
                break
        else:
            continue
        _draw_shape(draw, shape, box, _contrasting(rng, image, box))
        placed.append(box)
        boxes.append(Box(shape, *map(float, box), where=""))
    return image, boxes


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def write_demo_dataset(out: Path, count: int = 300, seed: int = 0,
                       formats: tuple[str, ...] = DEFAULT_FORMATS) -> dict[str, Path]:
    """Generate `count` images into `out/images` and annotate them in each of `formats`.

    Returns, per format, the path to give `odapi convert`.
    """
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise OdapiError(f"unknown format(s) {', '.join(sorted(unknown))}; "
                         f"demo-data writes {', '.join(FORMATS)}")
    if count < 1:
        raise OdapiError("--count must be at least 1")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise OdapiError("the folder is not empty; demo-data writes into a new or empty folder",
                         where=str(out))
    rng = random.Random(seed)
    digits = max(6, len(str(count - 1)))
    images: list[AnnotatedImage] = []
    (out / "images").mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image, boxes = generate_image(rng)
        path = out / "images" / f"{index:0{digits}d}.jpg"
        image.save(path, "JPEG", quality=92)
        images.append(AnnotatedImage(path, str(path), boxes, declared_size=image.size))

    def moved(folder: Path) -> list[AnnotatedImage]:
        """The dataset with its images hard-linked under `folder`."""
        result = []
        for image in images:
            target = folder / image.image_path.name
            _link(image.image_path, target)
            result.append(AnnotatedImage(target, image.where, image.boxes,
                                         declared_size=image.declared_size))
        return result

    written: dict[str, Path] = {}
    if "tutorial-csv" in formats:
        written["tutorial-csv"] = out / "annotations.csv"
        tutorial_csv.write(images, written["tutorial-csv"])
    if "voc" in formats:
        written["voc"] = out / "voc"
        voc.write(moved(out / "voc" / "JPEGImages"), out / "voc" / "Annotations")
    if "coco" in formats:
        written["coco"] = out / "coco" / "annotations.json"
        coco.write(moved(out / "coco" / "images"), written["coco"])
    if "tf-csv" in formats:
        written["tf-csv"] = out / "tf-csv" / "_annotations.csv"
        tf_csv.write(moved(out / "tf-csv"), written["tf-csv"])
    if "yolo" in formats:
        written["yolo"] = out / "yolo" / "data.yaml"
        yolo.write(moved(out / "yolo" / "images"), written["yolo"], list(CLASSES))
    return written
