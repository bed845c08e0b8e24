"""What several commands share: option groups declared once (as argparse parents), argument
types, and how results are printed."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
RESTART_ON_CRASH = "--restart-on-crash"  # handled before the command runs (supervise.py)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def score_threshold(text: str) -> float | str:
    """A score from 0 to 1, or `best`: the export's evaluation's best-F1 thresholds."""
    if text == "best":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a score from 0 to 1 or 'best', not "
                                         f"{text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, not {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def non_negative_int(text: str) -> int:
    return positive_int(text) if text.strip() not in ("0", "+0", "-0") else 0


def label_map_option(help_text: str) -> tuple[tuple, dict]:
    """--label-map, declared once; what it does differs by command, so each gives its help."""
    return ("--label-map",), dict(type=Path, metavar="FILE", help=help_text)


def _parent(*arguments: tuple[tuple, dict], title: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group(title) if title else parser
    for names, options in arguments:
        group.add_argument(*names, **options)
    return parser


@dataclass(frozen=True)
class Shared:
    """The option groups commands take as argparse parents: each declared here, once."""

    common: argparse.ArgumentParser
    model_dir: argparse.ArgumentParser
    quiet: argparse.ArgumentParser
    overwrite: argparse.ArgumentParser
    seed: argparse.ArgumentParser
    reading: argparse.ArgumentParser
    supervised: argparse.ArgumentParser


def shared_options() -> Shared:
    from odapi.data.formats import FORMATS

    return Shared(
        common=_parent((("-v", "--verbose"), dict(
            action="store_true", help="show TensorFlow's own log output, and tracebacks on "
            "errors"))),
        model_dir=_parent((("--model-dir",), dict(
            type=Path, required=True, metavar="DIR",
            help="the run's folder: checkpoints, event files, manifest.json"))),
        quiet=_parent((("-q", "--quiet"), dict(action="store_true", help="no progress"))),
        overwrite=_parent((("--overwrite",), dict(
            action="store_true", help="replace what an earlier run wrote there"))),
        seed=_parent((("--seed",), dict(type=int, default=0,
                                        help="random seed (default: 0)"))),
        reading=_parent(
            (("--format",), dict(choices=list(FORMATS),
                                 help="annotation format (default: detect)")),
            (("--images",), dict(
                type=Path, metavar="DIR",
                help="the folder that holds the images (default: found beside the "
                     "annotations, in the folder they name, or in an images/, JPEGImages/, "
                     "imgs/ or img/ folder next to them)")),
            (("--class-name",), dict(
                metavar="NAME",
                help="class of every box in a tutorial CSV without a class column")),
            label_map_option("class names and ids from this label_map.pbtxt (default: the "
                             "classes sorted by name, ids from 1; for records, their own)"),
            title="reading a dataset"),
        supervised=_parent(((RESTART_ON_CRASH,), dict(
            action="store_true",
            help="run the command in a child process and start it again when it crashes "
                 "(killed by a signal, e.g. by the OOM killer); errors to fix (exit 1, 2) "
                 "end it at once"))),
    )


def reading_options(args: argparse.Namespace, **more):
    """ConvertOptions from the `reading a dataset` group (and --split, -q)."""
    from odapi.data.convert import ConvertOptions
    from odapi.data.split import parse_split_spec

    return ConvertOptions(
        format=args.format, images=args.images, class_name=args.class_name,
        label_map=args.label_map, split=parse_split_spec(args.split) if args.split else None,
        progress=not args.quiet, **more)


def log(message: str) -> None:
    """Progress and notes go to stderr, whole lines, at once; results go to stdout."""
    print(message, file=sys.stderr, flush=True)
