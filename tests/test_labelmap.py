"""The label map reads and writes the OD API's label_map.pbtxt through odapi's compiled proto."""

from __future__ import annotations

import pytest

from odapi.errors import OdapiError
from odapi.labelmap import LabelMap
from odapi.protos import string_int_label_map_pb2


def test_written_file_is_the_od_api_text_format_and_reads_back(tmp_path):
    path = tmp_path / "label_map.pbtxt"
    LabelMap.from_names(["Ball", "cat"]).write(path)

    message = string_int_label_map_pb2.StringIntLabelMap()
    from google.protobuf import text_format

    text_format.Parse(path.read_text(), message)
    assert [(i.id, i.name) for i in message.item] == [(1, "Ball"), (2, "cat")]
    assert LabelMap.read(path).names_by_id == {1: "Ball", 2: "cat"}


def test_reads_label_maps_written_by_the_od_api_tools(tmp_path):
    """Field order, quotes, display names and sparse ids as the OD API's own files have them."""
    path = tmp_path / "mscoco_label_map.pbtxt"
    path.write_text(
        "item {\n  name: \"/m/01g317\"\n  id: 1\n  display_name: \"person\"\n}\n"
        "item {\n  id: 3\n  name: 'car'\n}\n"
        "item { name: \"dog\" id: 18 display_name: \"Dog\" }\n")
    label_map = LabelMap.read(path)
    assert label_map.names_by_id == {1: "/m/01g317", 3: "car", 18: "dog"}
    assert label_map.display_names == {1: "person", 18: "Dog"}
    assert label_map.max_id == 18
    assert label_map.id_of("car") == 3 and label_map.id_of("cow") is None


@pytest.mark.parametrize(("text", "expected"), [
    ("item { name: 'a' id: 0 }", "ids start at 1"),
    ("item { name: 'a' }", "has no id"),
    ("item { name: 'a' id: 1 } item { name: 'b' id: 1 }", "id 1 is used by both 'a' and 'b'"),
    ("item { name: 'a' id: 1 } item { name: 'a' id: 2 }", "class 'a' appears twice"),
    ("item { name: 'a' id: 1 }\nitem { nme: 'b' id: 2 }", "2:8"),  # line:column of the typo
    ("", "has no items"),
])
def test_invalid_label_maps_say_what_is_wrong_and_where(tmp_path, text, expected):
    path = tmp_path / "bad.pbtxt"
    path.write_text(text)
    with pytest.raises(OdapiError) as raised:
        LabelMap.read(path)
    assert expected in str(raised.value)
    assert str(path) in str(raised.value)


def test_missing_label_map_names_the_path(tmp_path):
    with pytest.raises(OdapiError, match="label map not found"):
        LabelMap.read(tmp_path / "nope.pbtxt")
