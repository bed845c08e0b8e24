"""What a translation produces: the experiment tree, each field's fate, and how both are shown.

A fate says what became of one field of the file: applied, approximated (how) or ignored
(why). `odapi config explain` prints the fates as a table, `odapi config convert` writes the
tree as YAML with the approximations in comments, and `odapi train` prints the fates marked
`warn` before it starts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from odapi.errors import OdapiError

if TYPE_CHECKING:
    from odapi.labelmap import LabelMap

FateKind = Literal["applied", "approximated", "ignored"]
APPLIED: FateKind = "applied"
APPROXIMATED: FateKind = "approximated"
IGNORED: FateKind = "ignored"


@dataclass
class Fate:
    """What became of one field of the file."""

    path: str
    value: str
    line: int | None
    fate: FateKind
    note: str  # how it maps, or why it does not
    warn: bool = False  # worth telling the user when training starts


@dataclass
class Translation:
    """A pipeline.config as odapi's experiment tree, with what happened to each field."""

    source: Path
    summary: str  # e.g. "RetinaNet, MobileNetV2 backbone with FPN, 384x384 input"
    tree: dict  # experiment, label_map, task, trainer: what a YAML config holds
    fates: list[Fate]  # one per field the file sets, in file order
    num_classes: int | None = None  # as the file says (without background)
    num_classes_where: str = ""
    train_data: str | None = None
    val_data: str | None = None
    label_map: str | None = None
    eval_every_nth: int = 1
    max_eval_examples: int | None = None

    def warnings(self) -> list[str]:
        """The fates `odapi train` says before it starts, one line per shared note."""
        return [f"{', '.join(paths)}: {note}" for note, paths in
                _by_note(f for f in self.fates if f.warn).items()]

    def counts(self) -> dict[FateKind, int]:
        """How many fields were applied, approximated and ignored."""
        return {kind: sum(f.fate == kind for f in self.fates)
                for kind in (APPLIED, APPROXIMATED, IGNORED)}

    def check_label_map(self, labels: LabelMap, path: Path) -> None:
        """num_classes as the OD API counts it (no background) must match the label map."""
        if self.num_classes is None or self.num_classes == labels.max_id:
            return
        raise OdapiError(
            f"num_classes is {self.num_classes}, but the label map {path} has {len(labels)} "
            f"classes with ids up to {labels.max_id}: set num_classes: {labels.max_id} (odapi "
            f"gives Model Garden {labels.max_id + 1} classes, counting the background)",
            where=self.num_classes_where)

    def table(self) -> str:
        """One row per field: line, path, value, fate, and how or why (`config explain`)."""
        from tabulate import tabulate

        rows = [[f.line or "", _wrap_path(f.path, 46), f.value, f.fate, f.note]
                for f in self.fates]
        return tabulate(rows, headers=["line", "field", "value", "fate", "how / why"],
                        tablefmt="simple", maxcolwidths=[None, None, 20, None, 56])

    def to_yaml(self) -> str:
        """The experiment as an odapi YAML config, its fates summarized in comments."""
        import textwrap

        import yaml

        counts = self.counts()
        lines = [f"Converted by `odapi config convert` from {self.source}", self.summary,
                 f"{len(self.fates)} fields: {counts[APPLIED]} applied, "
                 f"{counts[APPROXIMATED]} approximated, {counts[IGNORED]} ignored "
                 "(`odapi config explain` lists them).", "Approximated:"]
        for note, paths in _by_note(f for f in self.fates if f.fate == APPROXIMATED).items():
            lines += textwrap.wrap(f"{', '.join(paths)}: {note}", 96, initial_indent="- ",
                                   subsequent_indent="  ")
        if self.eval_every_nth > 1:
            lines.append("Not expressible here: the evaluation sample; pass "
                         f"--sample-1-of-n-eval-examples {self.eval_every_nth} to odapi train.")
        if self.max_eval_examples:
            lines.append(f"Not expressible here: eval_config.num_examples "
                         f"{self.max_eval_examples} (odapi train with this YAML evaluates every "
                         "validation example).")
        body = yaml.safe_dump(self.tree, sort_keys=False, default_flow_style=None, width=100)
        return "".join(f"# {line}\n" for line in lines) + body


def _by_note(fates: Iterable[Fate]) -> dict[str, list[str]]:
    """Fields that share a note, in file order: one line for the four box coder scales."""
    grouped: dict[str, list[str]] = {}
    for fate in fates:
        grouped.setdefault(fate.note, []).append(fate.path)
    return grouped


def _wrap_path(path: str, width: int) -> str:
    """A field path broken at dots to fit a table column."""
    lines = [""]
    for part in re.split(r"(?<=\.)", path):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    return "\n".join(lines)
