"""`odapi inspect`: counts of what records hold, drawings with boxes, trouble in foreign records."""

from __future__ import annotations

import re

import numpy as np
import tensorflow as tf
from PIL import Image


def test_counts_and_drawings(odapi, demo_dataset, tmp_path):
    assert odapi("convert", demo_dataset["voc"], "--out", tmp_path / "rec",
                 "--split", "train=0.5,val=0.5", "-q").code == 0
    result = odapi("inspect", tmp_path / "rec", "--render", "3", "--out", tmp_path / "pics")
    assert result.code == 0, result.text
    table = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1)
                 for line in result.out.splitlines()[:4])
    assert table == {"record files": "2", "images": "24", "boxes": table["boxes"],
                     "images without boxes": "0"}
    assert int(table["boxes"]) > 24
    for name in ("circle", "square", "triangle"):
        assert name in result.out
    assert "width min / median / max" in result.out and "problems: 0" in result.out

    pictures = sorted((tmp_path / "pics").glob("*.png"))
    assert len(pictures) == 3
    assert "drew 3 example(s)" in result.out


def test_drawing_puts_the_box_where_the_object_is(odapi, tmp_path):
    """A black image with one white square: the drawn outline must run along the square."""
    pixels = np.zeros((100, 200, 3), np.uint8)
    pixels[40:80, 60:100] = 255
    Image.fromarray(pixels).save(tmp_path / "a.png")
    (tmp_path / "ann.csv").write_text("filename,width,height,class,xmin,ymin,xmax,ymax\n"
                                      "a.png,200,100,box,60,40,100,80\n")
    assert odapi("convert", tmp_path / "ann.csv", "--out", tmp_path / "rec", "-q").code == 0
    assert odapi("inspect", tmp_path / "rec", "--render", "1", "--out", tmp_path / "pics").code == 0
    (picture,) = (tmp_path / "pics").glob("*.png")
    drawn = np.asarray(Image.open(picture).convert("RGB")).astype(int)
    changed = np.abs(drawn - pixels).sum(axis=2) > 0
    ys, xs = np.nonzero(changed[:, :])
    # the outline hugs the square's edges (caption tab sits just above it)
    assert abs(xs.min() - 60) <= 3 and abs(xs.max() - 100) <= 40
    assert changed[60, 58:63].any() and changed[78:82, 80].any()
    assert not changed[5:30, 150:195].any()  # far from the box nothing is drawn


def test_flags_what_would_trouble_training_in_foreign_records(odapi, tmp_path):
    """Records written by another tool: a string source id and a box outside [0, 1]."""
    encoded = tf.io.encode_jpeg(tf.zeros([20, 30, 3], tf.uint8)).numpy()

    def feature(**kw):
        return tf.train.Feature(**kw)

    example = tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": feature(bytes_list=tf.train.BytesList(value=[encoded])),
        "image/format": feature(bytes_list=tf.train.BytesList(value=[b"jpeg"])),
        "image/height": feature(int64_list=tf.train.Int64List(value=[20])),
        "image/width": feature(int64_list=tf.train.Int64List(value=[30])),
        "image/source_id": feature(bytes_list=tf.train.BytesList(value=[b"img/0.jpg"])),
        "image/object/bbox/xmin": feature(float_list=tf.train.FloatList(value=[0.1])),
        "image/object/bbox/xmax": feature(float_list=tf.train.FloatList(value=[1.5])),
        "image/object/bbox/ymin": feature(float_list=tf.train.FloatList(value=[0.1])),
        "image/object/bbox/ymax": feature(float_list=tf.train.FloatList(value=[0.5])),
        "image/object/class/label": feature(int64_list=tf.train.Int64List(value=[4])),
    }))
    path = tmp_path / "output.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(example.SerializeToString())
    label_map = tmp_path / "lm.pbtxt"
    label_map.write_text("item { id: 1 name: 'Ball' }")
    result = odapi("inspect", path, "--render", "0", "--label-map", label_map)
    assert result.code == 0
    assert "problems: 3" in result.out
    assert "source_id 'img/0.jpg' is not an integer" in result.out
    assert "is not a non-empty box inside [0, 1]" in result.out
    assert "class id 4 is not in the label map" in result.out
    assert f"{path}: record 1" in result.out


def test_no_records_is_a_clear_error(odapi, tmp_path):
    result = odapi("inspect", tmp_path / "nothing-*.tfrecord")
    assert result.code == 1
    assert "no TFRecord files here" in result.err
    (tmp_path / "garbage.tfrecord").write_bytes(b"not a record file at all")
    result = odapi("inspect", tmp_path / "garbage.tfrecord", "--render", "0")
    assert result.code == 1
    assert "garbage.tfrecord" in result.err and "not a readable TFRecord" in result.err
