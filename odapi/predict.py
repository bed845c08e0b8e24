"""`odapi predict`: run an exported detector (any of its models: `detectors`) on images,
folders and globs.

Writes annotated images, `detections.json` (COCO results format) and `detections.csv`. With
ground truth in any format `odapi convert` reads, it also reports COCO AP and draws what the
model missed and what it found falsely in their own colours.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from odapi.atomic import atomic_write_text
from odapi.data.boxes import coco_bbox
from odapi.data.formats.locate import is_image
from odapi.detectors import export_folder, load_detector, read_manifest
from odapi.errors import OdapiError
from odapi.evaluation.confusion import judge_image
from odapi.evaluation.curves import ScoreThresholds
from odapi.evaluation.pictures import draw_verdict
from odapi.labelmap import LabelMap
from odapi.progress import progress_bar
from odapi.visualize import draw_boxes


@dataclass
class ImagePrediction:
    path: Path
    width: int
    height: int
    boxes: np.ndarray  # [N, 4] normalized ymin, xmin, ymax, xmax
    scores: np.ndarray
    classes: np.ndarray  # label-map ids


@dataclass
class PredictReport:
    out: Path
    images: int = 0
    detections: int = 0  # at or above the threshold
    unreadable: list[str] = field(default_factory=list)
    thresholds: ScoreThresholds | None = None
    class_names: dict[int, str] = field(default_factory=dict)
    metrics: dict[str, float] | None = None  # with ground truth
    per_class: dict[str, dict[str, float]] | None = None
    figures: list[str] = field(default_factory=list)  # confusion matrix, PR and F1 curves


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Image files, folders (their images, recursively) and globs, in a stable order."""
    paths: list[Path] = []
    for item in inputs:
        text = str(item)
        if any(c in text for c in "*?["):
            matched = sorted(Path(p) for p in glob.glob(text, recursive=True))
        elif Path(text).is_dir():
            matched = sorted(p for p in Path(text).rglob("*") if p.is_file() and is_image(p))
        else:
            matched = [Path(text)]  # a missing file is reported when it is read
        if not matched:
            raise OdapiError("matches no images", where=text)
        paths.extend(matched)
    return list(dict.fromkeys(paths))


def _common_folder(paths: list[Path]) -> str:
    """The folder all inputs are in. Each annotated picture keeps its name and its folders
    below it (`a/x.jpg`, `b/x.jpg` and `x.png` each have their own), and ground truth looks
    for its images there first."""
    return os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def _batches(paths: list[Path], size: int, report: PredictReport, log):
    """Readable images in batches of equal size (a tensor batch needs one shape)."""
    pending: dict[tuple, list] = {}
    for path in paths:
        try:
            pixels = _load(path)
        except (OSError, UnidentifiedImageError, ValueError) as e:
            report.unreadable.append(f"{path}: {e}")
            log(f"skipped {path}: cannot read it as an image ({e})")
            continue
        group = pending.setdefault(pixels.shape, [])
        group.append((path, pixels))
        if len(group) == size:
            yield pending.pop(pixels.shape)
    yield from pending.values()


def score_thresholds(model: Path, threshold: float | str, label_map: LabelMap
                     ) -> ScoreThresholds:
    """`threshold`, or for "best" the scores with the best F1 per class (and overall, for the
    others) that the exported checkpoint's evaluation found."""
    if threshold != "best":
        return ScoreThresholds(float(threshold))
    folder = export_folder(model)
    found = (read_manifest(folder).get("eval") or {}).get("thresholds")
    if not found:
        raise OdapiError("the export has no evaluation to take the best threshold from; "
                         "evaluate the run (`odapi eval`), export it again, or give "
                         "--threshold a number", where=str(folder / "manifest.json"))
    ids = {name: class_id for class_id, name in label_map.names_by_id.items()}
    return ScoreThresholds(float(found["score"]), {ids[name]: float(t) for name, t in
                                                   found["per_class"].items() if name in ids})


def _draw(prediction: ImagePrediction, pixels: np.ndarray, label_map: LabelMap,
          thresholds: ScoreThresholds, truth: list[tuple[int, np.ndarray]] | None
          ) -> Image.Image:
    """The detections kept; with ground truth, judged as evaluation judges them (worst
    images): false and wrong-class ones in red, missed objects in white."""
    keep = thresholds.keep(prediction.classes, prediction.scores)
    image = Image.fromarray(pixels)
    if truth is not None:
        size = (prediction.width, prediction.height)
        found = [{"category_id": int(c), "score": float(s), "bbox": _pixel_box(b, size)}
                 for b, c, s in zip(prediction.boxes[keep], prediction.classes[keep],
                                    prediction.scores[keep], strict=True)]
        objects = [{"category_id": cls, "bbox": _pixel_box(box, size)} for cls, box in truth]
        return draw_verdict(image, size, judge_image(objects, found), label_map)
    names = label_map.names_by_id
    classes = [int(c) for c in prediction.classes[keep]]
    return draw_boxes(image, [(b[1], b[0], b[3], b[2]) for b in prediction.boxes[keep]],
                      [names.get(c, str(c)) for c in classes], classes,
                      scores=[float(s) for s in prediction.scores[keep]])


def _pixel_box(box: np.ndarray, size: tuple[int, int]) -> list[float]:
    """A normalized [ymin, xmin, ymax, xmax] box as COCO's pixel [x, y, width, height]."""
    return coco_bbox(box, size[1], size[0])


def predict(model: Path, inputs: Iterable[str | Path], out: Path,
            threshold: float | str = 0.5, max_detections: int = 100, batch_size: int = 8,
            ground_truth: Path | None = None, progress: bool = True,
            log: Callable[[str], None] = print) -> PredictReport:
    """Detect, draw and list; `threshold` is a score or "best" (the export's evaluation's)."""
    detector = load_detector(model)
    thresholds = score_thresholds(model, threshold, detector.label_map)
    paths = expand_inputs(inputs)
    base = _common_folder(paths)
    pictures = {path: Path(os.path.relpath(os.path.abspath(path), base)) for path in paths}
    truth = _GroundTruth(ground_truth, detector.label_map, base) if ground_truth else None
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    report = PredictReport(out, thresholds=thresholds,
                           class_names=detector.label_map.names_by_id)
    coco_results, rows, predictions = [], [], []
    with progress_bar(len(paths), "predict", "img", enabled=progress) as bar:
        for batch in _batches(paths, batch_size, report, log):
            results = detector([pixels for _, pixels in batch])
            for (path, pixels), result in zip(batch, results, strict=True):
                height, width = pixels.shape[:2]
                prediction = ImagePrediction(path, width, height,
                                             result["boxes"][:max_detections],
                                             result["scores"][:max_detections],
                                             result["classes"][:max_detections])
                predictions.append(prediction)
                image_truth = truth.boxes_for(path, width, height) if truth else None
                picture = _draw(prediction, pixels, detector.label_map, thresholds,
                                image_truth)
                target = out / "images" / pictures[path]
                target.parent.mkdir(parents=True, exist_ok=True)
                picture.save(target, quality=95)
                image_id = truth.image_id(path) if truth else len(predictions)
                _list(prediction, image_id, detector.label_map, thresholds, truth is not None,
                      rows, coco_results)
                report.images += 1
                bar.update(1)
        bar.update(len(report.unreadable))
    report.detections = len(rows)
    _write_lists(out, coco_results, rows)
    if truth is not None:
        _write_evaluation(report, truth.evaluate(predictions, coco_results, detector.label_map,
                                                 thresholds), detector.label_map)
    return report


def _list(prediction: ImagePrediction, image_id: int, label_map: LabelMap,
          thresholds: ScoreThresholds, every: bool, rows: list, coco_results: list) -> None:
    """The image's detections as CSV rows (those kept) and COCO results (every one with
    `every`: AP needs them all)."""
    size = np.array([prediction.height, prediction.width] * 2)
    kept = thresholds.keep(prediction.classes, prediction.scores)
    for box, score, cls, keep in zip(prediction.boxes, prediction.scores, prediction.classes,
                                     kept, strict=True):
        ymin, xmin, ymax, xmax = (float(v) for v in box * size)
        if keep:
            rows.append([str(prediction.path), prediction.width, prediction.height,
                         label_map.names_by_id.get(int(cls), int(cls)), f"{score:.4f}",
                         f"{xmin:.1f}", f"{ymin:.1f}", f"{xmax:.1f}", f"{ymax:.1f}"])
        if keep or every:
            coco_results.append({"image_id": image_id, "file_name": str(prediction.path),
                                 "category_id": int(cls), "score": float(score),
                                 "bbox": [xmin, ymin, xmax - xmin, ymax - ymin]})


def _write_lists(out: Path, coco_results: list[dict], rows: list[list]) -> None:
    atomic_write_text(out / "detections.json", json.dumps(coco_results))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["filename", "width", "height", "class", "score", "xmin", "ymin", "xmax",
                     "ymax"])
    writer.writerows(rows)
    atomic_write_text(out / "detections.csv", buffer.getvalue())


def _write_evaluation(report: PredictReport, result, label_map: LabelMap) -> None:
    """AP, the confusion matrix at the thresholds used, and the PR and F1 curves."""
    from odapi.evaluation.figures import render, write_figures

    report.metrics = result.metrics
    report.per_class = {label_map.names_by_id.get(i, str(i)): v
                        for i, v in result.per_class.items()}
    atomic_write_text(report.out / "metrics.json", json.dumps(
        {"metrics": report.metrics, "per_class": report.per_class}, indent=2))
    report.figures = write_figures(report.out, render(result.confusion, result.curves))


class _GroundTruth:
    """Annotations read by odapi's converter, checked the same way, keyed by image."""

    def __init__(self, source: Path, label_map: LabelMap, images: str):
        from odapi.data.formats import ReadOptions, read_dataset

        _, parsed = read_dataset(Path(source), ReadOptions(images=Path(images)))
        self.images = {image.image_path.resolve(): image for image in parsed.images}
        self.by_name = {image.image_path.name: image for image in parsed.images}
        self.label_map = label_map
        self.ids: dict[Path, int] = {}

    def _find(self, path: Path):
        return self.images.get(path.resolve()) or self.by_name.get(path.name)

    def image_id(self, path: Path) -> int:
        return self.ids.setdefault(path, len(self.ids) + 1)

    def boxes_for(self, path: Path, width: int, height: int) -> list[tuple[int, np.ndarray]]:
        from odapi.data.boxes import place_boxes

        annotated = self._find(path)
        if annotated is None:
            return []
        placed, _ = place_boxes(annotated, width, height, self.label_map)
        return [(b.class_id, np.array([b.ymin, b.xmin, b.ymax, b.xmax])) for b in placed]

    def evaluate(self, predictions: list[ImagePrediction], results: list[dict],
                 label_map: LabelMap, thresholds: ScoreThresholds):
        """COCO AP, curves and confusion matrix of the detections against the ground truth
        of the predicted images."""
        from odapi.evaluation.coco import evaluate_detections

        images, annotations = [], []
        for prediction in predictions:
            image_id = self.image_id(prediction.path)
            images.append({"id": image_id, "width": prediction.width,
                           "height": prediction.height})
            for cls, box in self.boxes_for(prediction.path, prediction.width, prediction.height):
                bbox = coco_bbox(box, prediction.height, prediction.width)
                annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                    "category_id": cls, "bbox": bbox,
                                    "area": bbox[2] * bbox[3], "iscrowd": 0})
        if not annotations:
            raise OdapiError("none of the predicted images has ground truth in the given "
                             "annotations; check that they name the same image files")
        return evaluate_detections(images, annotations, results, label_map.names_by_id,
                                   thresholds)
