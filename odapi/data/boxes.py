"""Boxes against the real image: coordinate frame, corner order, clipping, duplicates, classes."""

from __future__ import annotations

from dataclasses import dataclass

from odapi.data.annotations import Action, AnnotatedImage, Issue
from odapi.labelmap import LabelMap

EDGE_TOLERANCE = 0.02  # a box may overhang an edge by 2% of the side (at least 2 px) and be clipped
ROUNDING_PX = 0.01  # overhangs below this are float rounding (YOLO's centre form), clipped quietly


def iou(a, b) -> float:
    """Intersection over union of two boxes given as (min, min, max, max) in one order, either
    (xmin, ymin, xmax, ymax) or the OD API's (ymin, xmin, ymax, xmax)."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * \
        max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def coco_bbox(box, height: int, width: int) -> list[float]:
    """A normalized [ymin, xmin, ymax, xmax] box as COCO's pixel [x, y, width, height]."""
    ymin, xmin, ymax, xmax = (float(v) * side for v, side in
                              zip(box, (height, width, height, width), strict=True))
    return [xmin, ymin, xmax - xmin, ymax - ymin]


def in_original_image(boxes, image_info):
    """Model Garden's detection boxes, in pixels of the resized model input, as [0, 1] of the
    original image, clipped: what the OD API returns. Batched (boxes [B, N, 4] ymin, xmin,
    ymax, xmax; image_info [B, 4, 2]: original size, scaled size, scale, offset); TensorFlow
    ops, so it runs in a serving graph as on arrays."""
    import tensorflow as tf

    image_info = tf.cast(image_info, tf.float32)
    scale = tf.tile(image_info[:, 2:3, :], [1, 1, 2])
    size = tf.tile(image_info[:, 0:1, :], [1, 1, 2])
    return tf.clip_by_value(tf.cast(boxes, tf.float32) / scale / size, 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class PlacedBox:
    """A box ready for a record: normalized to [0, 1] in the written image's frame."""

    label: str
    class_id: int
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    area: float  # in pixels, as COCO evaluation expects
    difficult: bool
    is_crowd: bool


def place_boxes(image: AnnotatedImage, width: int, height: int,
                label_map: LabelMap) -> tuple[list[PlacedBox], list[Issue]]:
    """Check every box of `image` against a width x height image; keep the usable ones."""
    placed: list[PlacedBox] = []
    issues: list[Issue] = []
    first_seen: dict[tuple, str] = {}
    sx, sy = (width, height) if image.coords == "normalized" else (1.0, 1.0)
    tol_x = max(2.0, EDGE_TOLERANCE * width)
    tol_y = max(2.0, EDGE_TOLERANCE * height)

    for box in image.boxes:
        x0, y0, x1, y1 = box.xmin * sx, box.ymin * sy, box.xmax * sx, box.ymax * sy
        if x0 >= x1 or y0 >= y1:
            axis = "xmin >= xmax" if x0 >= x1 else "ymin >= ymax"
            issues.append(Issue(box.where, f"{axis} ({_fmt(box)}): the box is empty or its "
                                "corners are swapped; fix the coordinates", Action.SKIPPED_BOX))
            continue
        if x0 < -tol_x or y0 < -tol_y or x1 > width + tol_x or y1 > height + tol_y:
            issues.append(Issue(
                box.where, f"the box ({_fmt(box)}) lies outside the {width}x{height} image by "
                "more than the 2% odapi clips; are these coordinates for another image size?",
                Action.SKIPPED_BOX))
            continue
        cx0, cy0 = min(max(x0, 0.0), width), min(max(y0, 0.0), height)
        cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
        if cx0 >= cx1 or cy0 >= cy1:
            issues.append(Issue(box.where, f"the box ({_fmt(box)}) has no area inside the image",
                                Action.SKIPPED_BOX))
            continue
        if max(abs(cx0 - x0), abs(cy0 - y0), abs(cx1 - x1), abs(cy1 - y1)) > ROUNDING_PX:
            issues.append(Issue(box.where, f"clipped the box ({_fmt(box)}) to the "
                                f"{width}x{height} image", Action.FIXED))
        class_id = label_map.id_of(box.label)
        if class_id is None:
            issues.append(Issue(box.where, f"class {box.label!r} is not in the label map; add it "
                                "there or leave out --label-map", Action.SKIPPED_BOX))
            continue
        result = PlacedBox(box.label, class_id, cx0 / width, cy0 / height, cx1 / width,
                           cy1 / height, (cx1 - cx0) * (cy1 - cy0), box.difficult, box.is_crowd)
        key = (box.label, *(round(v, 6) for v in (result.xmin, result.ymin, result.xmax,
                                                   result.ymax)))
        if key in first_seen:
            issues.append(Issue(box.where, f"duplicate of the {box.label!r} box at "
                                f"{first_seen[key]}; kept one", Action.SKIPPED_BOX))
            continue
        first_seen[key] = box.where
        placed.append(result)
    return placed, issues


def _fmt(box) -> str:
    return f"xmin={box.xmin:g} ymin={box.ymin:g} xmax={box.xmax:g} ymax={box.ymax:g}"
