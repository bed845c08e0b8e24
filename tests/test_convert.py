"""`odapi convert` on valid data: every format, grouping, splits, shards, label maps, reports."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from odapi.data.synthetic import FORMATS
from odapi.labelmap import LabelMap

from conftest import read_all, read_split, snapshot


def boxes_by_file(examples):
    return {e.filename: sorted((b.label, b.class_id, b.xmin, b.ymin, b.xmax, b.ymax)
                               for b in e.boxes) for e in examples}


def test_every_format_converts_to_the_same_examples(odapi, demo_dataset, tmp_path):
    results = {}
    for name in FORMATS:
        before = snapshot(demo_dataset[name].parent)
        result = odapi("convert", demo_dataset[name], "--out", tmp_path / name, "--quiet")
        assert result.code == 0, result.text
        assert snapshot(demo_dataset[name].parent) == before  # inputs untouched
        results[name] = boxes_by_file(read_all(tmp_path / name))

    reference = results["voc"]
    assert len(reference) == 24
    assert sum(len(b) for b in reference.values()) > 24  # several objects per image
    for name, got in results.items():
        assert got.keys() == reference.keys(), name
        for filename, boxes in got.items():
            expected = reference[filename]
            assert [b[:2] for b in boxes] == [b[:2] for b in expected], (name, filename)
            for mine, theirs in zip(boxes, expected, strict=True):
                assert mine[2:] == pytest.approx(theirs[2:], abs=1e-6), (name, filename)


def test_one_example_per_image_with_real_size_and_integer_ids(odapi, tmp_path):
    """The tutorial's script wrote a record per CSV line and assumed 640x480; odapi does not."""
    images = tmp_path / "img"
    images.mkdir()
    Image.new("RGB", (300, 200), "white").save(images / "0.jpg")
    Image.new("RGB", (120, 90), "black").save(images / "1.jpg")
    (tmp_path / "annotations.csv").write_text(
        "0,10,50,20,60\n0,100,150,20,60\n0,200,290,100,190\n1,0,60,0,45\n")
    result = odapi("convert", tmp_path / "annotations.csv", "--class-name", "Ball",
                   "--images", images, "--out", tmp_path / "out", "-q")
    assert result.code == 0, result.text

    examples = {e.filename: e for e in read_split(tmp_path / "out", "train")}
    assert set(examples) == {"0.jpg", "1.jpg"}
    first = examples["0.jpg"]
    assert (first.width, first.height) == (300, 200)
    assert [v for b in first.boxes for v in (b.xmin, b.xmax, b.ymin, b.ymax)] == pytest.approx(
        [10 / 300, 50 / 300, 20 / 200, 60 / 200, 100 / 300, 150 / 300, 20 / 200, 60 / 200,
         200 / 300, 290 / 300, 100 / 200, 190 / 200])
    assert [b.area for b in first.boxes] == pytest.approx([40 * 40, 50 * 40, 90 * 90])
    assert {b.label for b in first.boxes} == {"Ball"} and {b.class_id for b in first.boxes} == {1}
    assert (examples["1.jpg"].width, examples["1.jpg"].height) == (120, 90)
    assert sorted(int(e.source_id) for e in examples.values()) == [1, 2]
    assert LabelMap.read(tmp_path / "out" / "label_map.pbtxt").names_by_id == {1: "Ball"}


def test_split_is_seeded_stratified_and_by_image(odapi, demo_dataset, tmp_path):
    source = demo_dataset["voc"]
    args = ["--split", "train=0.75,val=0.25", "--seed", "7", "-q"]
    assert odapi("convert", source, "--out", tmp_path / "a", *args).code == 0
    assert odapi("convert", source, "--out", tmp_path / "b", *args, "--workers", "1").code == 0

    train, val = read_split(tmp_path / "a", "train"), read_split(tmp_path / "a", "val")
    assert (len(train), len(val)) == (18, 6)
    assert not {e.filename for e in train} & {e.filename for e in val}
    # the same seed gives byte-identical records, whatever the number of workers
    for split in ("train", "val"):
        a = sorted((tmp_path / "a").glob(f"{split}-*"))
        b = sorted((tmp_path / "b").glob(f"{split}-*"))
        assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    # every class reaches the validation split, in proportion
    totals = Counter(b.label for e in train + val for b in e.boxes)
    in_val = Counter(b.label for e in val for b in e.boxes)
    for label, total in totals.items():
        assert abs(in_val[label] - 0.25 * total) <= max(2, 0.15 * total), (label, in_val, totals)
    # another seed gives another split
    assert odapi("convert", source, "--out", tmp_path / "c", "--split", "train=0.75,val=0.25",
                 "--seed", "8", "-q").code == 0
    assert {e.filename for e in read_split(tmp_path / "c", "val")} != {e.filename for e in val}


def test_shards_are_named_and_hold_every_example_once(odapi, demo_dataset, tmp_path):
    result = odapi("convert", demo_dataset["coco"], "--out", tmp_path / "out", "--shards", "3",
                   "-q")
    assert result.code == 0, result.text
    shards = sorted(p.name for p in (tmp_path / "out").glob("*.tfrecord"))
    assert shards == [f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
    examples = read_all(tmp_path / "out")
    assert len(examples) == 24
    assert len({e.source_id for e in examples}) == 24
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["splits"]["train"]["shards"] == shards
    assert report["totals"]["images"] == 24


def roboflow_coco_export(root: Path) -> None:
    """Roboflow's COCO layout: train/valid/test folders, each with images and its own JSON,
    category 0 a placeholder supercategory, sparse category ids, an image without objects."""
    categories = [{"id": 0, "name": "shapes", "supercategory": "none"},
                  {"id": 3, "name": "dog", "supercategory": "shapes"},
                  {"id": 7, "name": "cat", "supercategory": "shapes"}]
    for split, n in (("train", 4), ("valid", 2), ("test", 1)):
        folder = root / split
        folder.mkdir(parents=True)
        images, annotations = [], []
        for i in range(n):
            name = f"{split}_{i}.jpg"
            Image.new("RGB", (100, 80), (i * 40, 90, 30)).save(folder / name)
            images.append({"id": i, "file_name": name, "width": 100, "height": 80})
            if i == 0:
                continue  # a background image
            annotations.append({"id": len(annotations), "image_id": i, "category_id": 3,
                                "bbox": [10, 10, 30, 20], "area": 600, "iscrowd": 0})
            annotations.append({"id": len(annotations), "image_id": i, "category_id": 7,
                                "bbox": [50.5, 30.25, 20, 40], "area": 800, "iscrowd": 0})
        (folder / "_annotations.coco.json").write_text(json.dumps(
            {"images": images, "annotations": annotations, "categories": categories}))


def test_pre_split_roboflow_coco_keeps_its_splits(odapi, tmp_path):
    roboflow_coco_export(tmp_path / "export")
    result = odapi("convert", tmp_path / "export", "--out", tmp_path / "out", "-q")
    assert result.code == 0, result.text

    counts = {s: len(read_split(tmp_path / "out", s)) for s in ("train", "val", "test")}
    assert counts == {"train": 4, "val": 2, "test": 1}
    label_map = LabelMap.read(tmp_path / "out" / "label_map.pbtxt")
    assert label_map.names_by_id == {1: "cat", 2: "dog"}  # placeholder 0 left out, ids from 1
    train = {e.filename: e for e in read_split(tmp_path / "out", "train")}
    assert train["train_0.jpg"].boxes == []  # background kept
    cat = [b for b in train["train_1.jpg"].boxes if b.label == "cat"][0]
    assert cat.class_id == 1
    assert (cat.xmin, cat.ymin, cat.xmax, cat.ymax) == pytest.approx(
        (50.5 / 100, 30.25 / 80, 70.5 / 100, 70.25 / 80), abs=1e-6)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["splits"]["train"]["backgrounds"] == 1
    assert any("'shapes' (id 0)" in note for note in report["notes"])
    # all source ids are distinct integers across the splits
    ids = [e.source_id for e in read_all(tmp_path / "out")]
    assert len(set(ids)) == 7 and all(i.isdigit() for i in ids)


def test_coco_with_zero_based_category_ids_in_use(odapi, tmp_path):
    """Some exporters number categories from 0 and use 0; label map ids still start at 1."""
    Image.new("RGB", (50, 50)).save(tmp_path / "a.jpg")
    (tmp_path / "coco.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 50, "height": 50}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 0, "bbox": [0, 0, 10, 10]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [20, 20, 10, 10]}],
        "categories": [{"id": 0, "name": "zebra"}, {"id": 1, "name": "ant"}]}))
    assert odapi("convert", tmp_path / "coco.json", "--out", tmp_path / "out", "-q").code == 0
    (example,) = read_all(tmp_path / "out")
    assert sorted((b.label, b.class_id) for b in example.boxes) == [("ant", 1), ("zebra", 2)]


def test_given_label_map_fixes_the_ids(odapi, demo_dataset, tmp_path):
    label_map = tmp_path / "label_map.pbtxt"
    label_map.write_text("item { id: 5 name: 'triangle' }\nitem { id: 1 name: 'square' }\n"
                         "item { id: 2 name: 'circle' }\nitem { id: 9 name: 'unused' }\n")
    result = odapi("convert", demo_dataset["tf-csv"], "--out", tmp_path / "out",
                   "--label-map", label_map, "-q")
    assert result.code == 0, result.text
    ids = {(b.label, b.class_id) for e in read_all(tmp_path / "out") for b in e.boxes}
    assert ids == {("triangle", 5), ("square", 1), ("circle", 2)}
    assert LabelMap.read(tmp_path / "out" / "label_map.pbtxt").names_by_id == \
        {1: "square", 2: "circle", 5: "triangle", 9: "unused"}


def test_pre_split_yolo_export_with_data_yaml(odapi, tmp_path):
    """Roboflow's YOLO layout: data.yaml with ../train/images paths, labels mirrored."""
    root = tmp_path / "export"
    for split in ("train", "valid"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (64, 32)).save(root / split / "images" / f"{i}.jpg")
            lines = "0 0.5 0.5 0.25 0.5\n1 0.25 0.25 0.125 0.25\n" if i else ""
            (root / split / "labels" / f"{i}.txt").write_text(lines)
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\nnc: 2\n"
                                    "names: ['person', 'bike']\n")
    result = odapi("convert", root, "--out", tmp_path / "out", "-q")
    assert result.code == 0, result.text
    train = {e.filename: e for e in read_split(tmp_path / "out", "train")}
    assert len(train) == 3 and len(read_split(tmp_path / "out", "val")) == 3
    assert train["0.jpg"].boxes == []
    person = [b for b in train["1.jpg"].boxes if b.label == "person"][0]
    assert (person.xmin, person.ymin, person.xmax, person.ymax) == pytest.approx(
        (0.375, 0.25, 0.625, 0.75))
    assert person.area == pytest.approx(16 * 16)


def test_progress_and_summary(odapi, demo_dataset, tmp_path):
    """Progress on stderr (as lines: captured output is no terminal), the summary on stdout."""
    result = odapi("convert", demo_dataset["voc"], "--out", tmp_path / "out")
    assert result.code == 0
    assert "convert 24/24 (100%) imgs" in result.err
    assert "split" in result.out and "images" in result.out and "circle" in result.out
    assert "wrote" in result.out
    summary = (tmp_path / "out" / "report.txt").read_text()
    assert "issues:" in summary
