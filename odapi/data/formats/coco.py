"""COCO JSON (Roboflow, CVAT, Label Studio): `images`, `annotations`, `categories`.

Boxes are `[x, y, width, height]` in pixels. Category ids may be sparse; a category that no
annotation uses (Roboflow's id-0 placeholder) stays out of the label map. Images without
annotations become backgrounds.
"""

from __future__ import annotations

import json
from pathlib import Path

from odapi.data.annotations import (
    Action,
    AnnotatedImage,
    Box,
    Issue,
    ParsedDataset,
    split_from_path,
)
from odapi.data.formats.common import ReadOptions, locate_image, read_each, read_text
from odapi.data.formats.locate import ImageLocator
from odapi.errors import OdapiError

NAME = "coco"
DESCRIPTION = "COCO JSON (Roboflow, CVAT, Label Studio) with images, annotations, categories"


def sniff(path: Path) -> bool:
    if path.suffix.lower() != ".json":
        return False
    try:
        with path.open("rb") as f:
            head = f.read(1 << 20)
    except OSError:
        return False
    return b'"images"' in head or b'"annotations"' in head or b'"categories"' in head


def read(files: list[Path], root: Path, options: ReadOptions) -> ParsedDataset:
    images = ImageLocator(root, options.images)
    return read_each(files, lambda path, dataset: _read_file(path, root, options, images,
                                                             dataset), images)


def _load(path: Path) -> dict:
    text = read_text(path)
    if not text.strip():
        raise OdapiError("the file is empty; expected a COCO JSON object", where=str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise OdapiError(f"not valid JSON: {e.msg}", where=f"{path}:{e.lineno}:{e.colno}") from None
    if not isinstance(data, dict):
        raise OdapiError("expected a JSON object with images, annotations and categories",
                         where=str(path))
    missing = [k for k in ("images", "annotations", "categories")
               if not isinstance(data.get(k), list)]
    if missing:
        raise OdapiError(f"no {' or '.join(missing)} list; this is not a COCO detection file",
                         where=str(path))
    return data


def _read_file(path: Path, root: Path, options: ReadOptions, locator: ImageLocator,
               dataset: ParsedDataset):
    data = _load(path)
    split = split_from_path(path, root)

    categories: dict[int, str] = {}
    for i, category in enumerate(data["categories"]):
        where = f"{path}: categories[{i}]"
        if not isinstance(category, dict) or not isinstance(category.get("id"), int) \
                or not str(category.get("name", "")).strip():
            raise OdapiError("each category needs an integer id and a name", where=where)
        categories[category["id"]] = str(category["name"]).strip()

    images: dict[int, AnnotatedImage] = {}
    seen_files: dict[str, str] = {}
    for i, entry in enumerate(data["images"]):
        where = f"{path}: images[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), int) \
                or not entry.get("file_name"):
            dataset.issues.append(Issue(where, "each image needs an integer id and a file_name",
                                        Action.SKIPPED_IMAGE))
            continue
        where = f"{where} (id {entry['id']})"
        if entry["id"] in images:
            dataset.issues.append(Issue(
                where, f"image id {entry['id']} is used twice; ids must be unique",
                Action.SKIPPED_IMAGE))
            continue
        file_name = str(entry["file_name"])
        if file_name in seen_files:
            dataset.issues.append(Issue(
                where, f"{file_name} is listed twice (first at {seen_files[file_name]}); "
                "merge the two entries", Action.SKIPPED_IMAGE))
            images[entry["id"]] = None  # its annotations are dropped with it, silently
            continue
        seen_files[file_name] = where
        image_path = locate_image(locator, dataset, where, file_name, path)
        if image_path is None:
            images[entry["id"]] = None  # reported; its annotations go with it
            continue
        width, height = entry.get("width"), entry.get("height")
        declared = (int(width), int(height)) \
            if isinstance(width, int | float) and isinstance(height, int | float) \
            and width > 0 and height > 0 else None
        images[entry["id"]] = AnnotatedImage(image_path, where, declared_size=declared,
                                             split=split)

    used: set[int] = set()
    for i, ann in enumerate(data["annotations"]):
        where = f"{path}: annotations[{i}]"
        if isinstance(ann, dict) and "id" in ann:
            where += f" (id {ann['id']})"
        if not isinstance(ann, dict) or not isinstance(ann.get("image_id"), int) \
                or ann["image_id"] not in images:
            dataset.issues.append(Issue(
                where, "refers to an image id that is not in `images`", Action.SKIPPED_BOX))
            continue
        image = images[ann["image_id"]]
        if image is None:
            continue
        bbox = ann.get("bbox")
        if not isinstance(ann.get("category_id"), int) or ann["category_id"] not in categories:
            image.skipped_boxes += 1
            dataset.issues.append(Issue(
                where, f"category_id {ann.get('category_id')!r} is not in `categories`",
                Action.SKIPPED_BOX))
            continue
        if not (isinstance(bbox, list) and len(bbox) == 4
                and all(isinstance(v, int | float) for v in bbox)):
            image.skipped_boxes += 1
            dataset.issues.append(Issue(
                where, f"bbox must be [x, y, width, height] numbers, found {bbox!r}",
                Action.SKIPPED_BOX))
            continue
        x, y, w, h = (float(v) for v in bbox)
        used.add(ann["category_id"])
        image.boxes.append(Box(categories[ann["category_id"]], x, y, x + w, y + h, where,
                               is_crowd=bool(ann.get("iscrowd", 0))))

    unused = sorted(set(categories) - used)
    if unused:
        names = ", ".join(f"{categories[c]!r} (id {c})" for c in unused)
        dataset.notes.append(f"{path}: categories without boxes are left out: {names}")
    dataset.add([image for image in images.values() if image is not None], path, options.coords)


def write(images: list[AnnotatedImage], path: Path) -> None:
    """Write a COCO detection file; category ids in first-seen order, starting at 1."""
    categories: dict[str, int] = {}
    entries, annotations = [], []
    for image_id, image in enumerate(images, start=1):
        width, height = image.declared_size
        entries.append({"id": image_id, "file_name":
                        image.image_path.relative_to(path.parent).as_posix(),
                        "width": width, "height": height})
        for b in image.boxes:
            category = categories.setdefault(b.label, len(categories) + 1)
            w, h = b.xmax - b.xmin, b.ymax - b.ymin
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": category, "bbox": [b.xmin, b.ymin, w, h],
                                "area": w * h, "iscrowd": int(b.is_crowd)})
    data = {"images": entries, "annotations": annotations,
            "categories": [{"id": i, "name": n} for n, i in categories.items()]}
    path.write_text(json.dumps(data, indent=1), "utf-8")
