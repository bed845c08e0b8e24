"""Image handling through `odapi convert`: pass-through, conversions, EXIF orientation, boxes.

Every test builds a tiny dataset with PIL, runs the real CLI, and reads the records back. The
written image is always checked the way training reads it: `tf.io.decode_image` must give 3
uint8 channels at the record's height and width, with pixels close to what the user sees.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from odapi.data.records import read_records

from conftest import read_all

WIDTH, HEIGHT = 96, 64  # not square, so a transposed image cannot pass for the original
MAGIC = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}
ORIENTATION = 0x0112
RED, GREEN, BACKGROUND = (230, 20, 20), (20, 230, 20), (40, 40, 160)


# ---------------------------------------------------------------------------------- helpers


def pattern(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A smooth, asymmetric RGB picture (JPEG-friendly; a flip or channel swap shows)."""
    x = np.broadcast_to(np.linspace(0, 255, width)[None, :], (height, width))
    y = np.broadcast_to(np.linspace(0, 255, height)[:, None], (height, width))
    pixels = np.stack([x, y, np.full((height, width), 128.0)], axis=-1)
    pixels[16:32, 16:48] = RED
    return pixels.round().astype(np.uint8)


def write_tf_csv(path: Path, rows: list[tuple]) -> Path:
    """A TF/Roboflow CSV: filename,width,height,class,xmin,ymin,xmax,ymax per box."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"])
        writer.writerows(rows)
    return path


def one_image_dataset(folder: Path, name: str, save) -> tuple[Path, Path]:
    """`save(path)` writes the image; returns (csv, image) with one box in the middle."""
    folder.mkdir(parents=True, exist_ok=True)
    image = folder / name
    save(image)
    annotations = write_tf_csv(folder / "_annotations.csv",
                               [(name, WIDTH, HEIGHT, "thing", 10, 12, 50, 40)])
    return annotations, image


def run_convert(odapi, out: Path, *args) -> dict:
    """Convert and return report.json; the run must succeed."""
    result = odapi("convert", *args, "--out", out, "--quiet")
    assert result.code == 0, result.text
    return json.loads((out / "report.json").read_text("utf-8"))


def raw_features(out: Path) -> list[dict]:
    """Every record's features exactly as stored (no odapi parsing in between)."""
    paths = sorted(Path(out).glob("*-*-of-*.tfrecord"))
    return [tf.train.Example.FromString(r).features.feature for r in read_records(paths)]


def decode(encoded: bytes) -> np.ndarray:
    """The image as TensorFlow (and so training) reads it, keeping its own channel count."""
    return tf.io.decode_image(encoded, channels=0, expand_animations=False).numpy()


def note_messages(report: dict) -> list[str]:
    return [i["message"] for i in report["issues"] if i["action"] == "note"]


def mask_box(pixels: np.ndarray, color: tuple) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), end-exclusive, of the pixels close to `color`."""
    near = np.abs(pixels.astype(int) - np.array(color)).max(axis=-1) < 70
    ys, xs = np.nonzero(near)
    assert len(xs), f"no {color} pixels in the written image"
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def white_composite(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float64)[..., None] / 255.0
    return rgb.astype(np.float64) * a + 255.0 * (1.0 - a)


# ------------------------------------------------------------------------- pass-through


@pytest.mark.parametrize("name, pil_format", [("photo.jpg", "JPEG"), ("photo.png", "PNG")])
def test_rgb_jpeg_and_png_pass_through_byte_for_byte(odapi, tmp_path, name, pil_format):
    annotations, image = one_image_dataset(
        tmp_path / "data", name,
        lambda p: Image.fromarray(pattern()).save(p, pil_format, quality=90))
    source = image.read_bytes()
    out = tmp_path / "out"
    report = run_convert(odapi, out, annotations)

    (features,) = raw_features(out)
    encoded = features["image/encoded"].bytes_list.value[0]
    assert encoded == source
    assert features["image/key/sha256"].bytes_list.value[0].decode() == \
        hashlib.sha256(source).hexdigest()
    expected_format = "jpeg" if pil_format == "JPEG" else "png"
    assert features["image/format"].bytes_list.value[0].decode() == expected_format
    assert features["image/width"].int64_list.value[0] == WIDTH
    assert features["image/height"].int64_list.value[0] == HEIGHT
    assert decode(encoded).shape == (HEIGHT, WIDTH, 3)
    assert note_messages(report) == []  # nothing was converted, so nothing to note


# --------------------------------------------------------------------------- conversions


def _save_gray_jpeg(path):
    Image.fromarray(pattern()).convert("L").save(path, "JPEG", quality=95)
    return np.asarray(Image.open(path).convert("RGB"))


def _save_cmyk_jpeg(path):
    Image.fromarray(pattern()).convert("CMYK").save(path, "JPEG", quality=95)
    return np.asarray(Image.open(path).convert("RGB"))


def _alpha_ramp() -> np.ndarray:
    """Fully transparent on the left third, half in the middle, opaque on the right."""
    alpha = np.full((HEIGHT, WIDTH), 255, np.uint8)
    alpha[:, : WIDTH // 3] = 0
    alpha[:, WIDTH // 3: 2 * WIDTH // 3] = 128
    return alpha


def _save_rgba_png(path):
    rgb, alpha = pattern(), _alpha_ramp()
    Image.fromarray(np.dstack([rgb, alpha])).save(path, "PNG")
    return white_composite(rgb, alpha)


def _save_la_png(path):
    gray, alpha = np.asarray(Image.fromarray(pattern()).convert("L")), _alpha_ramp()
    Image.fromarray(np.dstack([gray, alpha])).convert("LA").save(path, "PNG")
    assert Image.open(path).mode == "LA"
    return white_composite(np.dstack([gray] * 3), alpha)


def _save_palette_png(path):
    palette_colors = [(0, 0, 0), RED, GREEN, (30, 60, 200)]
    indices = (np.arange(WIDTH)[None, :] // 24 + np.arange(HEIGHT)[:, None] // 16) % 4
    image = Image.new("P", (WIDTH, HEIGHT))
    image.putpalette([c for color in palette_colors for c in color])
    image.putdata(indices.astype(np.uint8).ravel().tolist())
    image.save(path, "PNG", transparency=0)  # index 0 is fully transparent
    assert Image.open(path).mode == "P"
    colors = np.array([(255, 255, 255), *palette_colors[1:]], np.float64)  # 0 -> white
    return colors[indices]


def _save_gray16_png(path):
    levels = np.linspace(0, 65535, WIDTH * HEIGHT).reshape(HEIGHT, WIDTH)
    Image.fromarray(levels.round().astype(np.uint16)).save(path, "PNG")
    assert Image.open(path).mode == "I;16"
    # TensorFlow's own 8-bit reading of the 16-bit file: value / 257
    gray = tf.io.decode_png(path.read_bytes(), channels=1, dtype=tf.uint8).numpy()
    return np.repeat(gray, 3, axis=-1)


def _save_bmp(path):
    Image.fromarray(pattern()).save(path, "BMP")
    return pattern()


def _save_tiff(path):
    Image.fromarray(pattern()).save(path, "TIFF")
    return pattern()


CONVERSIONS = [
    # name, writer (returns the expected RGB pixels), format, note, tolerance (mean |diff|)
    ("gray.jpg", _save_gray_jpeg, "jpeg", "converted JPEG mode L to RGB", 1.5),
    ("cmyk.jpg", _save_cmyk_jpeg, "jpeg", "converted JPEG mode CMYK to RGB", 2.0),
    ("rgba.png", _save_rgba_png, "png", "converted PNG mode RGBA to RGB", 0.6),
    ("la.png", _save_la_png, "png", "converted PNG mode LA to RGB", 0.6),
    ("palette.png", _save_palette_png, "png", "converted PNG mode P to RGB", 0.0),
    ("gray16.png", _save_gray16_png, "png", "converted PNG mode I;16 to RGB", 0.6),
    ("scan.bmp", _save_bmp, "png", "re-encoded BMP as PNG", 0.0),
    ("scan.tif", _save_tiff, "png", "re-encoded TIFF as PNG", 0.0),
]


@pytest.mark.parametrize("name, save, image_format, note, tolerance", CONVERSIONS,
                         ids=[c[0] for c in CONVERSIONS])
def test_converted_images_decode_as_rgb_close_to_the_source(
        odapi, tmp_path, name, save, image_format, note, tolerance):
    expected = {}
    annotations, image = one_image_dataset(
        tmp_path / "data", name, lambda p: expected.setdefault("pixels", save(p)))
    source = image.read_bytes()
    out = tmp_path / "out"
    report = run_convert(odapi, out, annotations)

    (example,) = read_all(out)
    (features,) = raw_features(out)
    assert example.encoded != source
    assert example.image_format == image_format
    assert example.encoded.startswith(MAGIC[image_format])
    assert features["image/key/sha256"].bytes_list.value[0].decode() == \
        hashlib.sha256(example.encoded).hexdigest()
    pixels = decode(example.encoded)
    assert pixels.dtype == np.uint8
    assert pixels.shape == (HEIGHT, WIDTH, 3)
    assert (example.width, example.height) == (WIDTH, HEIGHT)
    difference = np.abs(pixels.astype(np.float64) - expected["pixels"])
    assert difference.mean() <= tolerance, f"mean |diff| {difference.mean():.2f}"
    if image_format == "png":  # lossless: off by at most rounding
        assert difference.max() <= 1
    else:  # JPEG re-encoding: only edges (chroma subsampling) may differ much
        assert np.percentile(difference, 95) <= 6
    assert any(note in message for message in note_messages(report)), report["issues"]
    # the box is still there, normalized against the real size
    (box,) = example.boxes
    assert (box.xmin, box.ymin, box.xmax, box.ymax) == pytest.approx(
        (10 / WIDTH, 12 / HEIGHT, 50 / WIDTH, 40 / HEIGHT), abs=1e-6)


def test_transparent_pixels_become_white(odapi, tmp_path):
    annotations, _ = one_image_dataset(tmp_path / "data", "cutout.png", _save_rgba_png)
    out = tmp_path / "out"
    run_convert(odapi, out, annotations)
    (example,) = read_all(out)
    pixels = decode(example.encoded)
    transparent = pixels[:, : WIDTH // 3]
    assert (transparent == 255).all()
    opaque = pixels[:, 2 * WIDTH // 3:]
    assert np.array_equal(opaque, pattern()[:, 2 * WIDTH // 3:])


def test_dark_16_bit_png_keeps_its_brightness(odapi, tmp_path):
    def save(path):
        levels = np.linspace(0, 16383, WIDTH * HEIGHT).reshape(HEIGHT, WIDTH)  # a quarter range
        Image.fromarray(levels.round().astype(np.uint16)).save(path, "PNG")

    annotations, image = one_image_dataset(tmp_path / "data", "depth.png", save)
    seen_by_tf = tf.io.decode_png(image.read_bytes(), channels=1, dtype=tf.uint8).numpy()
    out = tmp_path / "out"
    run_convert(odapi, out, annotations)
    (example,) = read_all(out)
    pixels = decode(example.encoded)
    assert pixels.shape == (HEIGHT, WIDTH, 3)
    assert np.abs(pixels.astype(int) - seen_by_tf.astype(int)).max() <= 1


def test_colour_key_transparency_in_rgb_png_becomes_white(odapi, tmp_path):
    def save(path):
        pixels = pattern()
        pixels[:, : WIDTH // 3] = 0  # the transparent colour key: black
        Image.fromarray(pixels).save(path, "PNG", transparency=(0, 0, 0))
        assert Image.open(path).mode == "RGB"

    annotations, _ = one_image_dataset(tmp_path / "data", "keyed.png", save)
    out = tmp_path / "out"
    run_convert(odapi, out, annotations)
    (example,) = read_all(out)
    pixels = decode(example.encoded)
    assert pixels.shape == (HEIGHT, WIDTH, 3)
    assert (pixels[:, : WIDTH // 3] == 255).all()
    assert np.array_equal(pixels[:, WIDTH // 3:], pattern()[:, WIDTH // 3:])


# ------------------------------------------------------------------------ EXIF orientation


def save_oriented_jpeg(path: Path, orientation: int) -> np.ndarray:
    """A 96x64 JPEG with a red marker top-left and a green one top-right of the STORED pixels.

    Returns the stored pixels as decoded (EXIF ignored).
    """
    pixels = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    pixels[:] = BACKGROUND
    pixels[0:16, 0:16] = RED
    pixels[0:16, 80:96] = GREEN
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, "JPEG", quality=95, exif=exif)
    assert Image.open(path).getexif()[ORIENTATION] == orientation
    return decode(path.read_bytes())


# orientation 6 displays the stored pixels turned 90 degrees clockwise: 64 wide, 96 high
ROTATED_6 = {"size": (64, 96), "red": (48, 0, 64, 16), "green": (48, 80, 64, 96), "k": -1}
# orientation 3 turns them 180 degrees: still 96x64
ROTATED_3 = {"size": (96, 64), "red": (80, 48, 96, 64), "green": (0, 48, 16, 64), "k": 2}
STORED = {"size": (96, 64), "red": (0, 0, 16, 16), "green": (80, 0, 96, 16), "k": 0}


def check_oriented(example, stored: np.ndarray, view: dict) -> None:
    width, height = view["size"]
    assert (example.width, example.height) == (width, height)
    pixels = decode(example.encoded)
    assert pixels.shape == (height, width, 3)
    for color in ("red", "green"):
        found = mask_box(pixels, RED if color == "red" else GREEN)
        assert np.abs(np.subtract(found, view[color])).max() <= 2, (color, found, view[color])
    expected = np.rot90(stored, k=view["k"]).astype(np.float64)
    assert np.abs(pixels - expected).mean() < 3.0
    # the box was drawn around the red marker in this view: it must still frame it
    (box,) = example.boxes
    x0, y0, x1, y1 = view["red"]
    assert (box.xmin, box.ymin, box.xmax, box.ymax) == pytest.approx(
        (x0 / width, y0 / height, x1 / width, y1 / height), abs=1e-6)
    inside = pixels[y0 + 2: y1 - 2, x0 + 2: x1 - 2].astype(int)
    assert (np.abs(inside - np.array(RED)).max(axis=-1) < 70).all()


def write_voc(path: Path, filename: str, size: tuple[int, int], label: str, box: tuple) -> Path:
    """A LabelImg-style VOC XML declaring `size` (width, height) and one object."""
    coords = "".join(f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box,
                                                       strict=True))
    path.write_text(
        f"<annotation><folder>data</folder><filename>{filename}</filename>"
        f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"
        f"<object><name>{label}</name><difficult>0</difficult><bndbox>{coords}</bndbox>"
        "</object></annotation>\n", "utf-8")
    return path


@pytest.mark.parametrize("annotation_format", ["tf-csv", "voc"])
def test_exif_6_with_the_rotated_size_declared_writes_rotated_pixels(
        odapi, tmp_path, annotation_format):
    folder = tmp_path / "data"
    stored = save_oriented_jpeg(folder / "phone.jpg", 6)
    if annotation_format == "voc":
        write_voc(folder / "phone.xml", "phone.jpg", (64, 96), "marker", ROTATED_6["red"])
        annotations = folder
    else:
        annotations = write_tf_csv(folder / "_annotations.csv",
                                   [("phone.jpg", 64, 96, "marker", *ROTATED_6["red"])])
    out = tmp_path / "out"
    report = run_convert(odapi, out, annotations)
    assert report["format"] == annotation_format
    (example,) = read_all(out)
    check_oriented(example, stored, ROTATED_6)
    notes = [m for m in note_messages(report) if "EXIF orientation 6" in m]
    assert len(notes) == 1 and "rotated view" in notes[0] and "wrote rotated pixels" in notes[0]


def test_exif_6_with_the_stored_size_declared_keeps_pixels_unrotated(odapi, tmp_path):
    folder = tmp_path / "data"
    stored = save_oriented_jpeg(folder / "phone.jpg", 6)
    annotations = write_tf_csv(folder / "_annotations.csv",
                               [("phone.jpg", 96, 64, "marker", *STORED["red"])])
    out = tmp_path / "out"
    report = run_convert(odapi, out, annotations)
    (example,) = read_all(out)
    check_oriented(example, stored, STORED)
    notes = [m for m in note_messages(report) if "EXIF orientation 6" in m]
    assert len(notes) == 1 and "kept them unrotated" in notes[0]
    assert "96x64" in notes[0]


def test_exif_6_without_a_declared_size_assumes_the_rotated_view(odapi, tmp_path):
    folder = tmp_path / "data"
    stored = save_oriented_jpeg(folder / "phone.jpg", 6)
    x0, y0, x1, y1 = ROTATED_6["red"]
    annotations = folder / "annotations.csv"  # the tutorial CSV states no image size
    annotations.write_text(f"phone,{x0},{x1},{y0},{y1},marker\n", "utf-8")
    out = tmp_path / "out"
    report = run_convert(odapi, out, annotations)
    assert report["format"] == "tutorial-csv"
    (example,) = read_all(out)
    check_oriented(example, stored, ROTATED_6)
    notes = [m for m in note_messages(report) if "EXIF orientation 6" in m]
    assert len(notes) == 1
    assert "assumed" in notes[0] and "rotated view" in notes[0]
    assert "wrote rotated pixels" in notes[0]


def test_exif_3_writes_pixels_turned_180_degrees(odapi, tmp_path):
    folder = tmp_path / "data"
    stored = save_oriented_jpeg(folder / "upside.jpg", 3)
    annotations = write_tf_csv(folder / "_annotations.csv",
                               [("upside.jpg", 96, 64, "marker", *ROTATED_3["red"])])
    out = tmp_path / "out"
    report = run_convert(odapi, out, annotations)
    (example,) = read_all(out)
    check_oriented(example, stored, ROTATED_3)
    notes = [m for m in note_messages(report) if "EXIF orientation 3" in m]
    assert len(notes) == 1 and "wrote rotated pixels" in notes[0]


# --------------------------------------------------------------------------------- boxes


def test_boxes_of_one_image_are_grouped_into_one_example(odapi, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    Image.fromarray(pattern(320, 208)).save(folder / "street.jpg", quality=90)
    Image.fromarray(pattern(150, 100)).save(folder / "park.jpg", quality=90)
    street = [("car", 10, 20, 110, 90), ("person", 200, 30, 240, 190),
              ("car", 150.5, 100.25, 319, 207)]
    park = [("dog", 15, 25, 75, 95)]
    rows = [("street.jpg", 320, 208, *street[0]), ("park.jpg", 150, 100, *park[0]),
            ("street.jpg", 320, 208, *street[1]), ("street.jpg", 320, 208, *street[2])]
    out = tmp_path / "out"
    report = run_convert(odapi, out, write_tf_csv(folder / "_annotations.csv", rows))

    examples = {e.filename: e for e in read_all(out)}
    assert sorted(examples) == ["park.jpg", "street.jpg"]
    assert report["totals"]["images"] == 2 and report["totals"]["boxes"] == 4
    ids = {"car": 1, "dog": 2, "person": 3}  # classes sorted by name, ids from 1
    for name, (width, height), boxes in (("street.jpg", (320, 208), street),
                                         ("park.jpg", (150, 100), park)):
        example = examples[name]
        assert (example.width, example.height) == (width, height)
        pixels = decode(example.encoded)
        assert pixels.shape == (height, width, 3)
        got = sorted((b.label, b.class_id, b.xmin, b.ymin, b.xmax, b.ymax, b.area)
                     for b in example.boxes)
        want = sorted((label, ids[label], x0 / width, y0 / height, x1 / width, y1 / height,
                       (x1 - x0) * (y1 - y0)) for label, x0, y0, x1, y1 in boxes)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g[:2] == w[:2]
            assert g[2:6] == pytest.approx(w[2:6], abs=1e-6)
            assert g[6] == pytest.approx(w[6], rel=1e-6)


def test_normalized_csv_coordinates_give_the_same_boxes_as_pixels(odapi, tmp_path):
    width, height = 160, 104
    pixel_boxes = [("ball", 16, 26, 80, 78), ("bat", 100.8, 10.4, 152, 62.4)]
    normalized_boxes = [(label, x0 / width, y0 / height, x1 / width, y1 / height)
                        for label, x0, y0, x1, y1 in pixel_boxes]
    boxes_of = {}
    notes_of = {}
    for kind, boxes in (("pixel", pixel_boxes), ("normalized", normalized_boxes)):
        folder = tmp_path / kind
        folder.mkdir()
        Image.fromarray(pattern(width, height)).save(folder / "game.jpg", quality=90)
        rows = [("game.jpg", width, height, label, *(f"{v:.6g}" for v in coords))
                for label, *coords in boxes]
        annotations = write_tf_csv(folder / "_annotations.csv", rows)
        report = run_convert(odapi, tmp_path / f"out-{kind}", annotations)
        (example,) = read_all(tmp_path / f"out-{kind}")
        assert (example.width, example.height) == (width, height)
        boxes_of[kind] = sorted((b.label, b.xmin, b.ymin, b.xmax, b.ymax, b.area)
                                for b in example.boxes)
        notes_of[kind] = report["notes"]

    assert len(boxes_of["pixel"]) == len(boxes_of["normalized"]) == 2
    for (label, *values), (other, *expected) in zip(boxes_of["normalized"],
                                                     boxes_of["pixel"], strict=True):
        assert label == other
        assert values[:4] == pytest.approx(expected[:4], abs=1e-6)
        assert values[4] == pytest.approx(expected[4], rel=1e-4)
    for label, x0, y0, x1, y1 in normalized_boxes:
        assert any(b[0] == label and b[1:5] == pytest.approx((x0, y0, x1, y1), abs=1e-6)
                   for b in boxes_of["pixel"])
    assert any("normalized coordinates detected" in n for n in notes_of["normalized"])
    assert not any("coordinates detected" in n for n in notes_of["pixel"])


def jpeg_variants() -> dict[str, bytes]:
    """Whole JPEGs as encoders write them: baseline, progressive, optimized tables, restart
    markers, an EXIF block, TensorFlow's encoder, and bytes appended after the end marker."""
    image = Image.fromarray(pattern())
    variants = {}
    for name, options in {"baseline": {}, "progressive": {"progressive": True},
                          "optimized": {"optimize": True}, "4:4:4": {"subsampling": 0},
                          "restart markers": {"restart_marker_blocks": 2}}.items():
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85, **options)
        variants[name] = out.getvalue()
    exif = Image.Exif()
    exif[ORIENTATION] = 1
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    variants["exif"] = out.getvalue()
    variants["trailing bytes"] = variants["baseline"] + b"\x00" * 16 + b"vendor trailer"
    variants["tensorflow"] = tf.io.encode_jpeg(pattern(), quality=80).numpy()
    return variants


def test_jpeg_structure_accepts_whole_files_and_finds_every_cut():
    """The default check (markers from SOI to SOS, then EOI): every whole file passes; a file
    cut at any byte before its end marker fails, and the reason says where."""
    from odapi.data.jpeg import jpeg_problem

    for name, data in jpeg_variants().items():
        assert jpeg_problem(data) is None, name
        end = data.rindex(b"\xff\xd9")
        for cut in range(0, end + 1, 7):
            problem = jpeg_problem(data[:cut])
            assert problem, f"{name} cut at byte {cut} of {len(data)} passed"
        Image.open(io.BytesIO(data)).load()  # and PIL decodes every variant in full


def test_the_summary_says_what_its_counted_notes_are(odapi, tmp_path):
    """The printed summary counts notes (a grayscale JPEG made RGB) but lists only what was
    skipped or fixed: it names the first note and where all of them are."""
    annotations, _ = one_image_dataset(tmp_path / "data", "gray.jpg", _save_gray_jpeg)
    result = odapi("convert", annotations, "--out", tmp_path / "out")
    assert result.code == 0, result.text
    assert ", 1 note" in result.out
    assert "  1 note in report.txt / report.json, e.g. " in result.out
    assert "_annotations.csv:2: converted JPEG mode L to RGB\n" in result.out
