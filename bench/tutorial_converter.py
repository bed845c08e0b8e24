"""The converter users write today, after the tutorial's Step 2: bench/convert_speed.py's reference.

Written the way the tutorial's script is (one tf.train.Example per CSV row, the row's image read
for each row, one TFRecordWriter, a single process), but runnable on TF 2.20 and hard-coding
nothing it need not: image sizes come from each image's header instead of `height = 480`, and
the class of a row from its sixth column, with ids in sorted order. Like the tutorial's, it checks
nothing and writes an image once per box.

    python bench/tutorial_converter.py annotations.csv --images img/out --out output.tfrecord
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import tensorflow as tf
from PIL import Image


def create_tfrecord(filename: Path, coords: list[float], label: str,
                    class_ids: dict[str, int]) -> tf.train.Example:
    with open(filename, "rb") as f:
        encoded_image_data = f.read()
    width, height = Image.open(io.BytesIO(encoded_image_data)).size
    name = str(filename).encode()

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    def floats(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    def strings(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))

    return tf.train.Example(features=tf.train.Features(feature={
        "image/height": ints([height]),
        "image/width": ints([width]),
        "image/filename": strings([name]),
        "image/source_id": strings([name]),
        "image/encoded": strings([encoded_image_data]),
        "image/format": strings([b"jpeg"]),
        "image/object/bbox/xmin": floats([coords[0] / width]),
        "image/object/bbox/xmax": floats([coords[1] / width]),
        "image/object/bbox/ymin": floats([coords[2] / height]),
        "image/object/bbox/ymax": floats([coords[3] / height]),
        "image/object/class/text": strings([label.encode()]),
        "image/object/class/label": ints([class_ids[label]]),
    }))


def convert(annotations: Path, images: Path, output: Path, class_name: str = "object") -> int:
    """Write one record per CSV row (`id,x1,x2,y1,y2[,class]`); returns the number written."""
    with open(annotations, newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    labels = [row[5] if len(row) > 5 else class_name for row in rows]
    class_ids = {name: i for i, name in enumerate(sorted(set(labels)), start=1)}
    with tf.io.TFRecordWriter(str(output)) as writer:
        for row, label in zip(rows, labels, strict=True):
            record = create_tfrecord(images / f"{row[0]}.jpg", [float(v) for v in row[1:5]],
                                     label, class_ids)
            writer.write(record.SerializeToString())
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("annotations", type=Path)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--class-name", default="object")
    args = parser.parse_args()
    count = convert(args.annotations, args.images, args.out, args.class_name)
    print(f"Done. {count} records in {args.out}")


if __name__ == "__main__":
    main()
