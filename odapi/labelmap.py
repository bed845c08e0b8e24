"""The label map: class names <-> integer ids, stored as the OD API's `label_map.pbtxt`.

Read and written through odapi's compiled `StringIntLabelMap` message, so any file the OD API's
tools wrote (`item { name: 'dog' id: 1 display_name: 'Dog' }`) reads unchanged. Ids start at 1;
0 is the background class that detectors add.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format

from odapi.atomic import atomic_write_text
from odapi.errors import OdapiError


def _label_map_message():
    try:
        from odapi.protos import string_int_label_map_pb2
    except ImportError as e:  # generated at install time
        raise OdapiError(
            "odapi's protobuf schemas are not compiled; run `make setup` "
            "(or `python -m odapi.protos.compile`) and try again"
        ) from e
    return string_int_label_map_pb2.StringIntLabelMap


@dataclass(frozen=True)
class LabelMap:
    """Class ids to names; ids are >= 1 and unique, names are unique."""

    names_by_id: dict[int, str]
    display_names: dict[int, str] = field(default_factory=dict)

    def __post_init__(self):
        ids_by_name: dict[str, int] = {}
        for class_id, name in self.names_by_id.items():
            if class_id < 1:
                raise ValueError(f"class id {class_id} for {name!r}: ids start at 1")
            if name in ids_by_name:
                raise ValueError(f"class {name!r} has two ids: {ids_by_name[name]} and {class_id}")
            ids_by_name[name] = class_id
        object.__setattr__(self, "_ids_by_name", ids_by_name)

    @classmethod
    def from_names(cls, names: Iterable[str]) -> LabelMap:
        """Ids 1..N in the order given."""
        return cls({i: name for i, name in enumerate(names, start=1)})

    @property
    def names(self) -> list[str]:
        return [self.names_by_id[i] for i in sorted(self.names_by_id)]

    @property
    def max_id(self) -> int:
        return max(self.names_by_id, default=0)

    def id_of(self, name: str) -> int | None:
        return self._ids_by_name.get(name)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.names_by_id)

    def __contains__(self, name: str) -> bool:
        return name in self._ids_by_name  # type: ignore[attr-defined]

    def to_text(self) -> str:
        message = _label_map_message()()
        for class_id in sorted(self.names_by_id):
            item = message.item.add(id=class_id, name=self.names_by_id[class_id])
            if class_id in self.display_names:
                item.display_name = self.display_names[class_id]
        return text_format.MessageToString(message)

    def write(self, path: Path) -> None:
        atomic_write_text(Path(path), self.to_text())

    @classmethod
    def parse(cls, text: str, where: str = "label map") -> LabelMap:
        message = _label_map_message()()
        try:
            text_format.Parse(text, message)
        except text_format.ParseError as e:
            position = f"{where}:{e.GetLine()}:{e.GetColumn()}" if e.GetLine() else where
            reason = (str(e).split(" : ", 1)[-1]
                      .replace('Message type "odapi.protos.StringIntLabelMapItem"', "an item")
                      .replace('Message type "odapi.protos.StringIntLabelMap"', "the label map"))
            raise OdapiError(
                f"not a valid label map: {reason} Expected items like "
                "`item { id: 1 name: 'cat' }`", where=position) from None
        names_by_id: dict[int, str] = {}
        display_names: dict[int, str] = {}
        for index, item in enumerate(message.item, start=1):
            name = item.name or item.display_name
            item_where = f"{where}: item {index}"
            if not item.HasField("id"):
                raise OdapiError(f"item {name!r} has no id; give it `id: N` (N >= 1)", item_where)
            if not name:
                raise OdapiError(f"item with id {item.id} has no name", item_where)
            if item.id < 1:
                raise OdapiError(
                    f"item {name!r} has id {item.id}; ids start at 1 (0 is background)", item_where
                )
            if item.id in names_by_id:
                raise OdapiError(
                    f"id {item.id} is used by both {names_by_id[item.id]!r} and {name!r}",
                    item_where,
                )
            if name in names_by_id.values():
                raise OdapiError(f"class {name!r} appears twice", item_where)
            names_by_id[item.id] = name
            if item.display_name and item.display_name != name:
                display_names[item.id] = item.display_name
        if not names_by_id:
            raise OdapiError("the label map has no items", where=where)
        return cls(names_by_id, display_names)

    @classmethod
    def read(cls, path: Path) -> LabelMap:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise OdapiError("label map not found", where=str(path)) from None
        except UnicodeDecodeError:
            raise OdapiError("label map is not UTF-8 text", where=str(path)) from None
        except OSError as e:
            raise OdapiError(f"cannot read the label map: {e.strerror}", where=str(path)) \
                from None
        return cls.parse(text, where=str(path))
