"""Image summaries: ground truth and detections side by side on a few fixed validation images."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from odapi.data.examples import DetectionExample
from odapi.labelmap import LabelMap
from odapi.visualize import draw_boxes

SCORE_THRESHOLD = 0.3
MAX_SIDE = 480


@dataclass
class Detections:
    boxes: np.ndarray  # [N, 4] normalized ymin, xmin, ymax, xmax
    classes: np.ndarray  # [N] class ids
    scores: np.ndarray  # [N]


def side_by_side(example: DetectionExample, detections: Detections,
                 label_map: LabelMap) -> np.ndarray:
    """An RGB array: the image with its ground truth (left) and with detections (right)."""
    image = Image.open(io.BytesIO(example.encoded)).convert("RGB")
    scale = MAX_SIDE / max(image.size)
    if scale < 1:
        image = image.resize((round(image.width * scale), round(image.height * scale)))
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
