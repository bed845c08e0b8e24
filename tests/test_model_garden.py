"""Records written by `odapi convert` go through TF Model Garden's own input pipeline unchanged.

The demo dataset is converted once with a train/val split; its TF CSV is the ground truth the
records are checked against. Model Garden reads them with its TfExampleDecoder (source ids kept,
not regenerated), its RetinaNet parser in training and eval mode through its InputReader, and its
COCO evaluation, which needs every source id to be an integer.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from official.core import config_definitions as cfg
from official.core import input_reader
from official.vision.dataloaders import retinanet_input, tf_example_decoder
from official.vision.evaluation import coco_evaluator, coco_utils

from odapi.data.records import read_records
from odapi.data.synthetic import CLASSES, write_demo_dataset

from conftest import read_split, run_odapi

COUNT = 12
SPLITS = ("train", "val")
OUTPUT_SIZE = [256, 256]
MIN_LEVEL, MAX_LEVEL, NUM_SCALES, ASPECT_RATIOS = 3, 7, 3, [0.5, 1.0, 2.0]
ANCHORS_PER_LOCATION = NUM_SCALES * len(ASPECT_RATIOS)
MAX_INSTANCES = 100
LABEL_IDS = {name: i for i, name in enumerate(sorted(CLASSES), start=1)}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(records folder, {filename: (width, height, [(label, x0, y0, x1, y1), ...])})."""
    root = tmp_path_factory.mktemp("model-garden")
    written = write_demo_dataset(root / "data", count=COUNT, seed=11, formats=("tf-csv",))
    out = root / "records"
    assert run_odapi("convert", written["tf-csv"], "--out", out,
                     "--split", "train=0.75,val=0.25", "--quiet").code == 0
    truth: dict[str, tuple] = {}
    with written["tf-csv"].open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            width, height, boxes = truth.setdefault(
                row["filename"], (int(row["width"]), int(row["height"]), []))
            boxes.append((row["class"], *(float(row[k]) for k in ("xmin", "ymin", "xmax",
                                                                   "ymax"))))
    return out, truth


def split_files(out: Path, split: str) -> list[Path]:
    files = sorted(out.glob(f"{split}-*-of-*.tfrecord"))
    assert files, f"no {split} records"
    return files


def decoder() -> tf_example_decoder.TfExampleDecoder:
    return tf_example_decoder.TfExampleDecoder()  # regenerate_source_id=False, the default


def parser() -> retinanet_input.Parser:
    return retinanet_input.Parser(
        output_size=OUTPUT_SIZE, min_level=MIN_LEVEL, max_level=MAX_LEVEL,
        num_scales=NUM_SCALES, aspect_ratios=ASPECT_RATIOS, anchor_size=4.0,
        max_num_instances=MAX_INSTANCES, dtype="float32")


def read_with_model_garden(out: Path, split: str, training: bool, batch_size: int):
    params = cfg.DataConfig(
        input_path=str(out / f"{split}-*-of-*.tfrecord"), global_batch_size=batch_size,
        is_training=training, drop_remainder=training, shuffle_buffer_size=COUNT,
        deterministic=True, seed=1)
    reader = input_reader.InputReader(
        params, dataset_fn=tf.data.TFRecordDataset, decoder_fn=decoder().decode,
        parser_fn=parser().parse_fn(training))
    return reader.read()


def pixel_boxes_yxyx(example) -> np.ndarray:
    return np.array([[b.ymin * example.height, b.xmin * example.width,
                      b.ymax * example.height, b.xmax * example.width]
                     for b in example.boxes], np.float64).reshape(-1, 4)


def test_split_and_source_ids(converted):
    out, truth = converted
    examples = {split: read_split(out, split) for split in SPLITS}
    assert sum(len(e) for e in examples.values()) == COUNT == len(truth)
    assert all(examples[split] for split in SPLITS)
    ids = [e.source_id for split in SPLITS for e in examples[split]]
    assert all(i.isdigit() and str(int(i)) == i for i in ids), ids
    assert len(set(ids)) == COUNT  # unique across splits, not just within one
    assert {e.filename for split in SPLITS for e in examples[split]} == set(truth)


def test_tf_example_decoder_reads_what_odapi_wrote(converted):
    out, truth = converted
    decode = decoder().decode
    seen_ids = set()
    for split in SPLITS:
        odapi_view = read_split(out, split)
        records = list(read_records(split_files(out, split)))
        assert len(records) == len(odapi_view)
        for serialized, example in zip(records, odapi_view, strict=True):
            decoded = decode(tf.constant(serialized))
            source_id = decoded["source_id"].numpy().decode()
            assert source_id == example.source_id
            assert int(source_id) not in seen_ids
            seen_ids.add(int(source_id))

            width, height, boxes = truth[example.filename]
            assert decoded["image"].dtype == tf.uint8
            assert tuple(decoded["image"].shape) == (height, width, 3)
            assert (int(decoded["height"]), int(decoded["width"])) == (height, width)
            assert (example.width, example.height) == (width, height)

            got = decoded["groundtruth_boxes"].numpy()  # [ymin, xmin, ymax, xmax], normalized
            np.testing.assert_allclose(
                got, [[b.ymin, b.xmin, b.ymax, b.xmax] for b in example.boxes], atol=1e-6)
            want = np.array([[y0 / height, x0 / width, y1 / height, x1 / width]
                             for _, x0, y0, x1, y1 in boxes]).reshape(-1, 4)
            order = np.lexsort(got.T[::-1])
            np.testing.assert_allclose(got[order], want[np.lexsort(want.T[::-1])], atol=1e-6)

            classes = decoded["groundtruth_classes"].numpy()
            assert classes.tolist() == [b.class_id for b in example.boxes]
            assert sorted(classes.tolist()) == sorted(LABEL_IDS[b[0]] for b in boxes)
            np.testing.assert_allclose(decoded["groundtruth_area"].numpy(),
                                       [b.area for b in example.boxes], rtol=1e-6)
            assert sorted(decoded["groundtruth_area"].numpy().tolist()) == pytest.approx(
                sorted((x1 - x0) * (y1 - y0) for _, x0, y0, x1, y1 in boxes), rel=1e-5)
            assert decoded["groundtruth_is_crowd"].dtype == tf.bool
            assert not decoded["groundtruth_is_crowd"].numpy().any()
            assert len(decoded["groundtruth_is_crowd"].numpy()) == len(boxes)
    assert seen_ids == set(range(1, COUNT + 1))


def test_retinanet_training_batches(converted):
    out, _ = converted
    batch_size = 2
    dataset = read_with_model_garden(out, "train", training=True, batch_size=batch_size)
    images, labels = next(iter(dataset))
    assert images.shape == (batch_size, *OUTPUT_SIZE, 3)
    assert images.dtype == tf.float32
    assert np.isfinite(images.numpy()).all()
    assert labels["image_info"].shape == (batch_size, 4, 2)
    total_anchors = 0
    for level in range(MIN_LEVEL, MAX_LEVEL + 1):
        side = OUTPUT_SIZE[0] // 2**level
        assert labels["cls_targets"][str(level)].shape == \
            (batch_size, side, side, ANCHORS_PER_LOCATION)
        assert labels["box_targets"][str(level)].shape == \
            (batch_size, side, side, 4 * ANCHORS_PER_LOCATION)
        assert labels["anchor_boxes"][str(level)].shape == \
            (batch_size, side, side, 4 * ANCHORS_PER_LOCATION)
        total_anchors += side * side * ANCHORS_PER_LOCATION
    assert labels["cls_weights"].shape == (batch_size, total_anchors)
    assert labels["box_weights"].shape == (batch_size, total_anchors)
    # every image has objects, so every image has anchors matched to a class
    classes = np.concatenate([labels["cls_targets"][str(level)].numpy().reshape(batch_size, -1)
                              for level in range(MIN_LEVEL, MAX_LEVEL + 1)], axis=1)
    positive = classes > 0
    assert positive.any(axis=1).all()
    assert set(np.unique(classes[positive]).tolist()) <= set(LABEL_IDS.values())
    assert (labels["box_weights"].numpy() > 0).any(axis=1).all()


def eval_batches(out: Path, batch_size: int = 2) -> list:
    return list(read_with_model_garden(out, "val", training=False, batch_size=batch_size))


def test_retinanet_eval_groundtruths_match_the_records(converted):
    out, truth = converted
    expected = {int(e.source_id): e for e in read_split(out, "val")}
    batches = eval_batches(out)
    seen = []
    for images, labels in batches:
        batch_size = images.shape[0]
        assert images.shape == (batch_size, *OUTPUT_SIZE, 3)
        assert labels["cls_targets"][str(MIN_LEVEL)].shape == (
            batch_size, OUTPUT_SIZE[0] // 2**MIN_LEVEL, OUTPUT_SIZE[1] // 2**MIN_LEVEL,
            ANCHORS_PER_LOCATION)
        gt = labels["groundtruths"]
        assert gt["source_id"].dtype == tf.int64
        assert gt["boxes"].shape == (batch_size, MAX_INSTANCES, 4)
        assert gt["classes"].shape == (batch_size, MAX_INSTANCES)
        for j in range(batch_size):
            source_id = int(gt["source_id"][j])
            assert source_id in expected, (source_id, sorted(expected))
            example = expected[source_id]
            n = len(example.boxes)
            assert int(np.ravel(gt["num_detections"][j])[0]) == n
            assert (int(gt["height"][j]), int(gt["width"][j])) == (example.height,
                                                                   example.width)
            boxes = gt["boxes"][j, :n].numpy()
            np.testing.assert_allclose(boxes, pixel_boxes_yxyx(example), atol=1e-3)
            annotated = np.array([[y0, x0, y1, x1] for _, x0, y0, x1, y1
                                  in truth[example.filename][2]])
            np.testing.assert_allclose(boxes[np.lexsort(boxes.T[::-1])],
                                       annotated[np.lexsort(annotated.T[::-1])], atol=1e-3)
            assert gt["classes"][j, :n].numpy().tolist() == [b.class_id for b in example.boxes]
            np.testing.assert_allclose(gt["areas"][j, :n].numpy(),
                                       [b.area for b in example.boxes], rtol=1e-6)
            assert (gt["classes"][j, n:].numpy() == -1).all()  # padding
            assert (gt["is_crowds"][j, :n].numpy() == 0).all()
            seen.append(source_id)
    assert sorted(seen) == sorted(expected)  # every val image exactly once


# Model Garden's parser gives num_detections shape [1] per image and its coco_utils calls int()
# on it: numpy's deprecation of that is Model Garden's own, not something odapi writes.
@pytest.mark.filterwarnings("ignore:Conversion of an array with ndim > 0:DeprecationWarning")
def test_coco_evaluation_accepts_the_source_ids(converted):
    out, _ = converted
    expected = {int(e.source_id): e for e in read_split(out, "val")}
    groundtruths = defaultdict(list)
    evaluator = coco_evaluator.COCOEvaluator(annotation_file=None, include_mask=False,
                                             need_rescale_bboxes=False)
    for _, labels in eval_batches(out):
        gt = labels["groundtruths"]
        for key, value in gt.items():
            groundtruths[key].append(value.numpy())
        # perfect detections: the ground truth itself, padding scored 0
        predictions = {
            "source_id": gt["source_id"],
            "num_detections": tf.reshape(gt["num_detections"], [-1]),
            "detection_boxes": gt["boxes"],
            "detection_classes": gt["classes"],
            "detection_scores": tf.cast(gt["classes"] > 0, tf.float32),
        }
        evaluator.update_state(gt, predictions)

    dataset = coco_utils.convert_groundtruths_to_coco_dataset(dict(groundtruths))
    assert sorted(image["id"] for image in dataset["images"]) == sorted(expected)
    for image in dataset["images"]:
        example = expected[image["id"]]
        assert (image["width"], image["height"]) == (example.width, example.height)
    assert len(dataset["annotations"]) == sum(len(e.boxes) for e in expected.values())
    for source_id, example in expected.items():
        annotations = [a for a in dataset["annotations"] if a["image_id"] == source_id]
        got = sorted((a["category_id"], *a["bbox"]) for a in annotations)
        want = sorted((b.class_id, b.xmin * example.width, b.ymin * example.height,
                       (b.xmax - b.xmin) * example.width, (b.ymax - b.ymin) * example.height)
                      for b in example.boxes)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g[0] == w[0]
            assert g[1:] == pytest.approx(w[1:], abs=1e-3)

    metrics = evaluator.result()
    assert metrics["AP"] == pytest.approx(1.0)
    assert metrics["AP50"] == pytest.approx(1.0)
