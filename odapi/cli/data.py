"""`odapi convert`, `inspect` and `demo-data`: datasets in, records out, records looked at."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from odapi.cli.options import (
    EXIT_OK,
    Shared,
    label_map_option,
    non_negative_int,
    positive_int,
    reading_options,
)


def add_convert(commands, shared: Shared) -> None:
    from odapi.data.formats import FORMATS

    formats = "\n".join(f"  {name:13} {m.DESCRIPTION}" for name, m in FORMATS.items())
    p = commands.add_parser(
        "convert", parents=[shared.common, shared.reading, shared.seed, shared.overwrite,
                            shared.quiet],
        help="annotations in any common format -> TFRecords + label map + report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Convert labelled images to sharded TFRecords, a label_map.pbtxt and a "
                    "report of everything that was skipped or fixed.\n\nFormats (detected; "
                    f"--format overrides):\n{formats}",
        epilog="examples:\n"
               "  odapi convert annotations.csv --class-name Ball --images img/out --out records\n"
               "  odapi convert my-roboflow-export/ --out records\n"
               "  odapi convert voc/ --out records --split train=0.8,val=0.2\n\n"
               "exit status: 0 converted (skipped items are listed), 1 nothing usable was "
               "left or --strict found problems, 2 bad command line")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                   help="annotation file or dataset folder")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--split", metavar="SPEC",
                   help="split by image, e.g. train=0.8,val=0.2, seeded by --seed (default: "
                        "keep the input's train/valid/test folders, else everything is train)")
    p.add_argument("--coords", choices=["auto", "pixel", "normalized"], default="auto",
                   help="box coordinate frame (default: detect per file)")
    p.add_argument("--shards", type=positive_int, metavar="N",
                   help="record files per split (default: one per ~100 MB)")
    p.add_argument("--workers", type=positive_int, metavar="N",
                   help="parallel workers (default: all cores)")
    p.add_argument("--strict", action="store_true", help="fail on any item that would be skipped")
    p.add_argument("--verify-pixels", action="store_true",
                   help="decode every image to find damaged pixel data (slower; by default "
                        "JPEGs are checked by their structure: markers and end-of-image)")
    p.set_defaults(run=cmd_convert)


def cmd_convert(args: argparse.Namespace) -> int:
    from odapi.data.convert import ConversionFailed, convert

    options = reading_options(
        args, coords=args.coords, seed=args.seed, shards=args.shards, workers=args.workers,
        strict=args.strict, overwrite=args.overwrite, verify_pixels=args.verify_pixels)
    try:
        report = convert(args.inputs, args.out, options)
    except ConversionFailed as e:
        print(e.report.summary(written=False), file=sys.stderr)
        raise
    print(report.summary())
    print(f"\nwrote {args.out}/ (label_map.pbtxt, report.txt, report.json, "
          f"{sum(len(s.shards) for s in report.splits.values())} record file(s))")
    return EXIT_OK


def add_inspect(commands, shared: Shared) -> None:
    p = commands.add_parser(
        "inspect", parents=[shared.common, shared.seed],
        help="count what TFRecords hold and draw examples with their boxes",
        description="Print images, boxes per class, image sizes and boxes per image of detection "
                    "TFRecords, flag what would trouble training, and draw examples to PNG.")
    p.add_argument("records", nargs="+", metavar="RECORDS",
                   help="record files, folders of them, or globs")
    p.add_argument("--render", type=non_negative_int, default=8, metavar="N",
                   help="examples to draw (default: 8; 0 draws none), chosen by --seed")
    p.add_argument("-o", "--out", type=Path, default=Path("inspect"),
                   help="folder for the drawings (default: ./inspect)")
    names, options = label_map_option("name class ids of records that carry no class text")
    p.add_argument(*names, **options)
    p.set_defaults(run=cmd_inspect)


def cmd_inspect(args: argparse.Namespace) -> int:
    from odapi.data.inspect import inspect_records
    from odapi.labelmap import LabelMap

    label_map = LabelMap.read(args.label_map) if args.label_map else None
    stats, written = inspect_records(args.records, args.render, args.out, label_map, args.seed)
    print(stats.summary())
    if written:
        print(f"\ndrew {len(written)} example(s) with their boxes into {args.out}/")
    return EXIT_OK


def add_demo_data(commands, shared: Shared) -> None:
    from odapi.data.synthetic import DEFAULT_FORMATS, FORMATS

    p = commands.add_parser(
        "demo-data", parents=[shared.common, shared.seed],
        help="write an offline synthetic dataset of coloured shapes",
        description="Generate images of circles, squares and triangles on varied backgrounds, "
                    "annotated in each chosen format.")
    p.add_argument("out", type=Path, help="new or empty folder")
    p.add_argument("--count", type=positive_int, default=300, help="images (default: 300)")
    p.add_argument("--formats", default=",".join(DEFAULT_FORMATS),
                   help=f"comma-separated, from {', '.join(FORMATS)} "
                        f"(default: {','.join(DEFAULT_FORMATS)})")
    p.set_defaults(run=cmd_demo_data)


def cmd_demo_data(args: argparse.Namespace) -> int:
    from odapi.data.synthetic import write_demo_dataset

    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    written = write_demo_dataset(args.out, args.count, args.seed, formats)
    print(f"wrote {args.count} synthetic images to {args.out}/images; convert them with:")
    for name, path in written.items():
        print(f"  odapi convert {path} --out records --split train=0.8,val=0.2   # {name}")
    return EXIT_OK
