"""Every model of an export measured the same way before the export is declared done: COCO AP50
and AP on the run's validation images, file size and median latency per image on this machine.
A model whose AP50 falls more than its tolerance below the SavedModel's fails the export."""

from __future__ import annotations

import io
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from odapi.data.records import read_records, record_files
from odapi.errors import OdapiError

if TYPE_CHECKING:  # odapi.data.examples imports TensorFlow; the CLI reads TOLERANCE without it
    from odapi.data.examples import DetectionExample

# AP50 a model may lose against the SavedModel, by precision (Ultralytics' benchmark and the
# OD API's TFLite guide expect int8 to cost a few points, float conversions almost nothing)
TOLERANCE = {"float32": 0.02, "fp16": 0.02, "dynamic": 0.05, "int8": 0.05}


@dataclass
class Measurement:
    file: str  # in the export folder
    runtime: str  # TensorFlow, LiteRT, TensorFlow Lite with Flex
    precision: str  # float32, fp16, dynamic, int8
    size_mb: float
    AP50: float
    AP: float
    ms_per_image: float
    tolerance: float | None = None  # AP50 it may lose; None for the reference

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class CheckImage:
    example: DetectionExample  # encoded: decoded for each model, as it is measured

    @property
    def pixels(self) -> np.ndarray:
        with Image.open(io.BytesIO(self.example.encoded)) as picture:
            return np.asarray(picture.convert("RGB"))


def check_images(params, count: int | None) -> tuple[list[CheckImage], str]:
    """The run's validation images (all, or the first `count`), else its training images;
    with which split they are."""
    from odapi.data.examples import from_tf_example

    split, files = "validation", record_files(params.task.validation_data.input_path)
    if not files:
        split, files = "training", record_files(params.task.train_data.input_path)
    if not files:
        raise OdapiError("no images to measure the exported models on: the run's records "
                         "are gone", where=str(params.task.validation_data.input_path))
    images = []
    for serialized in read_records(files):
        if count is not None and len(images) == count:
            break
        images.append(CheckImage(from_tf_example(serialized)))
    return images, split


def _ground_truth(images: list[CheckImage]) -> tuple[list[dict], list[dict]]:
    from odapi.data.boxes import coco_bbox

    coco_images, annotations = [], []
    for image_id, image in enumerate(images, start=1):
        height, width = image.example.height, image.example.width
        coco_images.append({"id": image_id, "width": width, "height": height})
        for box in image.example.boxes:
            bbox = coco_bbox([box.ymin, box.xmin, box.ymax, box.xmax], height, width)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": box.class_id, "bbox": bbox, "area": box.area,
                                "iscrowd": int(box.is_crowd)})
    return coco_images, annotations


def measure(detector, path: Path, images: list[CheckImage], runtime: str, precision: str,
            category_ids: list[int], reference: bool = False) -> Measurement:
    """One model on every check image, one at a time, the first call not timed."""
    from odapi.data.boxes import coco_bbox
    from odapi.evaluation.coco import evaluate_detections

    results, seconds = [], []
    detector([images[0].pixels])  # warm-up: first calls trace, allocate, pick kernels
    for image_id, image in enumerate(images, start=1):
        pixels = image.pixels
        started = time.perf_counter()
        found = detector([pixels])[0]
        seconds.append(time.perf_counter() - started)
        height, width = pixels.shape[:2]
        results += [{"image_id": image_id, "category_id": int(cls), "score": float(score),
                     "bbox": coco_bbox(box, height, width)}
                    for box, score, cls in zip(found["boxes"], found["scores"], found["classes"],
                                               strict=True)]
    metrics = evaluate_detections(*_ground_truth(images), results,
                                  {i: str(i) for i in category_ids}).metrics
    size = sum(p.stat().st_size for p in ([path] if path.is_file() else path.rglob("*"))
               if p.is_file())
    return Measurement(path.name, runtime, precision, round(size / 2**20, 2),
                       round(metrics["AP50"], 4), round(metrics["AP"], 4),
                       round(1000 * statistics.median(seconds), 1),
                       None if reference else TOLERANCE[precision])


def measure_file(path: Path, runtime: str, precision: str, model_dir: Path,
                 count: int | None) -> Measurement:
    """One exported model file measured, in the worker `measure_files` runs it in."""
    from odapi.detectors import OnnxDetector, TFLiteDetector
    from odapi.model_dir.manifest import load_run
    from odapi.tflite import fitting

    params, label_map, _ = load_run(model_dir)
    images, _ = check_images(params, count)
    detector = OnnxDetector(path, label_map) if path.suffix == ".onnx" else \
        TFLiteDetector(path, label_map, *fitting(params))
    return measure(detector, path, images, runtime, precision, sorted(label_map.names_by_id))


def measure_files(models: list[tuple[Path, str, str]], model_dir: Path, count: int | None,
                  log) -> list[Measurement]:
    """(path, runtime, precision) of each model measured in a worker process of its own: a
    runtime that crashes (LiteRT's XNNPACK did, loading an int8 model: tflite.MIN_RANGE) takes
    the worker down, not the export, which then says which model did it."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    measured = []
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as worker:
        for path, runtime, precision in models:
            log(f"measuring {path.name}")
            try:
                measured.append(worker.submit(measure_file, path, runtime, precision,
                                              model_dir, count).result())
            except BrokenProcessPool:
                raise OdapiError(
                    f"{runtime} crashed while running {path.name} on the check images (the "
                    "process running it died: a fault in the runtime, or the system ran out "
                    "of memory), so the export was not kept; export again without that "
                    "model") from None
    return measured


def failures(measurements: list[Measurement]) -> list[str]:
    """Each model whose AP50 falls more than its tolerance below the reference's (first)."""
    reference = measurements[0]
    return [f"{m.file}: AP50 {m.AP50:.3f} is {reference.AP50 - m.AP50:.3f} below the "
            f"SavedModel's {reference.AP50:.3f} (tolerance {m.tolerance})"
            for m in measurements[1:] if m.tolerance + 1e-9 < reference.AP50 - m.AP50]


def table(measurements: list[Measurement], markdown: bool = False) -> str:
    from tabulate import tabulate

    reference = measurements[0]
    rows = [[m.file, m.runtime, m.precision, f"{m.size_mb:.2f}", f"{m.AP50:.3f}", f"{m.AP:.3f}",
             "" if m.tolerance is None else  # + 0.0: no "-0.000"
             f"{round(m.AP50 - reference.AP50, 3) + 0.0:+.3f} (-{m.tolerance})",
             f"{m.ms_per_image:.1f}"] for m in measurements]
    return tabulate(rows, headers=["model", "runtime", "precision", "MB", "AP50", "AP",
                                   "AP50 vs SavedModel (allowed)", "ms/image"],
                    tablefmt="github" if markdown else "simple", disable_numparse=True)
