"""One image and its boxes as a tf.train.Example, with the keys the OD API and Model Garden read.

`make_example` turns an annotated image into a `DetectionExample` (reading and checking pixels);
`to_tf_example` / `from_tf_example` are the record encoding, used by convert, inspect and tests.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import tensorflow as tf

from odapi.data.annotations import Action, AnnotatedImage, Issue
from odapi.data.boxes import PlacedBox, place_boxes
from odapi.data.images import ImageProblem, prepare_image
from odapi.labelmap import LabelMap


@dataclass
class DetectionExample:
    encoded: bytes
    image_format: str
    width: int
    height: int
    filename: str
    source_id: str  # odapi writes integers: Model Garden's COCO evaluation parses it as one
    boxes: list[PlacedBox] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.encoded).hexdigest()


def make_example(image: AnnotatedImage, source_id: int, label_map: LabelMap,
                 verify_pixels: bool = False) -> tuple[DetectionExample | None, list[Issue]]:
    """Read and check one image and its boxes; None (with the reason) when it must be skipped."""
    try:
        prepared = prepare_image(image.image_path, image.declared_size, image.where,
                                 verify_pixels)
    except ImageProblem as e:
        return None, [Issue(image.where, str(e), Action.SKIPPED_IMAGE)]
    issues = [Issue(image.where, note, Action.NOTE) for note in prepared.notes]
    boxes, box_issues = place_boxes(image, prepared.width, prepared.height, label_map)
    issues += box_issues
    annotated = len(image.boxes) + image.skipped_boxes
    if annotated and not boxes:
        issues.append(Issue(image.where, f"none of its {annotated} box(es) is usable (see above);"
                            " skipped rather than kept as an image without objects",
                            Action.SKIPPED_IMAGE))
        return None, issues
    example = DetectionExample(prepared.encoded, prepared.image_format, prepared.width,
                               prepared.height, image.image_path.name, str(source_id), boxes)
    return example, issues


def to_tf_example(example: DetectionExample) -> tf.train.Example:
    """Fields are filled in place, which takes a third of the time of a Feature per key."""
    record = tf.train.Example()
    feature = record.features.feature
    boxes = example.boxes
    for key, kind, values in (
            ("image/encoded", "bytes_list", [example.encoded]),
            ("image/format", "bytes_list", [example.image_format.encode()]),
            ("image/height", "int64_list", [example.height]),
            ("image/width", "int64_list", [example.width]),
            ("image/filename", "bytes_list", [example.filename.encode()]),
            ("image/source_id", "bytes_list", [example.source_id.encode()]),
            ("image/key/sha256", "bytes_list", [example.sha256.encode()]),
            ("image/object/bbox/xmin", "float_list", [b.xmin for b in boxes]),
            ("image/object/bbox/xmax", "float_list", [b.xmax for b in boxes]),
            ("image/object/bbox/ymin", "float_list", [b.ymin for b in boxes]),
            ("image/object/bbox/ymax", "float_list", [b.ymax for b in boxes]),
            ("image/object/class/label", "int64_list", [b.class_id for b in boxes]),
            ("image/object/class/text", "bytes_list", [b.label.encode() for b in boxes]),
            ("image/object/area", "float_list", [b.area for b in boxes]),
            ("image/object/is_crowd", "int64_list", [int(b.is_crowd) for b in boxes]),
            ("image/object/difficult", "int64_list", [int(b.difficult) for b in boxes])):
        typed = getattr(feature[key], kind)
        typed.SetInParent()  # an empty list keeps its type, as readers expect
        typed.value.extend(values)
    return record


def from_tf_example(serialized: bytes) -> DetectionExample:
    """Parse a record written by odapi or by the OD API's tools (missing keys read as empty)."""
    features = tf.train.Example.FromString(serialized).features.feature

    def values(key: str) -> list:
        if key not in features:
            return []
        f = features[key]
        return list(getattr(f, f.WhichOneof("kind")).value) if f.WhichOneof("kind") else []

    def first(key: str, default=None):
        found = values(key)
        return found[0] if found else default

    texts = [t.decode("utf-8", "replace") for t in values("image/object/class/text")]
    labels = values("image/object/class/label")
    xmin, xmax = values("image/object/bbox/xmin"), values("image/object/bbox/xmax")
    ymin, ymax = values("image/object/bbox/ymin"), values("image/object/bbox/ymax")
    areas = values("image/object/area")
    crowd, difficult = values("image/object/is_crowd"), values("image/object/difficult")
    width, height = int(first("image/width", 0)), int(first("image/height", 0))
    boxes = []
    for i in range(len(xmin)):
        area = areas[i] if i < len(areas) else (xmax[i] - xmin[i]) * (ymax[i] - ymin[i]) \
            * width * height
        boxes.append(PlacedBox(
            texts[i] if i < len(texts) else "", int(labels[i]) if i < len(labels) else 0,
            xmin[i], ymin[i], xmax[i], ymax[i], area,
            bool(difficult[i]) if i < len(difficult) else False,
            bool(crowd[i]) if i < len(crowd) else False))
    return DetectionExample(
        encoded=first("image/encoded", b""),
        image_format=first("image/format", b"").decode(),
        width=width,
        height=height,
        filename=first("image/filename", b"").decode("utf-8", "replace"),
        source_id=first("image/source_id", b"").decode("utf-8", "replace"),
        boxes=boxes,
    )
