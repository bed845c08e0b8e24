"""The translation in progress: the experiment tree being built and each field's fate so far.

Every section (model, training, inputs) reads its part of the message and, for each field it
handles, writes Model Garden keys into the tree (`set`) and says what became of the field
(`mark`). The first fate a field gets stands, so a section marks particular fields before the
block around them. Paths in the file that exist nowhere are collected, to be reported together.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from odapi.data.records import expand_records
from odapi.engine.pipeline_config.fates import APPLIED, IGNORED, Fate, FateKind
from odapi.engine.pipeline_config.reading import PipelineFile, SetField

if TYPE_CHECKING:
    from google.protobuf.message import Message


@dataclass
class Draft:
    """What the sections share: the file, where to look for its paths, and what they built."""

    file: PipelineFile
    bases: list[Path]  # where relative paths are looked up: beside the config, then --data
    given: dict[str, str]  # what the command line supplies instead, by flag: "label_map", ...
    fields: list[SetField] = field(init=False)  # every field the file sets, in file order
    tree: dict = field(default_factory=dict)
    fates: dict[str, Fate] = field(default_factory=dict)  # field path -> its fate
    missing: list[str] = field(default_factory=list)  # "  line N: path = 'value'"

    def __post_init__(self) -> None:
        self.fields = self.file.fields()

    def set(self, dotted: str, value: Any) -> None:
        """Set `task.model.min_level`-style keys of the tree, creating the blocks on the way."""
        *parents, last = dotted.split(".")
        tree = self.tree
        for part in parents:
            tree = tree.setdefault(part, {})
        tree[last] = value

    def mark(self, prefix: str, fate: FateKind, note: str, warn: bool = False) -> None:
        """Give `prefix` (a field, or every not yet decided field in a block) its fate."""
        for f in self.fields:
            inside = f.path == prefix or f.path.startswith((prefix + ".", prefix + "["))
            if inside and f.path not in self.fates:
                self.fates[f.path] = Fate(f.path, f.shown(), f.line, fate, note, warn)

    def ignore_the_rest(self, why: Callable[[SetField], str]) -> None:
        """Every field no section decided is ignored, for the reason `why` gives."""
        for f in self.fields:
            if f.path not in self.fates:
                self.fates[f.path] = Fate(f.path, f.shown(), f.line, IGNORED, why(f))

    def apply_fields(self, message: Message, path: str, keys: Mapping[str, str]) -> None:
        """Copy each of `keys`' fields the file sets to its Model Garden key, as applied."""
        for name, key in keys.items():
            if message.HasField(name):
                value = getattr(message, name)
                self.set(key, clean_float(value) if isinstance(value, float) else value)
                self.mark(f"{path}.{name}", APPLIED, key)

    def has(self, prefix: str) -> bool:
        """Whether the file sets `prefix` or anything inside it."""
        return any(f.path == prefix or f.path.startswith(prefix + ".") for f in self.fields)

    def where(self, path: str) -> str:
        """`file:line` of a field, for error messages."""
        return self.file.where(path)

    def locate(self, path: str, value: str) -> str | None:
        """The field's file as it exists (see `find_path`); None, and noted, if it is nowhere."""
        found = find_path(value, self.bases)
        if found is None:
            self.missing.append(f"  line {self.file.line_of(path)}: {path} = {value!r}")
        return found


def find_path(value: str, bases: list[Path]) -> str | None:
    """`value` as it exists: absolute, remote (gs://...), or under the first base holding it.

    Globs count when they match at least one file.
    """
    if "://" in value:
        return value
    candidates = [Path(value)] if os.path.isabs(value) else [base / value for base in bases]
    for candidate in candidates:
        if glob.has_magic(str(candidate)):
            if expand_records(candidate):
                return os.path.abspath(candidate)
        # os.path.exists: any OSError (a name too long, say) means it is not there
        elif os.path.exists(candidate) or os.path.exists(f"{candidate}.index"):
            return os.path.abspath(candidate)
    return None


def clean_float(value: float) -> float:
    """A float32 field's value to 6 digits: 0.004, not 0.004000000189989805, in the YAML."""
    return float(f"{value:.6g}")
