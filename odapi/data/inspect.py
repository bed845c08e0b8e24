"""`odapi inspect`: what is in a set of TFRecords, and pictures of a few examples with their boxes.

Works on any detection TFRecords with the OD API's keys, not only odapi's, and points out what
would trouble training (boxes outside [0, 1], empty boxes, sizes that disagree with the pixels,
non-integer source ids).
"""

from __future__ import annotations

import io
import random
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tabulate import tabulate

from odapi.data.examples import DetectionExample, from_tf_example
from odapi.data.records import expand_record_paths, read_records
from odapi.errors import OdapiError
from odapi.labelmap import LabelMap
from odapi.visualize import draw_boxes

SHOWN_PROBLEMS = 20


@dataclass
class RecordStats:
    files: list[str] = field(default_factory=list)
    images: int = 0
    boxes: int = 0
    backgrounds: int = 0
    boxes_per_class: Counter = field(default_factory=Counter)  # (id, name) -> count
    image_sizes: Counter = field(default_factory=Counter)  # (width, height) -> count
    boxes_per_image: Counter = field(default_factory=Counter)
    box_sizes: Counter = field(default_factory=Counter)  # COCO small / medium / large
    formats: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def add(self, example: DetectionExample, where: str, label_map: LabelMap | None) -> None:
        self.images += 1
        self.boxes += len(example.boxes)
        self.backgrounds += not example.boxes
        self.image_sizes[(example.width, example.height)] += 1
        self.boxes_per_image[len(example.boxes)] += 1
        self.formats[example.image_format or "?"] += 1
        if not example.source_id.isdigit():
            self.problems.append(f"{where}: source_id {example.source_id!r} is not an integer; "
                                 "Model Garden's evaluation needs integer ids")
        for box in example.boxes:
            name = box.label or (label_map.names_by_id.get(box.class_id, "?")
                                 if label_map else "?")
            self.boxes_per_class[(box.class_id, name)] += 1
            area = box.area
            self.box_sizes["small" if area < 32**2 else "medium" if area < 96**2 else "large"] += 1
            if not (0 <= box.xmin < box.xmax <= 1 and 0 <= box.ymin < box.ymax <= 1):
                self.problems.append(
                    f"{where}: box {name} ({box.xmin:g}, {box.ymin:g}, {box.xmax:g}, "
                    f"{box.ymax:g}) is not a non-empty box inside [0, 1]")
            if label_map and box.class_id not in label_map.names_by_id:
                self.problems.append(f"{where}: class id {box.class_id} is not in the label map")

    def summary(self) -> str:
        widths = [w for (w, _), n in self.image_sizes.items() for _ in range(n)]
        heights = [h for (_, h), n in self.image_sizes.items() for _ in range(n)]
        per_image = [k for k, n in self.boxes_per_image.items() for _ in range(n)]
        rows = [
            ["record files", len(self.files)],
            ["images", self.images],
            ["boxes", self.boxes],
            ["images without boxes", self.backgrounds],
            ["image formats", ", ".join(f"{f} {n}" for f, n in self.formats.most_common())],
        ]
        if self.images:
            rows += [
                ["width min / median / max",
                 f"{min(widths)} / {statistics.median(widths):g} / {max(widths)}"],
                ["height min / median / max",
                 f"{min(heights)} / {statistics.median(heights):g} / {max(heights)}"],
                ["most common sizes", ", ".join(f"{w}x{h} ({n})" for (w, h), n in
                                                self.image_sizes.most_common(3))],
                ["boxes per image min / mean / max",
                 f"{min(per_image)} / {statistics.mean(per_image):.2f} / {max(per_image)}"],
                ["box sizes (COCO small/medium/large)",
                 " / ".join(str(self.box_sizes[k]) for k in ("small", "medium", "large"))],
            ]
        lines = [tabulate(rows, tablefmt="plain"), ""]
        class_rows = [[i, name, n] for (i, name), n in sorted(self.boxes_per_class.items())]
        lines += [tabulate(class_rows, headers=["id", "class", "boxes"]), ""]
        lines.append(f"problems: {len(self.problems)}")
        lines += [f"  {p}" for p in self.problems[:SHOWN_PROBLEMS]]
        if len(self.problems) > SHOWN_PROBLEMS:
            lines.append(f"  ... {len(self.problems) - SHOWN_PROBLEMS} more")
        return "\n".join(lines)


def render(example: DetectionExample) -> Image.Image:
    image = Image.open(io.BytesIO(example.encoded))
    boxes = [(b.xmin, b.ymin, b.xmax, b.ymax) for b in example.boxes]
    labels = [b.label or str(b.class_id) for b in example.boxes]
    return draw_boxes(image, boxes, labels, [b.class_id for b in example.boxes])


def inspect_records(records: list[str | Path], render_count: int = 0, out: Path | None = None,
                    label_map: LabelMap | None = None, seed: int = 0
                    ) -> tuple[RecordStats, list[Path]]:
    """Count everything in `records`; draw `render_count` examples (sampled by `seed`) to `out`."""
    paths = expand_record_paths(records)
    stats = RecordStats(files=[str(p) for p in paths])
    rng = random.Random(seed)
    sample: list[tuple[int, str, DetectionExample]] = []  # reservoir of examples to draw
    for path in paths:
        for number, serialized in enumerate(read_records([path]), start=1):
            where = f"{path}: record {number}"
            try:
                example = from_tf_example(serialized)
            except Exception as e:  # a record that is not a tf.train.Example
                raise OdapiError(f"record {number} is not a tf.train.Example ({e})",
                                 where=str(path)) from None
            stats.add(example, where, label_map)
            if render_count:
                seen = stats.images
                if len(sample) < render_count:
                    sample.append((seen, where, example))
                elif (slot := rng.randrange(seen)) < render_count:
                    sample[slot] = (seen, where, example)
    if stats.images == 0:
        raise OdapiError("the record files hold no examples", where=str(paths[0]))
    written: list[Path] = []
    if render_count:
        out = Path(out or "inspect")
        out.mkdir(parents=True, exist_ok=True)
        for seen, where, example in sorted(sample, key=lambda s: s[0]):
            name = f"{seen:06d}-{Path(example.filename).stem or 'image'}.png"
            try:
                picture = render(example)
            except OSError as e:
                stats.problems.append(f"{where}: image/encoded does not decode ({e})")
                continue
            picture.save(out / name)
            written.append(out / name)
    return stats, written
