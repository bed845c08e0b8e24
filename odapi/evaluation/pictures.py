"""Image summaries: ground truth and detections side by side on a few fixed validation images,
and the images a model gets most wrong with its errors marked."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from odapi.evaluation.confusion import ImageVerdict
from odapi.labelmap import LabelMap
from odapi.visualize import FALSE_COLOR, MISSED_COLOR, class_color, draw_boxes

if TYPE_CHECKING:  # odapi.data.examples imports TensorFlow; predict draws without it
    from odapi.data.examples import DetectionExample

SCORE_THRESHOLD = 0.3
MAX_SIDE = 480


@dataclass
class Detections:
    boxes: np.ndarray  # [N, 4] normalized ymin, xmin, ymax, xmax
    classes: np.ndarray  # [N] class ids
    scores: np.ndarray  # [N]


def _decoded(encoded: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(encoded)).convert("RGB")
    scale = MAX_SIDE / max(image.size)
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)))
    return image


def errors_picture(encoded: bytes, verdict: ImageVerdict, label_map: LabelMap) -> np.ndarray:
    """An RGB array of the encoded image, at most MAX_SIDE wide or high, with its verdict
    drawn (`draw_verdict`); the verdict's boxes are in the image's own pixels."""
    with Image.open(io.BytesIO(encoded)) as image:
        size = image.size
        return np.asarray(draw_verdict(_decoded(encoded), size, verdict, label_map))


def draw_verdict(image: Image.Image, size: tuple[int, int], verdict: ImageVerdict,
                 label_map: LabelMap) -> Image.Image:
    """The image with what the model found in class colours, false and wrong-class detections
    in red and missed objects in white; `size` is (width, height) of the boxes' pixels."""
    names = label_map.names_by_id
    name = lambda annotation: names.get(annotation["category_id"],  # noqa: E731
                                        str(annotation["category_id"]))
    width, height = size
    boxes, labels, classes, scores, colors = [], [], [], [], []

    def add(annotation: dict, label: str, color, score: float | None = None) -> None:
        x, y, w, h = annotation["bbox"]
        boxes.append((x / width, y / height, (x + w) / width, (y + h) / height))
        labels.append(label)
        classes.append(int(annotation["category_id"]))
        scores.append(score)
        colors.append(color)

    confused = set(verdict.confused)
    for d, detection in enumerate(verdict.found):
        score = float(detection["score"])
        if d in confused:
            truth = name(verdict.truth[verdict.pairs[d]])
            add(detection, f"{name(detection)} {score:.2f}, is {truth}", FALSE_COLOR)
        elif d in verdict.pairs:
            add(detection, name(detection), class_color(int(detection["category_id"])), score)
        elif d not in verdict.on_crowd:
            add(detection, f"false {name(detection)}", FALSE_COLOR, score)
    for t in verdict.missed:
        add(verdict.truth[t], f"missed {name(verdict.truth[t])}", MISSED_COLOR)
    return draw_boxes(image, boxes, labels, classes, scores=scores, colors=colors)


def side_by_side(example: DetectionExample, detections: Detections,
                 label_map: LabelMap) -> np.ndarray:
    """An RGB array: the image with its ground truth (left) and with detections (right)."""
    image = _decoded(example.encoded)
    names = label_map.names_by_id
    truth = draw_boxes(image, [(b.xmin, b.ymin, b.xmax, b.ymax) for b in example.boxes],
                       [names.get(b.class_id, str(b.class_id)) for b in example.boxes],
                       [b.class_id for b in example.boxes])
    keep = detections.scores >= SCORE_THRESHOLD
    boxes = [(x0, y0, x1, y1) for y0, x0, y1, x1 in detections.boxes[keep]]
    classes = [int(c) for c in detections.classes[keep]]
    found = draw_boxes(image, boxes, [names.get(c, str(c)) for c in classes], classes,
                       scores=[float(s) for s in detections.scores[keep]])
    gap = 8
    canvas = Image.new("RGB", (image.width * 2 + gap, image.height), (40, 40, 40))
    canvas.paste(truth, (0, 0))
    canvas.paste(found, (image.width + gap, 0))
    return np.asarray(canvas)
