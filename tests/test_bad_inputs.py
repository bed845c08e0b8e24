"""`odapi convert` on bad input: one small dataset per kind of mistake, run through the CLI.

Every case checks the same four things:
  1. the exit status: 0 when the conversion succeeds with the bad item skipped or fixed, 1 when
     nothing usable is left, for --strict, or for a fatal error, 2 for a bad command line;
  2. the message names the file and line (`annotations.csv:3`) or element (`x.xml:17
     <object>[2]`, `annotations[1]`) at fault, and says why;
  3. a failure leaves nothing that looks like a finished conversion; a success lists the bad
     item in report.json with what was done about it, and the records hold exactly the good
     images and boxes;
  4. the user's input files are unchanged.

Datasets are tiny and built per test under tmp_path/"data"; the output goes to tmp_path/"out".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from odapi.labelmap import LabelMap

from conftest import looks_complete, read_all, snapshot

# --------------------------------------------------------------------------------------------
# helpers


def write_image(path: Path, size: tuple[int, int]) -> Path:
    """A real image of `size` (noise, so that a truncated copy is detectably broken)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.effect_noise(size, 64).convert("RGB").save(path, quality=90)
    return path


def convert(odapi, tmp_path: Path, *args):
    """Run `odapi convert ARGS --out tmp_path/out -q`, and prove tmp_path/data was not touched."""
    data = tmp_path / "data"
    before = snapshot(data)
    assert before, "the test built no input files"
    # the test's own options come last, so that they win over these defaults
    result = odapi("convert", "--out", tmp_path / "out", "-q", "--workers", "2", *args)
    assert snapshot(data) == before, "odapi convert modified the user's input files"
    return result


def assert_failed(result, out: Path, *phrases: str, code: int = 1) -> None:
    """Exit `code`, every phrase in stderr, nothing in `out` that looks like a conversion."""
    assert result.code == code, result.text
    for phrase in phrases:
        assert phrase in result.err, f"{phrase!r} not in stderr:\n{result.err}"
    assert not looks_complete(out), sorted(p.name for p in out.iterdir())
    if out.exists():
        assert not list(out.glob(".odapi-partial-*")), "a staging folder was left behind"


def converted(result, out: Path) -> dict:
    """Exit 0 and a complete output; returns report.json."""
    assert result.code == 0, result.text
    assert looks_complete(out)
    assert not list(out.glob(".odapi-partial-*")), "a staging folder was left behind"
    return json.loads((out / "report.json").read_text("utf-8"))


def assert_issues(result, report: dict, *expected: tuple[str, str, str]) -> None:
    """The report's issues (notes aside) are exactly `expected` (action, where, phrase), and the
    printed summary shows each of them with its location."""
    found = sorted((i["action"], i["where"], i["message"]) for i in report["issues"]
                   if i["action"] != "note")
    want = sorted(expected)
    assert [f[:2] for f in found] == [w[:2] for w in want], found
    for (action, where, message), (_, _, phrase) in zip(found, want, strict=True):
        assert phrase in message, (where, message)
        assert f"{action}: {where}: " in result.out, result.out
        assert report["totals"][action] == sum(a == action for a, _, _ in found)


def boxes_in(out: Path) -> dict[str, list[tuple]]:
    """filename -> sorted (class, xmin, ymin, xmax, ymax) in pixels of the written image.

    Fails if any image was written twice.
    """
    examples = read_all(out)
    result = {e.filename: sorted((b.label, *(round(v, 2) for v in (
        b.xmin * e.width, b.ymin * e.height, b.xmax * e.width, b.ymax * e.height)))
        for b in e.boxes) for e in examples}
    assert len(result) == len(examples), "an image was written more than once"
    return result


# The tutorial-CSV base: two images next to `annotations.csv`, one box each (id,x1,x2,y1,y2,class).
SIZES = {"0": (200, 100), "1": (160, 120)}
GOOD_0 = "0,10,50,20,60,cat"
GOOD_1 = "1,20,80,30,90,dog"
BOXES_0 = [("cat", 10, 20, 50, 60)]
BOXES_1 = [("dog", 20, 30, 80, 90)]


def tutorial_dataset(tmp_path: Path, *lines: str) -> Path:
    data = tmp_path / "data"
    for stem, size in SIZES.items():
        write_image(data / "images" / f"{stem}.jpg", size)
    csv = data / "annotations.csv"
    csv.write_text("".join(line + "\n" for line in lines), "utf-8")
    return csv


def voc_xml(filename: str, size: tuple[int, int] | None, *objects: tuple) -> str:
    """A VOC file: <annotation> on line 1, <size> on 3-7, object k (1-based) on 8 + 9 (k-1)."""
    lines = ["<annotation>", f"  <filename>{filename}</filename>"]
    if size:
        lines += ["  <size>", f"    <width>{size[0]}</width>", f"    <height>{size[1]}</height>",
                  "    <depth>3</depth>", "  </size>"]
    for name, (x0, y0, x1, y1) in objects:
        lines += ["  <object>", f"    <name>{name}</name>", "    <bndbox>",
                  f"      <xmin>{x0}</xmin>", f"      <ymin>{y0}</ymin>",
                  f"      <xmax>{x1}</xmax>", f"      <ymax>{y1}</ymax>",
                  "    </bndbox>", "  </object>"]
    return "\n".join(lines + ["</annotation>", ""])


def voc_dataset(tmp_path: Path) -> Path:
    """data/voc/JPEGImages/{a,b}.jpg with data/voc/Annotations/{a,b}.xml, all consistent."""
    voc = tmp_path / "data" / "voc"
    write_image(voc / "JPEGImages" / "a.jpg", (200, 100))
    write_image(voc / "JPEGImages" / "b.jpg", (160, 120))
    (voc / "Annotations").mkdir(parents=True)
    (voc / "Annotations" / "a.xml").write_text(voc_xml("a.jpg", (200, 100),
                                                       ("cat", (10, 20, 50, 60))))
    (voc / "Annotations" / "b.xml").write_text(voc_xml("b.jpg", (160, 120),
                                                       ("dog", (20, 30, 80, 90)),
                                                       ("cat", (100, 10, 150, 50))))
    return voc


def coco_dataset(tmp_path: Path, images: list[dict], annotations: list[dict]) -> Path:
    """data/coco/annotations.json, images a.jpg (200x100) and b.jpg (160x120) in coco/images."""
    coco = tmp_path / "data" / "coco"
    write_image(coco / "images" / "a.jpg", (200, 100))
    write_image(coco / "images" / "b.jpg", (160, 120))
    path = coco / "annotations.json"
    path.write_text(json.dumps({
        "images": images, "annotations": annotations,
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}, indent=1))
    return path


COCO_IMAGES = [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 100},
               {"id": 2, "file_name": "b.jpg", "width": 160, "height": 120}]


def yolo_dataset(tmp_path: Path, b_labels: str) -> Path:
    """data/yolo: data.yaml (names cat, dog), images/{a,b}.jpg (200x100), labels/{a,b}.txt."""
    yolo = tmp_path / "data" / "yolo"
    write_image(yolo / "images" / "a.jpg", (200, 100))
    write_image(yolo / "images" / "b.jpg", (200, 100))
    (yolo / "labels").mkdir()
    (yolo / "labels" / "a.txt").write_text("0 0.15 0.4 0.1 0.4\n")  # cat 20,20 - 40,60
    (yolo / "labels" / "b.txt").write_text(b_labels)
    (yolo / "data.yaml").write_text("names: [cat, dog]\n")
    return yolo / "data.yaml"


# --------------------------------------------------------------------------------------------
# images that cannot be used


def _remove(path: Path) -> None:
    path.unlink()


def _text_named_jpg(path: Path) -> None:
    path.write_text("this is a text file, not a picture\n")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _break_marker(path: Path) -> None:
    """The byte where the segment after SOI must begin (0xFF) is overwritten."""
    data = bytearray(path.read_bytes())
    data[2] = 0x00
    path.write_bytes(bytes(data))


def _overlong_segment(path: Path) -> None:
    """The first segment claims to be longer than the whole file."""
    data = bytearray(path.read_bytes())
    data[4:6] = b"\xff\xf0"
    path.write_bytes(bytes(data))


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each segment before the image data, SOS included."""
    segments, pos = [], 2
    while True:
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2:pos + 4], "big")
        segments.append((marker, pos, pos + 2 + length))
        if marker == 0xDA:
            return segments
        pos += 2 + length


def _undefined_quantization_table(path: Path) -> None:
    """Every marker in place and an end-of-image marker, but the frame header points at a
    quantization table the file does not define: only decoding finds it."""
    data = bytearray(path.read_bytes())
    (start,) = [start for marker, start, _ in jpeg_segments(data) if marker == 0xC0]
    data[start + 12] = 3  # the first component's table: marker, length, P, Y, X, Nf, C1, H1V1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("corrupt, reason", [
    pytest.param(_remove, "image not found", id="missing-image"),
    pytest.param(_text_named_jpg, "is not an image odapi can read", id="text-file-named-jpg"),
    pytest.param(_truncate, "is truncated or corrupt (no end-of-image marker",
                 id="truncated-jpeg"),
    pytest.param(_break_marker, "is truncated or corrupt (byte 2 should begin a marker",
                 id="broken-marker-jpeg"),
    pytest.param(_overlong_segment, "is truncated or corrupt (the APP0 segment at byte 2 runs "
                 "past the end", id="overlong-segment-jpeg"),
])
def test_unusable_image_is_skipped(odapi, tmp_path, corrupt, reason):
    """1.jpg (CSV line 2) cannot be read: it is skipped and listed; 0.jpg converts normally."""
    csv = tutorial_dataset(tmp_path, GOOD_0, GOOD_1)
    corrupt(tmp_path / "data" / "images" / "1.jpg")
    result = convert(odapi, tmp_path, csv)
    report = converted(result, tmp_path / "out")
    assert_issues(result, report, ("skipped image", f"{csv}:2", reason))
    assert "1.jpg" in report["issues"][0]["message"]
    assert boxes_in(tmp_path / "out") == {"0.jpg": BOXES_0}


def test_damaged_pixel_data_needs_verify_pixels(odapi, tmp_path):
    """A JPEG whose structure is whole but whose pixels cannot be decoded: the default check
    (markers and end-of-image) lets it through; --verify-pixels decodes it and skips it."""
    csv = tutorial_dataset(tmp_path, GOOD_0, GOOD_1)
    _undefined_quantization_table(tmp_path / "data" / "images" / "1.jpg")
    report = converted(convert(odapi, tmp_path, csv), tmp_path / "out")
    assert report["totals"].get("skipped image", 0) == 0

    result = convert(odapi, tmp_path, csv, "--verify-pixels", "--out", tmp_path / "verified")
    report = converted(result, tmp_path / "verified")
    assert_issues(result, report, ("skipped image", f"{csv}:2", "is truncated or corrupt"))
    assert boxes_in(tmp_path / "verified") == {"0.jpg": BOXES_0}


def test_no_usable_image_left_fails(odapi, tmp_path):
    """The CSV's only image is a text file: nothing usable is left, exit 1, no output."""
    csv = tutorial_dataset(tmp_path, GOOD_0)
    _text_named_jpg(tmp_path / "data" / "images" / "0.jpg")
    result = convert(odapi, tmp_path, csv)
    assert_failed(result, tmp_path / "out", "nothing usable is left",
                  f"skipped image: {csv}:1: ", "is not an image odapi can read")


# --------------------------------------------------------------------------------------------
# declared sizes that do not match the image


def test_voc_declared_size_differs_from_image(odapi, tmp_path):
    """b.xml's <size> says 640x480 but b.jpg is 160x120: its boxes may be for another version."""
    voc = voc_dataset(tmp_path)
    xml = voc / "Annotations" / "b.xml"
    xml.write_text(voc_xml("b.jpg", (640, 480), ("dog", (20, 30, 80, 90))))
    result = convert(odapi, tmp_path, voc)
    report = converted(result, tmp_path / "out")
    assert_issues(result, report, ("skipped image", str(xml), "says the image is 640x480 but"))
    assert "b.jpg is 160x120" in report["issues"][0]["message"]
    assert boxes_in(tmp_path / "out") == {"a.jpg": BOXES_0}


def test_tf_csv_declared_size_differs_from_image(odapi, tmp_path):
    """Row 3 says b.jpg is 320x240; it is 160x120. b.jpg is skipped, naming line 3."""
    folder = tmp_path / "data" / "tf"
    write_image(folder / "a.jpg", (200, 100))
    write_image(folder / "b.jpg", (160, 120))
    csv = folder / "_annotations.csv"
    csv.write_text("filename,width,height,class,xmin,ymin,xmax,ymax\n"
                   "a.jpg,200,100,cat,10,20,50,60\n"
                   "b.jpg,320,240,dog,20,30,80,90\n")
    result = convert(odapi, tmp_path, csv)
    report = converted(result, tmp_path / "out")
    assert_issues(result, report, ("skipped image", f"{csv}:3", "says the image is 320x240 but"))
    assert boxes_in(tmp_path / "out") == {"a.jpg": BOXES_0}


# --------------------------------------------------------------------------------------------
# bad boxes in an image that keeps its other boxes (tutorial CSV: id,x1,x2,y1,y2,class)


@pytest.mark.parametrize("bad_line, action, reason, kept", [
    pytest.param("0,50,10,20,60,cat", "skipped box", "xmin >= xmax", [],
                 id="swapped-x-corners"),
    pytest.param("0,100,150,60,20,cat", "skipped box", "ymin >= ymax", [],
                 id="swapped-y-corners"),
    pytest.param("0,150,260,20,60,cat", "skipped box", "lies outside the 200x100 image", [],
                 id="box-far-outside"),
    pytest.param("0,150,203,20,60,cat", "fixed", "clipped the box", [("cat", 150, 20, 200, 60)],
                 id="box-slightly-outside-is-clipped"),
    pytest.param("0,-3,40,70,102,dog", "fixed", "clipped the box", [("dog", 0, 70, 40, 100)],
                 id="box-slightly-negative-is-clipped"),
    pytest.param(GOOD_0, "skipped box", "duplicate of the 'cat' box at ", [],
                 id="duplicate-box"),
    pytest.param("0,10,fifty,20,60,cat", "skipped box", "cannot read", [],
                 id="non-numeric-coordinate"),
    pytest.param("0,10,50,20", "skipped box", "expected 5 columns id,x1,x2,y1,y2", [],
                 id="too-few-columns"),
])
def test_bad_box_is_skipped_or_fixed(odapi, tmp_path, bad_line, action, reason, kept):
    """Line 2 holds a bad box for 0.jpg, whose good box is on line 1; 1.jpg is untouched."""
    csv = tutorial_dataset(tmp_path, GOOD_0, bad_line, GOOD_1)
    result = convert(odapi, tmp_path, csv)
    report = converted(result, tmp_path / "out")
    assert_issues(result, report, (action, f"{csv}:2", reason))
    if reason.startswith("duplicate"):
        assert report["issues"][0]["message"].startswith(f"duplicate of the 'cat' box at {csv}:1")
    assert boxes_in(tmp_path / "out") == {"0.jpg": sorted(BOXES_0 + kept), "1.jpg": BOXES_1}


def test_image_whose_only_box_is_invalid_is_skipped(odapi, tmp_path):
    """1.jpg's only box has swapped corners: 1.jpg is skipped, not written without objects."""
    csv = tutorial_dataset(tmp_path, GOOD_0, "1,80,20,30,90,dog")
    result = convert(odapi, tmp_path, csv)
    report = converted(result, tmp_path / "out")
    assert_issues(result, report,
                  ("skipped box", f"{csv}:2", "xmin >= xmax"),
                  ("skipped image", f"{csv}:2", "none of its 1 box(es) is usable"))
    assert boxes_in(tmp_path / "out") == {"0.jpg": BOXES_0}
    assert report["totals"]["backgrounds"] == 0


def test_unknown_class_against_label_map(odapi, tmp_path):
    """--label-map names cat (id 7) and dog (id 3); the bird box on line 2 is skipped."""
    csv = tutorial_dataset(tmp_path, GOOD_0, "0,100,150,20,60,bird", GOOD_1)
    label_map = tmp_path / "data" / "label_map.pbtxt"
    label_map.write_text("item { id: 7 name: 'cat' }\nitem { id: 3 name: 'dog' }\n")
    result = convert(odapi, tmp_path, csv, "--label-map", label_map)
    report = converted(result, tmp_path / "out")
    assert_issues(result, report,
                  ("skipped box", f"{csv}:2", "class 'bird' is not in the label map"))
    assert boxes_in(tmp_path / "out") == {"0.jpg": BOXES_0, "1.jpg": BOXES_1}
    ids = {b.label: b.class_id for e in read_all(tmp_path / "out") for b in e.boxes}
    assert ids == {"cat": 7, "dog": 3}
    written = LabelMap.read(tmp_path / "out" / "label_map.pbtxt")
    assert written.names_by_id == {3: "dog", 7: "cat"}


def test_report_shows_the_label_map_ids(odapi, tmp_path):
    """With --label-map ids 3 (dog) and 7 (cat), report.json must list those ids."""
    csv = tutorial_dataset(tmp_path, GOOD_0, GOOD_1)
    label_map = tmp_path / "data" / "label_map.pbtxt"
    label_map.write_text("item { id: 7 name: 'cat' }\nitem { id: 3 name: 'dog' }\n")
    result = convert(odapi, tmp_path, csv, "--label-map", label_map)
    report = converted(result, tmp_path / "out")
    assert report["label_map"]["classes"] == {"3": "dog", "7": "cat"}


def test_tutorial_csv_row_with_empty_id_is_skipped(odapi, tmp_path):
    """Line 2 has no image id: that row is skipped and named; the rest converts."""
    csv = tutorial_dataset(tmp_path, GOOD_0, ",10,50,20,60,cat", GOOD_1)
    result = convert(odapi, tmp_path, csv)
    report = converted(result, tmp_path / "out")
    assert_issues(result, report, ("skipped box", f"{csv}:2", "the id column is empty"))
    assert boxes_in(tmp_path / "out") == {"0.jpg": BOXES_0, "1.jpg": BOXES_1}


@pytest.mark.parametrize("edit, action, reason", [
    pytest.param(lambda xml: xml.replace("<xmin>100</xmin>", "<xmin>170</xmin>"), "skipped box",
                 "xmin >= xmax", id="swapped-corners"),
    pytest.param(lambda xml: xml.replace("<name>cat</name>", ""), "skipped box",
                 "the object needs a <name>", id="object-without-name"),
    pytest.param(lambda xml: xml.replace("<ymax>50</ymax>", "<ymax>fifty</ymax>"), "skipped box",
                 "<bndbox> with numeric xmin, ymin, xmax, ymax", id="non-numeric-bndbox"),
])
def test_voc_bad_object_is_named_by_line_and_index(odapi, tmp_path, edit, action, reason):
    """b.xml's second <object> (line 17, the cat) is bad: only that box is dropped."""
    voc = voc_dataset(tmp_path)
    xml = voc / "Annotations" / "b.xml"
    assert xml.read_text().splitlines()[16] == "  <object>"
    xml.write_text(edit(xml.read_text()))
    result = convert(odapi, tmp_path, voc)
    report = converted(result, tmp_path / "out")
    assert_issues(result, report, (action, f"{xml}:17 <object>[2]", reason))
    assert boxes_in(tmp_path / "out") == {"a.jpg": BOXES_0, "b.jpg": BOXES_1}


# --------------------------------------------------------------------------------------------
# an image listed twice


def test_coco_image_listed_twice(odapi, tmp_path):
    """images[2] (id 3) repeats a.jpg: that entry and its box are skipped; images[0] wins."""
    path = coco_dataset(tmp_path, COCO_IMAGES + [
        {"id": 3, "file_name": "a.jpg", "width": 200, "height": 100}], [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 40, 40]},
        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [20, 30, 60, 60]},
        {"id": 3, "image_id": 3, "category_id": 2, "bbox": [100, 10, 50, 40]}])
    result = convert(odapi, tmp_path, path)
    report = converted(result, tmp_path / "out")
    assert_issues(result, report, ("skipped image", f"{path}: images[2] (id 3)",
                                   f"a.jpg is listed twice (first at {path}: images[0] (id 1))"))
    assert boxes_in(tmp_path / "out") == {"a.jpg": BOXES_0, "b.jpg": BOXES_1}


def test_voc_two_xml_files_for_one_image(odapi, tmp_path):
    """a_copy.xml also describes a.jpg: it is skipped, pointing at a.xml, the first one read."""
    voc = voc_dataset(tmp_path)
    copy = voc / "Annotations" / "a_copy.xml"
    copy.write_text(voc_xml("a.jpg", (200, 100), ("dog", (100, 10, 150, 50))))
    result = convert(odapi, tmp_path, voc)
    report = converted(result, tmp_path / "out")
    assert_issues(result, report, ("skipped image", str(copy),
                                   f"is already listed at {voc / 'Annotations' / 'a.xml'}"))
    assert boxes_in(tmp_path / "out") == {
        "a.jpg": BOXES_0, "b.jpg": sorted(BOXES_1 + [("cat", 100, 10, 150, 50)])}


# --------------------------------------------------------------------------------------------
# annotation files that cannot be read


def test_empty_csv_with_format_fails(odapi, tmp_path):
    """An empty annotations.csv read as --format tutorial-csv: nothing to convert, exit 1."""
    csv = tutorial_dataset(tmp_path)
    result = convert(odapi, tmp_path, csv, "--format", "tutorial-csv", "--class-name", "cat")
    assert_failed(result, tmp_path / "out", f"skipped file: {csv}: the file is empty",
                  "error: no images to convert")


def test_empty_csv_detected_says_empty(odapi, tmp_path):
    """An empty annotations.csv without --format: the message must say the file is empty."""
    csv = tutorial_dataset(tmp_path)
    result = convert(odapi, tmp_path, csv, "--class-name", "cat")
    assert_failed(result, tmp_path / "out", f"{csv}: the file is empty")


def test_tf_csv_missing_column_fails(odapi, tmp_path):
    """The header lacks ymax: the file is unusable, line 1 is named with the missing column."""
    folder = tmp_path / "data" / "tf"
    write_image(folder / "a.jpg", (200, 100))
    csv = folder / "_annotations.csv"
    csv.write_text("filename,width,height,class,xmin,ymin,xmax\na.jpg,200,100,cat,10,20,50\n")
    result = convert(odapi, tmp_path, csv, "--format", "tf-csv")
    assert_failed(result, tmp_path / "out", f"skipped file: {csv}:1: missing column(s) ymax",
                  "error: no images to convert")


def test_tf_csv_missing_column_in_roboflow_tree(odapi, tmp_path):
    """Roboflow tree: valid/_annotations.csv lacks ymax. Train converts; valid is reported."""
    root = tmp_path / "data" / "roboflow"
    write_image(root / "train" / "a.jpg", (200, 100))
    write_image(root / "valid" / "b.jpg", (160, 120))
    (root / "train" / "_annotations.csv").write_text(
        "filename,width,height,class,xmin,ymin,xmax,ymax\na.jpg,200,100,cat,10,20,50,60\n")
    bad = root / "valid" / "_annotations.csv"
    bad.write_text("filename,width,height,class,xmin,ymin,xmax\nb.jpg,160,120,dog,20,30,80\n")
    result = convert(odapi, tmp_path, root)
    report = converted(result, tmp_path / "out")
    assert_issues(result, report, ("skipped file", f"{bad}:1", "missing column(s) ymax"))
    assert boxes_in(tmp_path / "out") == {"a.jpg": BOXES_0}


def test_non_utf8_csv_names_the_line(odapi, tmp_path):
    """bad.csv has a Latin-1 byte on line 2: that file is skipped; good.csv still converts."""
    good = tutorial_dataset(tmp_path, GOOD_0)
    bad = good.with_name("bad.csv")
    bad.write_bytes(b"1,20,80,30,90,dog\n1,100,150,10,50,caf\xe9\n")
    result = convert(odapi, tmp_path, good, bad)
    report = converted(result, tmp_path / "out")
    assert_issues(result, report, ("skipped file", f"{bad}:2", "byte 0xe9 is not UTF-8 text"))
    assert boxes_in(tmp_path / "out") == {"0.jpg": BOXES_0}


def test_malformed_voc_xml_names_the_line(odapi, tmp_path):
    """b.xml closes <xmin> with </xmax> on line 11: b.xml is skipped; a.xml converts."""
    voc = voc_dataset(tmp_path)
    xml = voc / "Annotations" / "b.xml"
    lines = xml.read_text().splitlines(keepends=True)
    assert lines[10] == "      <xmin>20</xmin>\n"
    lines[10] = "      <xmin>20</xmax>\n"
    xml.write_text("".join(lines))
    result = convert(odapi, tmp_path, voc)
    report = converted(result, tmp_path / "out")
    assert_issues(result, report, ("skipped file", f"{xml}:11", "not well-formed XML"))
    assert boxes_in(tmp_path / "out") == {"a.jpg": BOXES_0}


def test_voc_xml_with_broken_root_tag_is_reported(odapi, tmp_path):
    """b.xml starts `<annotation` without `>`: it must be listed as skipped, not ignored.

    libxml2 notices the broken tag on line 2, where the next tag begins.
    """
    voc = voc_dataset(tmp_path)
    xml = voc / "Annotations" / "b.xml"
    xml.write_text(xml.read_text().replace("<annotation>", "<annotation", 1))
    result = convert(odapi, tmp_path, voc)
    report = converted(result, tmp_path / "out")
    assert_issues(result, report, ("skipped file", f"{xml}:2", "not well-formed XML"))
    assert boxes_in(tmp_path / "out") == {"a.jpg": BOXES_0}


def test_invalid_json_names_line_and_column(odapi, tmp_path):
    """A trailing comma on line 3: the COCO file is unusable, its line:col is named, exit 1."""
    coco = tmp_path / "data" / "coco"
    write_image(coco / "images" / "a.jpg", (200, 100))
    path = coco / "annotations.json"
    path.write_text('{"images": [{"id": 1, "file_name": "a.jpg"}],\n'
                    ' "annotations": [],\n'
                    ' "categories": [{"id": 1, "name": "cat"},]}\n')
    result = convert(odapi, tmp_path, path)
    assert_failed(result, tmp_path / "out",
                  f"skipped file: {path}:3:42: not valid JSON: Expecting value",
                  "error: no images to convert")


@pytest.mark.parametrize("bad_annotation, issues", [
    pytest.param({"id": 3, "image_id": 99, "category_id": 1, "bbox": [1, 1, 9, 9]},
                 [("skipped box", "annotations[2] (id 3)", "refers to an image id that is not")],
                 id="unknown-image-id"),
    pytest.param({"id": 3, "image_id": 2, "category_id": 9, "bbox": [1, 1, 9, 9]},
                 [("skipped box", "annotations[2] (id 3)", "category_id 9 is not in `categories`")],
                 id="unknown-category-id"),
])
def test_coco_annotation_with_unknown_reference(odapi, tmp_path, bad_annotation, issues):
    """annotations[2] points at an image or category that does not exist: only it is skipped."""
    path = coco_dataset(tmp_path, COCO_IMAGES, [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 40, 40]},
        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [20, 30, 60, 60]},
        bad_annotation])
    result = convert(odapi, tmp_path, path)
    report = converted(result, tmp_path / "out")
    assert_issues(result, report, *((a, f"{path}: {w}", p) for a, w, p in issues))
    assert boxes_in(tmp_path / "out") == {"a.jpg": BOXES_0, "b.jpg": BOXES_1}


def test_coco_image_whose_only_annotation_has_unknown_category(odapi, tmp_path):
    """b.jpg's only box has category 9: the box, then the image, are skipped."""
    path = coco_dataset(tmp_path, COCO_IMAGES, [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 40, 40]},
        {"id": 2, "image_id": 2, "category_id": 9, "bbox": [20, 30, 60, 60]}])
    result = convert(odapi, tmp_path, path)
    report = converted(result, tmp_path / "out")
    assert_issues(result, report,
                  ("skipped box", f"{path}: annotations[1] (id 2)", "category_id 9 is not in"),
                  ("skipped image", f"{path}: images[1] (id 2)", "none of its 1 box(es)"))
    assert boxes_in(tmp_path / "out") == {"a.jpg": BOXES_0}


def test_yolo_class_index_out_of_range(odapi, tmp_path):
    """labels/b.txt line 2 uses class 5 of 2 names: that box is skipped, the dog box kept."""
    data_yaml = yolo_dataset(tmp_path, "1 0.5 0.5 0.2 0.4\n5 0.5 0.5 0.1 0.1\n")
    labels = data_yaml.parent / "labels" / "b.txt"
    result = convert(odapi, tmp_path, data_yaml)
    report = converted(result, tmp_path / "out")
    assert_issues(result, report, ("skipped box", f"{labels}:2",
                                   "class '5' is not an index into the 2 names of data.yaml"))
    assert boxes_in(tmp_path / "out") == {"a.jpg": [("cat", 20, 20, 40, 60)],
                                          "b.jpg": [("dog", 80, 30, 120, 70)]}


def test_yolo_line_with_wrong_number_of_fields(odapi, tmp_path):
    """labels/b.txt's only line has 4 fields: the line, then image b.jpg, are skipped."""
    data_yaml = yolo_dataset(tmp_path, "\n1 0.5 0.5 0.2\n")
    labels = data_yaml.parent / "labels" / "b.txt"
    result = convert(odapi, tmp_path, data_yaml)
    report = converted(result, tmp_path / "out")
    assert_issues(result, report,
                  ("skipped box", f"{labels}:2", "expected `class xc yc w h` (5 numbers)"),
                  ("skipped image", str(labels), "none of its 1 box(es) is usable"))
    assert boxes_in(tmp_path / "out") == {"a.jpg": [("cat", 20, 20, 40, 60)]}


def test_tutorial_csv_without_class_column_needs_class_name(odapi, tmp_path):
    """5 columns and no --class-name: the file is unusable, line 1 and the fix are named."""
    csv = tutorial_dataset(tmp_path, "0,10,50,20,60", "1,20,80,30,90")
    result = convert(odapi, tmp_path, csv)
    assert_failed(result, tmp_path / "out", f"skipped file: {csv}:1: this CSV has no class column",
                  "--class-name", "error: no images to convert")


# --------------------------------------------------------------------------------------------
# fatal errors: bad label map, --strict, existing output, missing input, bad --split


@pytest.mark.parametrize("content, where, reason", [
    pytest.param("item { id: 1 name: 'cat' }\nitem { id: 2 nam: 'dog' }\n", ":2:14",
                 'not a valid label map: an item has no field named "nam"',
                 id="syntax-error"),
    pytest.param("item { id: 1 name: 'cat' }\nitem { id: 0 name: 'dog' }\n", ": item 2",
                 "item 'dog' has id 0; ids start at 1", id="id-zero"),
    pytest.param("item { id: 1 name: 'cat' }\nitem { id: 1 name: 'dog' }\n", ": item 2",
                 "id 1 is used by both 'cat' and 'dog'", id="duplicate-id"),
    pytest.param("item { id: 1 name: 'cat' }\nitem { name: 'dog' }\n", ": item 2",
                 "item 'dog' has no id", id="missing-id"),
    pytest.param("", "", "the label map has no items", id="empty-file"),
    pytest.param(None, "", "label map not found", id="missing-file"),
    pytest.param(b"item { id: 1 name: 'caf\xe9' }\n", "", "label map is not UTF-8 text",
                 id="not-utf8"),
])
def test_invalid_label_map_fails(odapi, tmp_path, content, where, reason):
    """A bad --label-map stops the run before anything is read or written (exit 1)."""
    csv = tutorial_dataset(tmp_path, GOOD_0, GOOD_1)
    label_map = tmp_path / "data" / "label_map.pbtxt"
    if isinstance(content, bytes):
        label_map.write_bytes(content)
    elif content is not None:
        label_map.write_text(content)
    result = convert(odapi, tmp_path, csv, "--label-map", label_map)
    assert_failed(result, tmp_path / "out", f"error: {label_map}{where}: {reason}")
    assert not (tmp_path / "out").exists()


def test_label_map_that_is_a_folder_fails_cleanly(odapi, tmp_path):
    """--label-map given a folder: a one-line error naming it, exit 1."""
    csv = tutorial_dataset(tmp_path, GOOD_0, GOOD_1)
    result = convert(odapi, tmp_path, csv, "--label-map", tmp_path / "data")
    assert_failed(result, tmp_path / "out", f"error: {tmp_path / 'data'}: ")


@pytest.mark.parametrize("bad_line, unusable_image, found, where", [
    pytest.param("0,10,50,20", None, "1 item(s) would be skipped", "3: expected 5 columns",
                 id="skipped-while-reading"),
    pytest.param(None, _remove, "1 item(s) would be skipped", "2: image not found",
                 id="image-missing-while-reading"),
    pytest.param(None, _truncate, "1 item(s) were skipped", "2: ", id="skipped-while-writing"),
])
def test_strict_fails_on_one_skipped_item(odapi, tmp_path, bad_line, unusable_image, found,
                                          where):
    """--strict: one bad CSV row, one missing image or one truncated image fails the run
    (exit 1, no output)."""
    lines = [GOOD_0, GOOD_1] + ([bad_line] if bad_line else [])
    csv = tutorial_dataset(tmp_path, *lines)
    if unusable_image:
        unusable_image(tmp_path / "data" / "images" / "1.jpg")
    result = convert(odapi, tmp_path, csv, "--strict")
    action = "skipped box" if bad_line else "skipped image"
    assert_failed(result, tmp_path / "out", f"error: --strict: {found}",
                  f"{action}: {csv}:{where}")


def test_existing_output_is_kept_without_overwrite(odapi, tmp_path):
    """A second conversion into a finished --out fails (exit 1) and leaves the first intact."""
    csv = tutorial_dataset(tmp_path, GOOD_0, GOOD_1)
    out = tmp_path / "out"
    assert convert(odapi, tmp_path, csv).code == 0
    earlier = snapshot(out)
    csv.write_text(GOOD_0 + "\n")
    result = convert(odapi, tmp_path, csv)
    assert result.code == 1, result.text
    assert f"error: {out}: the output folder already holds a conversion" in result.err
    assert "pass --overwrite to replace it" in result.err
    assert snapshot(out) == earlier
    assert not list(out.glob(".odapi-partial-*"))
    assert boxes_in(out) == {"0.jpg": BOXES_0, "1.jpg": BOXES_1}


def test_overwrite_replaces_output_and_removes_stale_shards(odapi, tmp_path):
    """--overwrite: a failed run keeps the old conversion; a good one replaces it entirely,
    deleting the old run's shards that the new run does not write (other files are kept)."""
    csv = tutorial_dataset(tmp_path, GOOD_0, GOOD_1)
    out = tmp_path / "out"
    first = convert(odapi, tmp_path, csv, "--split", "train=0.5,val=0.5", "--shards", "2")
    assert first.code == 0, first.text
    old_shards = {"train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord",
                  "val-00000-of-00002.tfrecord", "val-00001-of-00002.tfrecord"}
    assert old_shards <= {p.name for p in out.iterdir()}
    (out / "notes.txt").write_text("the user's own file\n")
    earlier = snapshot(out)

    # a run that fails with --overwrite leaves the earlier conversion as it was
    (tmp_path / "data" / "empty.csv").write_text("")
    failed = convert(odapi, tmp_path, tmp_path / "data" / "empty.csv", "--format",
                     "tutorial-csv", "--overwrite")
    assert failed.code == 1, failed.text
    assert "error: no images to convert" in failed.err
    assert snapshot(out) == earlier

    csv.write_text(GOOD_1 + "\n")
    result = convert(odapi, tmp_path, csv, "--overwrite", "--shards", "1")
    report = converted(result, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "label_map.pbtxt", "notes.txt", "report.json", "report.txt",
        "train-00000-of-00001.tfrecord"]
    assert (out / "notes.txt").read_text() == "the user's own file\n"
    assert report["totals"]["images"] == 1
    assert boxes_in(out) == {"1.jpg": BOXES_1}


def test_nonexistent_input_path_fails(odapi, tmp_path):
    """An input that does not exist is named; exit 1, nothing written."""
    tutorial_dataset(tmp_path, GOOD_0)
    missing = tmp_path / "data" / "anotations.csv"
    result = convert(odapi, tmp_path, missing)
    assert_failed(result, tmp_path / "out", f"error: {missing}: no such file or folder")


@pytest.mark.parametrize("spec, reason", [
    pytest.param("train=0.8,val=0.3", "the fractions in --split 'train=0.8,val=0.3' add up "
                 "to 1.1, not 1", id="fractions-over-1"),
    pytest.param("train:0.8,val:0.2", "cannot read 'train:0.8' in --split", id="colon"),
    pytest.param("train=0.5,train=0.5", "split 'train' appears twice", id="repeated-name"),
    pytest.param("train=eighty", "cannot read 'train=eighty'", id="not-a-number"),
    pytest.param("train=1.5,val=-0.5", "cannot read 'train=1.5'", id="fraction-out-of-range"),
])
def test_bad_split_spec_fails(odapi, tmp_path, spec, reason):
    """A --split that cannot be read stops the run before anything is created (exit 1)."""
    csv = tutorial_dataset(tmp_path, GOOD_0, GOOD_1)
    result = convert(odapi, tmp_path, csv, "--split", spec)
    assert_failed(result, tmp_path / "out", f"error: {reason}")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# command-line usage errors (argparse: exit 2)


@pytest.mark.parametrize("args, reason", [
    pytest.param(["--format", "xml"], "argument --format: invalid choice: 'xml'",
                 id="unknown-format"),
    pytest.param(["--coords", "cm"], "argument --coords: invalid choice: 'cm'",
                 id="unknown-coords"),
    pytest.param(["--shards", "two"], "argument --shards: expected a whole number",
                 id="shards-not-a-number"),
    pytest.param(["--shards", "-1"], "argument --shards", id="negative-shards"),
    pytest.param(["--workers", "-1"], "argument --workers", id="negative-workers"),
])
def test_usage_error_exits_2(odapi, tmp_path, args, reason):
    """A bad option value is a usage error: exit 2, the option and value named, nothing written."""
    csv = tutorial_dataset(tmp_path, GOOD_0, GOOD_1)
    result = convert(odapi, tmp_path, csv, *args)
    assert_failed(result, tmp_path / "out", "usage: odapi convert", reason, args[1],
                  code=2)
    assert not (tmp_path / "out").exists()


def test_missing_out_is_a_usage_error(odapi, tmp_path):
    """No --out at all: exit 2 naming the required option."""
    csv = tutorial_dataset(tmp_path, GOOD_0)
    before = snapshot(tmp_path / "data")
    result = odapi("convert", csv, "-q")
    assert result.code == 2, result.text
    assert "the following arguments are required: -o/--out" in result.err
    assert snapshot(tmp_path / "data") == before


def test_demo_dataset_with_a_missing_image_still_converts(odapi, tmp_path):
    """A real-looking dataset (demo-data VOC) with one image deleted: the rest converts."""
    from odapi.data.synthetic import write_demo_dataset

    written = write_demo_dataset(tmp_path / "data", count=4, seed=5, formats=("voc",))
    voc = written["voc"]
    (voc / "JPEGImages" / "000002.jpg").unlink()
    result = convert(odapi, tmp_path, voc)
    report = converted(result, tmp_path / "out")
    xml = voc / "Annotations" / "000002.xml"
    assert_issues(result, report, ("skipped image", str(xml), "image not found"))
    assert sorted(boxes_in(tmp_path / "out")) == ["000000.jpg", "000001.jpg", "000003.jpg"]
