"""`odapi convert`: annotations in any supported format -> sharded TFRecords, label map, report.

The pipeline reads in one direction: formats -> annotated images -> (split, label map) ->
examples (pixels read and checked, in parallel threads) -> shards in a staging folder -> moved
into place. Nothing the user gave is modified; a failed or interrupted run leaves no output that
looks complete.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from odapi.data.annotations import Action, AnnotatedImage, Issue
from odapi.data.examples import make_example, to_tf_example
from odapi.data.formats import ReadOptions, read_dataset
from odapi.data.images import prefetch
from odapi.data.records import ShardedWriter, StagedOutput, shard_names, shards_for
from odapi.data.report import ConversionReport, SplitStats
from odapi.data.split import assign_splits
from odapi.errors import OdapiError
from odapi.labelmap import LabelMap
from odapi.progress import progress_bar

PREFETCH_AHEAD = 32  # images whose reading starts before a worker needs them


@dataclass(frozen=True)
class ConvertOptions:
    format: str | None = None  # None: detect
    images: Path | None = None
    class_name: str | None = None
    coords: Literal["auto", "pixel", "normalized"] = "auto"
    label_map: Path | None = None  # None: build from the annotations, classes sorted by name
    split: dict[str, float] | None = None  # None: keep the input's splits
    default_split: dict[str, float] | None = None  # applied when the input has no splits
    seed: int = 0
    shards: int | None = None  # per split; None: about 100 MB each
    workers: int | None = None  # None: all cores
    strict: bool = False  # any skipped item fails the conversion
    overwrite: bool = False
    progress: bool = True
    verify_pixels: bool = False  # decode every image; default: JPEGs' structure only (jpeg.py)

    def request(self) -> dict:
        """What decides the records written (not how fast or how loudly): report.json keeps
        it, so that `odapi train --data` can tell whether earlier records still answer."""
        chosen = {"format": self.format, "images": self.images, "class_name": self.class_name,
                  "coords": self.coords, "label_map": self.label_map, "split": self.split,
                  "default_split": self.default_split, "seed": self.seed,
                  "verify_pixels": self.verify_pixels}
        return {k: str(v) if isinstance(v, Path) else v for k, v in chosen.items()}


class ConversionFailed(OdapiError):
    """Nothing usable, or --strict found skipped items; carries the report for the summary."""

    def __init__(self, message: str, report: ConversionReport):
        super().__init__(message)
        self.report = report


def convert(inputs: Iterable[Path], out: Path, options: ConvertOptions = ConvertOptions()
            ) -> ConversionReport:
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise OdapiError("give at least one annotation file or dataset folder to convert")
    missing = [p for p in inputs if not p.exists()]
    if missing:
        raise OdapiError("no such file or folder", where=str(missing[0]))
    label_map = LabelMap.read(options.label_map) if options.label_map else None
    output = StagedOutput(out, overwrite=options.overwrite)
    try:
        report = _convert(inputs, output, label_map, options)
    except BaseException:
        output.abort()
        raise
    output.commit()
    return report


def _read_inputs(inputs: list[Path], out: Path, options: ConvertOptions):
    read_options = ReadOptions(images=options.images, class_name=options.class_name,
                               coords=options.coords)
    images: list[AnnotatedImage] = []
    issues: list[Issue] = []
    notes: list[str] = []
    formats = set()
    for source in inputs:
        name, parsed = read_dataset(source, read_options, options.format, exclude={out})
        formats.add(name)
        images += parsed.images
        issues += parsed.issues
        notes += parsed.notes
    if len(formats) > 1:
        raise OdapiError(f"the inputs are in different formats ({', '.join(sorted(formats))}); "
                         "convert them one format at a time")
    return formats.pop(), images, issues, notes


def _real_path(path: str, folders: dict[str, str]) -> str:
    """`path` with symlinks resolved, resolving each folder once (images share a few)."""
    text = os.path.abspath(path)
    if os.path.islink(text):
        return os.path.realpath(text)
    folder, name = os.path.split(text)
    if folder not in folders:
        folders[folder] = os.path.realpath(folder)
    return os.path.join(folders[folder], name)


def _drop_repeated_images(images: list[AnnotatedImage], issues: list[Issue]):
    first: dict[str, AnnotatedImage] = {}
    folders: dict[str, str] = {}
    kept = []
    for image in images:
        if "\0" in image.file:  # no file system takes it; os calls would raise ValueError
            issues.append(Issue(image.where, f"the image name {image.file!r} holds a NUL "
                                "character; fix it in the annotation", Action.SKIPPED_IMAGE))
            continue
        key = _real_path(image.file, folders)
        if key in first:
            issues.append(Issue(image.where, f"{image.image_path} is already listed at "
                                f"{first[key].where}; merge the two entries", Action.SKIPPED_IMAGE))
            continue
        first[key] = image
        kept.append(image)
    return kept


def _convert(inputs: list[Path], output: StagedOutput, label_map: LabelMap | None,
             options: ConvertOptions) -> ConversionReport:
    format_name, images, issues, notes = _read_inputs(inputs, output.out, options)
    images = _drop_repeated_images(images, issues)
    if label_map is None:
        label_map = LabelMap.from_names(sorted({b.label for im in images for b in im.boxes}))
        label_map_source = "built from the annotations (classes sorted by name)"
    else:
        label_map_source = str(options.label_map)
    report = ConversionReport(inputs=[str(p) for p in inputs], format=format_name,
                              options=options.request(),
                              output=str(output.out), class_names=label_map.names,
                              class_ids=sorted(label_map.names_by_id),
                              label_map_source=label_map_source, issues=issues, notes=notes)
    if options.strict and report.skipped:
        raise ConversionFailed(f"--strict: {len(report.skipped)} item(s) would be skipped; "
                               "fix them or drop --strict", report)
    if not images:
        raise ConversionFailed("no images to convert", report)

    fractions = options.split
    if fractions is None and not any(image.split for image in images):
        fractions = options.default_split
    splits = assign_splits(images, fractions, options.seed)
    # source ids: 1..N in path order, stable across runs, worker counts and formats
    source_ids = [0] * len(images)
    for rank, index in enumerate(sorted(range(len(images)), key=lambda i: images[i].file), 1):
        source_ids[index] = rank
    writers = {}
    for split in sorted(set(splits)):
        members = [im for im, s in zip(images, splits, strict=True) if s == split]
        n = options.shards or shards_for(sum(_size(im.file) for im in members))
        names = shard_names(split, n)
        report.splits[split] = SplitStats(shards=names)
        writers[split] = ShardedWriter([output.path(name) for name in names], output.out)

    def work(index: int):
        """In a worker thread: everything but the write, serializing included."""
        if index + PREFETCH_AHEAD < len(images):
            prefetch(images[index + PREFETCH_AHEAD].file)
        example, example_issues = make_example(images[index], source_ids[index], label_map,
                                               options.verify_pixels)
        serialized = to_tf_example(example).SerializeToString() if example else None
        return example, serialized, example_issues

    try:
        results = _ordered_parallel(work, range(len(images)), options.workers)
        with progress_bar(len(images), "convert", "img", enabled=options.progress) as bar:
            for index, (example, serialized, example_issues) in enumerate(results):
                report.issues += example_issues
                if example is not None:
                    writers[splits[index]].write(serialized)
                    report.splits[splits[index]].add(example)
                bar.update(1)
    finally:
        for writer in writers.values():
            writer.close()

    report.finish()
    if options.strict and report.skipped:
        raise ConversionFailed(f"--strict: {len(report.skipped)} item(s) were skipped; "
                               "fix them or drop --strict", report)
    if report.images == 0:
        raise ConversionFailed("nothing usable is left: every image was skipped", report)
    output.write_text("label_map.pbtxt", label_map.to_text())
    output.write_text("report.txt", report.summary(all_issues=True) + "\n")
    output.write_text("report.json", report.to_json())
    return report


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _ordered_parallel(fn: Callable, items: Iterable, workers: int | None) -> Iterator:
    """fn over items on a thread pool, results in input order, at most a few in flight.

    Threads suffice: the work is file reads, image decoding and hashing, which release the GIL.
    The bounded window keeps memory flat however large the dataset.
    """
    workers = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="odapi-convert") as pool:
        window: deque = deque()
        for item in items:
            window.append(pool.submit(fn, item))
            if len(window) >= 4 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
