"""YOLO txt: a `class xc yc w h` line per box (normalized, 0-based class), a .txt per image.

Class names come from `data.yaml` (Ultralytics, Roboflow: `names` and the `train`/`val`/`test`
image folders) or from `classes.txt` (LabelImg, CVAT) next to the images. Labels live beside each
image or in the `labels/` folder that mirrors `images/`; an image without a label file is a
background, as in Ultralytics.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from odapi.data.annotations import (
    Action,
    AnnotatedImage,
    Box,
    Issue,
    ParsedDataset,
    split_from_name,
    split_from_path,
)
from odapi.data.formats.common import ReadOptions, parse_float, read_text
from odapi.data.formats.locate import is_image
from odapi.errors import OdapiError

NAME = "yolo"
DESCRIPTION = "YOLO txt (class xc yc w h, normalized) with data.yaml or classes.txt"
ANCHORS = ("data.yaml", "data.yml", "classes.txt", "obj.names")


def sniff(path: Path) -> bool:
    return path.name.lower() in ANCHORS


def read(files: list[Path], root: Path, options: ReadOptions) -> ParsedDataset:
    dataset = ParsedDataset(images=[])
    for anchor in files:
        try:
            names = _class_names(anchor)
            image_sets = _image_sets(anchor, root, options)
        except OdapiError as e:
            dataset.issues.append(Issue(e.where or str(anchor), e.message, Action.SKIPPED_FILE))
            continue
        for split, image_paths in image_sets:
            for image_path in image_paths:
                _read_labels(image_path, split, names, anchor, options, dataset)
    return dataset


def _class_names(anchor: Path) -> list[str]:
    text = read_text(anchor)
    if anchor.suffix.lower() in (".yaml", ".yml"):
        try:
            config = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{anchor}:{mark.line + 1}" if mark else str(anchor)
            raise OdapiError(f"not valid YAML: {getattr(e, 'problem', e)}", where=where) from None
        names = config.get("names") if isinstance(config, dict) else None
        if isinstance(names, dict):
            try:
                names = [names[i] for i in range(len(names))]
            except KeyError:
                raise OdapiError("`names` must map 0..N-1 to class names", str(anchor)) from None
        if not isinstance(names, list) or not names:
            raise OdapiError("no `names` list of class names; add `names: [cat, dog]`",
                             where=str(anchor))
        return [str(n) for n in names]
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise OdapiError("the file is empty; expected one class name per line", str(anchor))
    return names


def _image_sets(anchor: Path, root: Path, options: ReadOptions):
    """(split, image paths) pairs: data.yaml's split entries, else every image under the anchor."""
    base = anchor.parent
    if anchor.suffix.lower() in (".yaml", ".yml"):
        config = yaml.safe_load(read_text(anchor)) or {}
        if config.get("path"):
            base = (anchor.parent / str(config["path"])).resolve()
        entries = [(key, config[key]) for key in ("train", "val", "valid", "test")
                   if config.get(key)]
        if entries:
            sets = []
            for key, value in entries:
                paths = []
                for entry in value if isinstance(value, list) else [value]:
                    paths.extend(_images_of(_locate(str(entry), base, anchor), anchor))
                sets.append((split_from_name(key), paths))
            return sets
    folder = options.images or base
    images = sorted(_walk_images(folder))
    split = split_from_path(anchor, root)
    if split is None:  # classes.txt at the top of a pre-split tree: split by image folder
        return [(split_from_path(p, folder), [p]) for p in images]
    return [(split, images)]


def _locate(entry: str, base: Path, anchor: Path) -> Path:
    """A data.yaml path; Roboflow writes `../train/images` that really means `train/images`."""
    candidates = [base / entry, anchor.parent / entry]
    stripped = entry
    while stripped.startswith("../"):
        stripped = stripped[3:]
        candidates += [base / stripped, anchor.parent / stripped]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise OdapiError(f"image folder {entry!r} not found (looked in {base})", where=str(anchor))


def _images_of(location: Path, anchor: Path) -> list[Path]:
    if location.is_dir():
        return sorted(_walk_images(location))
    # a text file listing image paths, one per line, relative to the list's folder
    return [location.parent / line.strip() for line in read_text(location).splitlines()
            if line.strip()]


def _walk_images(folder: Path):
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in filenames:
            if is_image(Path(name)):
                yield Path(dirpath) / name


def _label_file(image_path: Path) -> Path:
    """Ultralytics' rule: the last `images` folder becomes `labels`; else the .txt beside it."""
    parts = list(image_path.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            mirrored = Path(*parts[:i], "labels", *parts[i + 1:]).with_suffix(".txt")
            if mirrored.exists():
                return mirrored
            break
    return image_path.with_suffix(".txt")


def _read_labels(image_path: Path, split, names, anchor: Path, options, dataset: ParsedDataset):
    label_file = _label_file(image_path)
    image = AnnotatedImage(image_path, str(label_file), split=split)
    if label_file.exists():
        try:
            text = read_text(label_file)
        except OdapiError as e:
            dataset.issues.append(Issue(e.where or str(label_file), e.message,
                                        Action.SKIPPED_IMAGE))
            return
        for line_number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{label_file}:{line_number}"
            fields = line.split()
            values = [parse_float(v) for v in fields[1:]]
            if len(fields) != 5 or None in values:
                image.skipped_boxes += 1
                dataset.issues.append(Issue(
                    where, f"expected `class xc yc w h` (5 numbers), found {line.strip()!r}",
                    Action.SKIPPED_BOX))
                continue
            try:
                class_index = int(fields[0])
            except ValueError:
                class_index = -1
            if not 0 <= class_index < len(names):
                image.skipped_boxes += 1
                dataset.issues.append(Issue(
                    where, f"class {fields[0]!r} is not an index into the {len(names)} names "
                    f"of {anchor.name} (0..{len(names) - 1})", Action.SKIPPED_BOX))
                continue
            xc, yc, w, h = values
            image.boxes.append(Box(names[class_index], xc - w / 2, yc - h / 2, xc + w / 2,
                                   yc + h / 2, where))
    dataset.add([image], label_file, options.coords, expected="normalized")


def write(images: list[AnnotatedImage], data_yaml: Path, names: list[str]) -> None:
    """Write Ultralytics-style labels (images/ -> labels/) and a data.yaml naming `names`."""
    index = {name: i for i, name in enumerate(names)}
    for image in images:
        width, height = image.declared_size
        lines = []
        for b in image.boxes:
            xc, yc = (b.xmin + b.xmax) / 2 / width, (b.ymin + b.ymax) / 2 / height
            w, h = (b.xmax - b.xmin) / width, (b.ymax - b.ymin) / height
            lines.append(f"{index[b.label]} {xc:.9f} {yc:.9f} {w:.9f} {h:.9f}\n")
        label = _label_path_for_writing(image.image_path)
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("".join(lines), "utf-8")
    data_yaml.write_text(yaml.safe_dump({"names": list(names)}, sort_keys=False), "utf-8")


def _label_path_for_writing(image_path: Path) -> Path:
    parts = list(image_path.parts)
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        return Path(*parts[:i], "labels", *parts[i + 1:]).with_suffix(".txt")
    return image_path.with_suffix(".txt")
