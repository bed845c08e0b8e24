"""What a conversion did: counts per split and class, and every issue with its location."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tabulate import tabulate

from odapi import __version__
from odapi.data.annotations import Action, Issue
from odapi.data.examples import DetectionExample

SHOWN_ISSUES = 20  # in the printed summary; the report files list them all


@dataclass
class SplitStats:
    images: int = 0
    boxes: int = 0
    backgrounds: int = 0  # images without objects
    encoded_bytes: int = 0
    boxes_per_class: Counter = field(default_factory=Counter)
    shards: list[str] = field(default_factory=list)

    def add(self, example: DetectionExample) -> None:
        self.images += 1
        self.boxes += len(example.boxes)
        self.backgrounds += not example.boxes
        self.encoded_bytes += len(example.encoded)
        self.boxes_per_class.update(box.label for box in example.boxes)


@dataclass
class ConversionReport:
    inputs: list[str]
    format: str
    output: str
    class_names: list[str]  # in label map order
    class_ids: list[int]  # the label map's id of each name
    label_map_source: str  # "built from the annotations" or the --label-map path
    options: dict = field(default_factory=dict)  # ConvertOptions.request(): what was asked
    splits: dict[str, SplitStats] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    finished: str | None = None

    @property
    def images(self) -> int:
        return sum(s.images for s in self.splits.values())

    def count(self, *actions: Action) -> int:
        return sum(issue.action in actions for issue in self.issues)

    @property
    def skipped(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.action.is_skip]

    def finish(self) -> None:
        self.finished = datetime.now(UTC).isoformat(timespec="seconds")

    def to_dict(self) -> dict:
        return {
            "odapi_version": __version__,
            "started": self.started,
            "finished": self.finished,
            "inputs": self.inputs,
            "format": self.format,
            "options": self.options,
            "output": self.output,
            "label_map": {"source": self.label_map_source,
                          "classes": dict(zip(self.class_ids, self.class_names, strict=True))},
            "totals": {
                "images": self.images,
                "boxes": sum(s.boxes for s in self.splits.values()),
                "backgrounds": sum(s.backgrounds for s in self.splits.values()),
                **{action.value: self.count(action) for action in Action},
            },
            "splits": {
                name: {
                    "images": s.images,
                    "boxes": s.boxes,
                    "backgrounds": s.backgrounds,
                    "encoded_bytes": s.encoded_bytes,
                    "boxes_per_class": {n: s.boxes_per_class[n] for n in self.class_names},
                    "shards": s.shards,
                }
                for name, s in self.splits.items()
            },
            "notes": self.notes,
            "issues": [issue.to_dict() for issue in self.issues],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def summary(self, all_issues: bool = False, written: bool = True) -> str:
        """The tables and issues; `written`: whether report.txt and report.json were (a
        conversion that failed writes neither)."""
        names = list(self.splits)
        split_rows = [[name, s.images, s.boxes, s.backgrounds, len(s.shards)]
                      for name, s in self.splits.items()]
        lines = [tabulate(split_rows, headers=["split", "images", "boxes", "backgrounds",
                                               "shards"], tablefmt="simple"), ""]
        class_rows = [[i, n, *(self.splits[s].boxes_per_class[n] for s in names)]
                      for i, n in zip(self.class_ids, self.class_names, strict=True)]
        lines += [tabulate(class_rows, headers=["id", "class", *names], tablefmt="simple"), ""]
        counts = {a: self.count(a) for a in Action}
        lines.append("issues: " + ", ".join(f"{n} {a.value}" for a, n in counts.items()))
        lines += [f"note: {note}" for note in self.notes]
        shown = self.issues if all_issues else [i for i in self.issues if i.action != Action.NOTE]
        for issue in shown[: None if all_issues else SHOWN_ISSUES]:
            lines.append(f"  {issue.action.value}: {issue.where}: {issue.message}")
        listed = " in report.txt / report.json" if written else ""
        if len(shown) > SHOWN_ISSUES and not all_issues:
            lines.append(f"  ... {len(shown) - SHOWN_ISSUES} more{listed}")
        hidden = [] if all_issues else [i for i in self.issues if i.action == Action.NOTE]
        if hidden:  # counted above: say what they are and where they are listed
            lines.append(f"  {len(hidden)} note{'s' if len(hidden) > 1 else ''}{listed}, e.g. "
                         f"{hidden[0].where}: {hidden[0].message}")
        return "\n".join(lines)
