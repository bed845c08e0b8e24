"""The confusion matrix and the PR and F1 curves on hand-worked cases, checked against
pycocotools' own AP, through the library call that `predict --ground-truth` and the export's
measurements use (`evaluate_detections`)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from odapi.evaluation.coco import evaluate_detections
from odapi.evaluation.curves import THRESHOLDS, ScoreThresholds
from odapi.evaluation.figures import confusion_png, curves_png

from conftest import run_odapi

CAT, DOG = 1, 2
NAMES = {CAT: "cat", DOG: "dog"}
IMAGES = [{"id": 1, "width": 300, "height": 300}, {"id": 2, "width": 300, "height": 300}]


def _truth(*boxes):
    return [{"id": n, "image_id": image, "category_id": cls, "bbox": box,
             "area": box[2] * box[3], "iscrowd": 0}
            for n, (image, cls, box) in enumerate(boxes, start=1)]


def _found(*detections):
    return [{"image_id": image, "category_id": cls, "bbox": box, "score": score}
            for image, cls, box, score in detections]


# Image 1: a cat taken for a dog, a dog found only at score 0.1, a cat where nothing is.
# Image 2: a cat found.
TRUTH = _truth((1, CAT, [10, 10, 40, 40]), (1, DOG, [100, 100, 40, 40]),
               (2, CAT, [10, 10, 40, 40]))
FOUND = _found((1, DOG, [10, 10, 40, 40], 0.9), (1, CAT, [200, 200, 30, 30], 0.8),
               (1, DOG, [100, 100, 40, 40], 0.1), (2, CAT, [12, 10, 40, 40], 0.7))


def test_a_wrong_class_lands_off_the_diagonal_and_a_miss_in_background():
    matrix = evaluate_detections(IMAGES, TRUTH, FOUND, NAMES, ScoreThresholds(0.5)).confusion
    assert matrix.names == ["cat", "dog", "background"]
    assert matrix.counts.tolist() == [[1, 1, 0],  # a cat found, a cat taken for a dog
                                      [0, 0, 1],  # the dog scored 0.1: missed at 0.5
                                      [1, 0, 0]]  # a cat where nothing is
    assert matrix.normalized().tolist() == [[0.5, 0.5, 0], [0, 0, 1], [1, 0, 0]]
    # at a threshold for dogs of 0.05 the low-scored dog is found
    lower = evaluate_detections(IMAGES, TRUTH, FOUND, NAMES,
                                ScoreThresholds(0.5, {DOG: 0.05})).confusion
    assert lower.counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
    numbers = lower.as_dict()
    assert numbers["counts"] == lower.counts.tolist() and numbers["iou"] == 0.5
    assert numbers["class_score_thresholds"] == {"dog": 0.05}


def test_pr_curves_average_to_pycocotools_ap_and_f1_finds_the_best_threshold():
    result = evaluate_detections(IMAGES, TRUTH, FOUND, NAMES)
    for class_id, curve in result.curves.classes.items():
        assert curve.precision_50.mean() == pytest.approx(result.per_class[class_id]["AP50"])
        assert curve.precision_50_95.mean() == pytest.approx(result.per_class[class_id]["AP"])
    assert result.curves.mean("precision_50").mean() == pytest.approx(result.metrics["AP50"])
    assert result.curves.mean("precision_50_95").mean() == pytest.approx(result.metrics["AP"])

    cat, dog = result.curves.classes[CAT], result.curves.classes[DOG]
    assert (cat.objects, dog.objects) == (2, 1)
    # cats: 0.8 false, then 0.7 true: recall 1/2 at precision 1/2 from a threshold of 0.7 down
    assert cat.best_f1 == pytest.approx(0.5) and cat.best_threshold == 0.35
    at = {round(float(t), 2): i for i, t in enumerate(THRESHOLDS)}
    assert cat.f1[at[0.7]] == pytest.approx(0.5) and cat.f1[at[0.75]] == 0  # 0.8 alone: none
    assert (cat.precision[at[0.5]], cat.recall[at[0.5]]) == (0.5, 0.5)
    # dogs: 0.9 false, 0.1 true: recall 1 at precision 1/2 from 0.1 down
    assert dog.best_f1 == pytest.approx(2 / 3) and dog.best_threshold == 0.05
    assert result.curves.best_overall() == (0.05, pytest.approx((0.5 + 2 / 3) / 2))
    # the default confusion matrix is at those best thresholds: the low dog is found
    assert result.confusion.thresholds == ScoreThresholds(0.05, {CAT: 0.35, DOG: 0.05})
    assert result.confusion.counts[1].tolist() == [0, 1, 0]


def test_f1_counts_false_detections_scoring_below_a_true_one():
    # two cats: found at 0.9, a false one at 0.6: above 0.6 precision 1, recall 1/2
    truth = _truth((1, CAT, [10, 10, 40, 40]), (2, CAT, [10, 10, 40, 40]))
    found = _found((1, CAT, [10, 10, 40, 40], 0.9), (2, CAT, [200, 200, 30, 30], 0.6))
    cat = evaluate_detections(IMAGES, truth, found, NAMES).curves.classes[CAT]
    at = {round(float(t), 2): i for i, t in enumerate(THRESHOLDS)}
    assert (cat.precision[at[0.7]], cat.recall[at[0.7]]) == (1.0, 0.5)
    assert (cat.precision[at[0.5]], cat.recall[at[0.5]]) == (0.5, 0.5)
    assert cat.best_f1 == pytest.approx(2 / 3) and 0.6 < cat.best_threshold <= 0.9


def test_a_box_also_reported_as_another_class_is_found_not_confused():
    """Model Garden runs NMS per class: one box may come out as a cat and as a dog."""
    truth = _truth((1, CAT, [10, 10, 40, 40]))
    found = _found((1, DOG, [10, 10, 40, 40], 0.6), (1, CAT, [10, 10, 40, 40], 0.9))
    matrix = evaluate_detections(IMAGES[:1], truth, found, NAMES, ScoreThresholds(0.5)).confusion
    assert matrix.counts.tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 0]]  # and a false dog


def test_without_detections_every_object_is_missed():
    result = evaluate_detections(IMAGES, TRUTH, [], NAMES)
    assert result.metrics["AP"] == 0 and result.per_class[CAT]["AP"] == 0
    assert result.confusion.counts.tolist() == [[0, 0, 2], [0, 0, 1], [0, 0, 0]]
    assert result.curves.best_thresholds() == ScoreThresholds(0.5)  # nothing to learn from


def test_a_detected_class_the_label_map_lacks_is_counted_under_its_id():
    found = FOUND + _found((2, 7, [200, 200, 20, 20], 0.9))
    matrix = evaluate_detections(IMAGES, TRUTH, found, NAMES, ScoreThresholds(0.5)).confusion
    assert matrix.names == ["cat", "dog", "7", "background"]
    assert matrix.counts[-1].tolist() == [1, 0, 1, 0]


def test_the_worst_images_show_what_was_missed_confused_and_found_falsely():
    from odapi.evaluation.pictures import errors_picture
    from odapi.labelmap import LabelMap

    matrix = evaluate_detections(IMAGES, TRUTH, FOUND, NAMES, ScoreThresholds(0.5)).confusion
    assert matrix.worst(5) == [1]  # image 2 has no error
    verdict = matrix.verdicts[1]
    assert (len(verdict.missed), len(verdict.false), len(verdict.confused)) == (1, 1, 1)
    buffer = io.BytesIO()
    Image.new("RGB", (300, 300), (90, 90, 90)).save(buffer, format="PNG")
    label_map = LabelMap.from_names(["cat", "dog"])
    picture = errors_picture(buffer.getvalue(), verdict, label_map)
    assert picture.shape == (300, 300, 3)
    assert picture[120, 100].tolist() == [255, 255, 255]  # the missed dog's left edge, white
    assert picture[215, 200].tolist() == [255, 40, 40]  # the false cat, red
    assert picture[30, 10].tolist() == [255, 40, 40]  # the cat found as a dog, red
    assert picture[150, 250].tolist() == [90, 90, 90]  # nothing drawn where nothing is


def test_the_figures_are_pngs_with_something_drawn():
    result = evaluate_detections(IMAGES, TRUTH, FOUND, NAMES)
    for png in (confusion_png(result.confusion), curves_png(result.curves)):
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG" and image.width > 600
            pixels = np.asarray(image.convert("L"))
        assert pixels.min() < 100 < pixels.max()  # text and lines on white


@pytest.mark.parametrize("threshold, message", [
    ("1.5", "must be from 0 to 1"), ("bestest", "expected a score from 0 to 1 or 'best'")])
def test_predict_threshold_is_a_score_or_best(tmp_path, threshold, message):
    code, out, err = run_odapi("predict", "--model", tmp_path, tmp_path, "--out", tmp_path / "o",
                               "--threshold", threshold)
    assert code == 2 and message in err
