"""Datasets laid out the way labelling tools and tutorial repos leave them: images are found
without flags, every box lands on its image, and `inspect` counts what the report counted.

Each layout is made from one synthetic dataset (Pascal VOC, 6 images) whose conversion is the
reference: LabelImg's `images/` + `annotations/` with a foreign `<path>`; XMLs in `annots/`
whose `<folder>` exists nowhere, images with upper-case extensions; a tutorial repo with
`data/train_labels.csv`, `data/test_labels.csv` and the images in `../images`; two different
files for one image name.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from lxml import etree

from odapi.data.synthetic import write_demo_dataset

from conftest import TINY, read_all, read_split, run_odapi, snapshot

COUNT = 6


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """The synthetic dataset: voc/Annotations, voc/JPEGImages and tf-csv/_annotations.csv."""
    root = tmp_path_factory.mktemp("source")
    write_demo_dataset(root / "demo", count=COUNT, seed=11, formats=("voc", "tf-csv"))
    return root / "demo"


@pytest.fixture(scope="module")
def reference(source, tmp_path_factory) -> dict[str, list[tuple]]:
    out = tmp_path_factory.mktemp("reference") / "records"
    assert run_odapi("convert", source / "voc", "--out", out, "-q").code == 0
    return boxes_by_image(out)


def boxes_by_image(out: Path, split: str | None = None) -> dict[str, list[tuple]]:
    examples = read_split(out, split) if split else read_all(out)
    result = {e.filename.lower(): sorted((b.label, *(round(v, 3) for v in (
        b.xmin * e.width, b.ymin * e.height, b.xmax * e.width, b.ymax * e.height)))
        for b in e.boxes) for e in examples}
    assert len(result) == len(examples), "an image was written twice"
    return result


def relabel(xml: Path, target: Path, **fields: str) -> None:
    """Copy a VOC file to `target`, replacing the text of top-level elements."""
    tree = etree.parse(str(xml))
    for tag, text in fields.items():
        element = tree.getroot().find(tag)
        if element is None:
            element = etree.SubElement(tree.getroot(), tag)
        element.text = text
    target.parent.mkdir(parents=True, exist_ok=True)
    tree.write(str(target))


def stems(source: Path) -> list[str]:
    return sorted(p.stem for p in (source / "voc" / "JPEGImages").glob("*.jpg"))


def labelimg(source: Path, root: Path, image_folder: str = "images", folder_text: str = "images",
             extension: str = ".jpg", annotations: str = "annotations") -> Path:
    """`root/<image_folder>/*<extension>` + `root/<annotations>/*.xml` as LabelImg writes them:
    `<folder>` and `<path>` from the labeller's computer, `<filename>` with a lower-case .jpg."""
    for stem in stems(source):
        image = root / image_folder / f"{stem}{extension}"
        image.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / "voc" / "JPEGImages" / f"{stem}.jpg", image)
        relabel(source / "voc" / "Annotations" / f"{stem}.xml",
                root / annotations / f"{stem}.xml", folder=folder_text,
                filename=f"{stem}.jpg",
                path=f"/home/alice/Desktop/{folder_text}/{stem}.jpg")
    return root


def convert(odapi, source: Path, out: Path, *args):
    before = snapshot(source)
    result = odapi("convert", source, "--out", out, "-q", *args)
    assert snapshot(source) == before  # nothing the user gave is modified
    return result


def report_of(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def inspected(odapi, records: Path) -> dict[str, int]:
    """`odapi inspect`'s counts: images, boxes, and boxes per class."""
    result = odapi("inspect", records, "--render", "0")
    assert result.code == 0, result.text
    counts = {}
    for line in result.out.splitlines():
        parts = re.split(r"\s{2,}", line.strip())
        if len(parts) == 3 and parts[0].isdigit() and parts[2].isdigit():  # id, class, boxes
            counts[parts[1]] = int(parts[2])
        elif len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_labelimg_images_beside_annotations_folder(odapi, source, reference, tmp_path):
    """LabelImg: `<folder>images</folder>`, `<path>` absolute on another computer."""
    root = labelimg(source, tmp_path / "dataset")
    result = convert(odapi, root, tmp_path / "out")
    assert result.code == 0, result.text
    assert boxes_by_image(tmp_path / "out") == reference
    report = report_of(tmp_path / "out")
    assert report["totals"]["skipped image"] == 0
    # where the images were found: one line for the folder, not one per image
    found = [n for n in report["notes"] if "found in" in n]
    assert found == [f"{COUNT} image(s) for the annotations in {root / 'annotations'} found "
                     f"in {root / 'images'}"]
    assert found[0] in result.out

    counts = inspected(odapi, tmp_path / "out")
    assert counts["images"] == COUNT
    assert counts["boxes"] == sum(len(b) for b in reference.values())
    for name in ("circle", "square", "triangle"):
        assert counts[name] == sum(b[0] == name for boxes in reference.values() for b in boxes)


def test_folder_that_exists_nowhere_and_upper_case_extensions(odapi, source, reference,
                                                              tmp_path):
    """XMLs in `annots/` naming a `<folder>` that is not here; the images are `img/x.JPG`."""
    root = labelimg(source, tmp_path / "dataset", image_folder="img",
                    folder_text="Labelling session 3", extension=".JPG", annotations="annots")
    result = convert(odapi, root, tmp_path / "out")
    assert result.code == 0, result.text
    assert boxes_by_image(tmp_path / "out") == reference
    assert inspected(odapi, tmp_path / "out")["images"] == COUNT


def test_pascal_voc_annotations_and_jpegimages(odapi, source, reference, tmp_path):
    root = tmp_path / "VOC2012"
    shutil.copytree(source / "voc", root)
    result = convert(odapi, root, tmp_path / "out")
    assert result.code == 0, result.text
    assert boxes_by_image(tmp_path / "out") == reference


def tutorial_repo(source: Path, root: Path) -> Path:
    """A tutorial repo: images/, annotations/*.xml, data/{train,test}_labels.csv (filenames)."""
    labelimg(source, root)
    with (source / "tf-csv" / "_annotations.csv").open() as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    test_images = set(stems(source)[-2:])
    (root / "data").mkdir()
    for split, keep in (("train", lambda s: s not in test_images),
                        ("test", lambda s: s in test_images)):
        with (root / "data" / f"{split}_labels.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(r for r in rows if keep(Path(r[0]).stem))
    return root


def test_tutorial_repo_with_train_and_test_csvs(odapi, source, reference, tmp_path,
                                               monkeypatch):
    """Its XML files and CSVs describe the same images: the user chooses, and in the compose
    stack (which sets ODAPI_OPTIONS_FROM) is told where the option goes."""
    monkeypatch.delenv("ODAPI_OPTIONS_FROM", raising=False)  # as typed, not in the stack
    root = tutorial_repo(source, tmp_path / "repo")
    ambiguous = convert(odapi, root, tmp_path / "none")
    assert ambiguous.code == 1 and "choose one with --format voc or --format tf-csv" in \
        ambiguous.err, ambiguous.err
    assert "ODAPI_TRAIN_ARGS" not in ambiguous.err
    monkeypatch.setenv("ODAPI_OPTIONS_FROM", "ODAPI_TRAIN_ARGS")
    assert "\n(the compose stack takes options in ODAPI_TRAIN_ARGS: set it in .env" in \
        convert(odapi, root, tmp_path / "none").err
    monkeypatch.delenv("ODAPI_OPTIONS_FROM")

    result = convert(odapi, root, tmp_path / "out", "--format", "tf-csv")
    assert result.code == 0, result.text
    train, test = (boxes_by_image(tmp_path / "out", s) for s in ("train", "test"))
    assert len(train) == COUNT - 2 and len(test) == 2
    assert {**train, **test} == reference
    assert f"found in {root / 'images'}" in result.out

    voc = convert(odapi, root, tmp_path / "voc", "--format", "voc")
    assert voc.code == 0, voc.text
    assert boxes_by_image(tmp_path / "voc") == reference


def test_two_different_files_for_one_image_are_an_error_naming_both(odapi, source, reference,
                                                                    tmp_path):
    root = labelimg(source, tmp_path / "dataset")
    first = stems(source)[0]
    stray = root / "annotations" / f"{first}.jpg"  # another picture under the same name
    shutil.copyfile(root / "images" / f"{stems(source)[1]}.jpg", stray)
    identical = root / "annotations" / f"{stems(source)[2]}.jpg"  # the same bytes: no doubt
    shutil.copyfile(root / "images" / identical.name, identical)

    result = convert(odapi, root, tmp_path / "out")
    assert result.code == 0, result.text
    issues = [i for i in report_of(tmp_path / "out")["issues"] if i["action"] != "note"]
    assert [(i["action"], i["where"]) for i in issues] == \
        [("skipped image", str(root / "annotations" / f"{first}.xml"))]
    assert str(stray) in issues[0]["message"]
    assert str(root / "images" / f"{first}.jpg") in issues[0]["message"]
    assert "--images DIR" in issues[0]["message"]
    expected = {k: v for k, v in reference.items() if k != f"{first}.jpg"}
    assert boxes_by_image(tmp_path / "out") == expected

    chosen = convert(odapi, root, tmp_path / "chosen", "--images", root / "images")
    assert chosen.code == 0, chosen.text
    assert boxes_by_image(tmp_path / "chosen") == reference


def test_missing_images_say_where_they_were_looked_for(odapi, source, tmp_path):
    root = labelimg(source, tmp_path / "dataset")
    shutil.rmtree(root / "images")
    result = convert(odapi, root, tmp_path / "out")
    assert result.code == 1
    assert "nothing usable" in result.err or "no images to convert" in result.err
    assert "image not found" in result.err
    assert f"looked in {root / 'annotations'}" in result.err
    assert "--images DIR" in result.err
    assert not (tmp_path / "out" / "report.json").exists()


@pytest.mark.slow
def test_train_takes_the_conversion_options_and_evaluates_on_test(odapi, source, tmp_path):
    """`train --data REPO --format tf-csv`: converted with the option, evaluated on the test
    split (there is no val), said once; the same command reuses the records, another format
    converts again."""
    root = tutorial_repo(source, tmp_path / "repo")
    model = tmp_path / "model"
    args = ["train", "--config", "demo", "--data", root, "--model-dir", model, *TINY]
    result = odapi(*args, "--format", "tf-csv", "--steps", "3", "--eval-every", "3")
    assert result.code == 0, result.text
    assert result.err.count("has no val split: evaluating on its test split") == 1
    assert f"found in {root / 'images'}" in result.err  # the conversion's report is shown
    manifest = json.loads((model / "manifest.json").read_text())
    validation = manifest["config"]["params"]["task"]["validation_data"]["input_path"]
    assert validation == str(model / "records" / "test-*.tfrecord")
    assert manifest["dataset"]["validation"]["examples"] == 2
    metrics = json.loads((model / "eval" / "metrics.json").read_text())
    assert [e["step"] for e in metrics["evaluations"]] == [3]
    assert "train 3/3 (100%) steps | total_loss " in result.err  # lines: stderr is no terminal

    again = odapi(*args, "--format", "tf-csv", "--steps", "3")
    assert again.code == 0, again.text
    assert "using the records converted earlier" in again.err
    assert "trained to its last step (3) already; nothing to do" in again.err
    other = odapi(*args, "--format", "voc", "--steps", "3")
    assert other.code == 0, other.text
    assert f"converting {root} to {model / 'records'}" in other.err


def test_conversion_options_with_records_are_refused(odapi, records, tmp_path):
    result = odapi("train", "--config", "demo", "--data", records, "--model-dir",
                   tmp_path / "model", "--format", "voc", "--images", tmp_path)
    assert result.code == 1
    assert result.err.strip() == (
        f"error: {records}: --format, --images apply to a dataset that needs "
        "converting, and this folder holds records `odapi convert` wrote; leave them out")
