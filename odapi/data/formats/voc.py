"""Pascal VOC XML (LabelImg, CVAT): one `<annotation>` file per image.

Elements are looked up by name, never by position; coordinates are kept as floats. The image is
looked for by `<filename>`, `<path>` and `<folder>` where labelling tools put it (locate.py).
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from odapi.data.annotations import (
    Action,
    AnnotatedImage,
    Box,
    Issue,
    ParsedDataset,
    split_from_path,
)
from odapi.data.formats.common import ReadOptions, locate_image, parse_float, read_each
from odapi.data.formats.locate import ImageLocator, base_name
from odapi.errors import OdapiError

NAME = "voc"
DESCRIPTION = "Pascal VOC XML folders (LabelImg, CVAT): one <annotation> file per image"

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def sniff(path: Path) -> bool:
    if path.suffix.lower() != ".xml":
        return False
    try:
        for _, element in etree.iterparse(str(path), events=("start",), resolve_entities=False,
                                          no_network=True):
            return element.tag == "annotation"
    except etree.XMLSyntaxError:  # broken XML that means to be VOC: read() reports where
        try:
            return b"<annotation" in path.read_bytes()[:4096]
        except OSError:
            return False
    except OSError:
        return False
    return False


def read(files: list[Path], root: Path, options: ReadOptions) -> ParsedDataset:
    images = ImageLocator(root, options.images)
    return read_each(files, lambda path, dataset: _read_file(path, root, options, images,
                                                             dataset), images)


def _where(path: Path, element) -> str:
    return f"{path}:{element.sourceline} <{element.tag}>"


def _text(element, tag: str) -> str | None:
    child = element.find(tag)
    return child.text.strip() if child is not None and child.text else None


def _read_file(path: Path, root: Path, options: ReadOptions, images: ImageLocator,
               dataset: ParsedDataset):
    try:
        tree = etree.parse(str(path), _PARSER)
    except etree.XMLSyntaxError as e:
        line = e.position[0] if e.position else "?"
        raise OdapiError(f"not well-formed XML: {e.msg}", where=f"{path}:{line}") from None
    except OSError as e:
        raise OdapiError(f"cannot read the file: {e}", where=str(path)) from None
    annotation = tree.getroot()
    if annotation.tag != "annotation":
        raise OdapiError(f"the root element is <{annotation.tag}>, not VOC's <annotation>",
                         where=f"{path}:{annotation.sourceline}")
    recorded = _text(annotation, "path")
    filename = _text(annotation, "filename") or (base_name(recorded) if recorded else path.stem)
    image_path = locate_image(images, dataset, str(path), filename, path,
                              recorded=recorded, folder=_text(annotation, "folder"))
    if image_path is None:
        return

    declared = None
    size = annotation.find("size")
    if size is not None:
        width, height = parse_float(_text(size, "width")), parse_float(_text(size, "height"))
        if width and height:  # LabelImg writes 0 when it did not know; treat that as unstated
            declared = (round(width), round(height))

    image = AnnotatedImage(image_path, str(path), declared_size=declared,
                           split=split_from_path(path, root))
    for number, obj in enumerate(annotation.iter("object"), start=1):
        where = f"{_where(path, obj)}[{number}]"
        name = _text(obj, "name")
        bndbox = obj.find("bndbox")
        values = [parse_float(_text(bndbox, t)) if bndbox is not None else None
                  for t in ("xmin", "ymin", "xmax", "ymax")]
        if not name or None in values:
            image.skipped_boxes += 1
            missing = "a <name>" if not name else "<bndbox> with numeric xmin, ymin, xmax, ymax"
            dataset.issues.append(Issue(where, f"the object needs {missing}", Action.SKIPPED_BOX))
            continue
        difficult = _text(obj, "difficult") in ("1", "true", "True")
        image.boxes.append(Box(name, *values, where=where, difficult=difficult))
    dataset.add([image], path, options.coords)


def write(images: list[AnnotatedImage], folder: Path) -> None:
    """Write one VOC XML per image into `folder` (the images sit in ../JPEGImages or beside)."""
    folder.mkdir(parents=True, exist_ok=True)
    for image in images:
        width, height = image.declared_size
        annotation = etree.Element("annotation")
        etree.SubElement(annotation, "folder").text = image.image_path.parent.name
        etree.SubElement(annotation, "filename").text = image.image_path.name
        size = etree.SubElement(annotation, "size")
        for tag, value in (("width", width), ("height", height), ("depth", 3)):
            etree.SubElement(size, tag).text = str(value)
        for b in image.boxes:
            obj = etree.SubElement(annotation, "object")
            etree.SubElement(obj, "name").text = b.label
            etree.SubElement(obj, "difficult").text = str(int(b.difficult))
            bndbox = etree.SubElement(obj, "bndbox")
            for tag, value in (("xmin", b.xmin), ("ymin", b.ymin), ("xmax", b.xmax),
                               ("ymax", b.ymax)):
                etree.SubElement(bndbox, tag).text = f"{value:g}"
        xml = folder / f"{image.image_path.stem}.xml"
        xml.write_bytes(etree.tostring(annotation, pretty_print=True, encoding="utf-8",
                                       xml_declaration=False))
