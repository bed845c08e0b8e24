"""`odapi demo-data`: a synthetic dataset varied enough to train and test on."""

from __future__ import annotations

import csv
from collections import Counter

from PIL import Image


def test_writes_tutorial_csv_and_voc_by_default(odapi, tmp_path):
    out = tmp_path / "demo"
    result = odapi("demo-data", out, "--count", "30", "--seed", "1")
    assert result.code == 0, result.text
    assert "odapi convert" in result.out

    images = sorted((out / "images").glob("*.jpg"))
    assert len(images) == 30
    sizes = {Image.open(p).size for p in images}
    assert len(sizes) > 10  # varied image sizes

    rows = list(csv.reader((out / "annotations.csv").open()))
    assert all(len(r) == 6 for r in rows)  # id,x1,x2,y1,y2,class
    per_image = Counter(r[0] for r in rows)
    classes = Counter(r[5] for r in rows)
    assert set(classes) == {"circle", "square", "triangle"}
    assert max(per_image.values()) >= 3  # several objects per image
    assert len(list((out / "voc" / "Annotations").glob("*.xml"))) == 30
    assert not (out / "coco").exists()


def test_is_reproducible_and_seeded(odapi, tmp_path):
    odapi("demo-data", tmp_path / "a", "--count", "5", "--seed", "4")
    odapi("demo-data", tmp_path / "b", "--count", "5", "--seed", "4")
    odapi("demo-data", tmp_path / "c", "--count", "5", "--seed", "5")
    a, b, c = ((tmp_path / d / "annotations.csv").read_text() for d in "abc")
    assert a == b and a != c


def test_refuses_a_folder_with_files(odapi, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = odapi("demo-data", tmp_path, "--count", "3")
    assert result.code == 1
    assert "not empty" in result.err
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert odapi("demo-data", tmp_path / "x", "--formats", "voc,kitti").code == 1
