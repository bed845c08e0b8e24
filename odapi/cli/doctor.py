"""`odapi doctor`: is this machine ready to train?"""

from __future__ import annotations

import argparse
from pathlib import Path

from odapi.cli.options import EXIT_FAILED, EXIT_OK, Shared


def add_doctor(commands, shared: Shared) -> None:
    p = commands.add_parser(
        "doctor", parents=[shared.common],
        help="check TensorFlow, Model Garden, GPUs, protos and folder access",
        description="Report versions, the GPUs TensorFlow sees, whether odapi's protos are "
                    "compiled, and whether the given folders are readable / writable. Exit "
                    "status 1 when a check fails (no GPU is only a warning).")
    p.add_argument("--data", type=Path, action="append", default=[], metavar="DIR",
                   help="a folder that must be readable (repeatable)")
    p.add_argument("--output", type=Path, action="append", default=[], metavar="DIR",
                   help="a folder that must be writable (repeatable)")
    p.set_defaults(run=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from odapi.doctor import format_checks, run_checks

    checks = run_checks(args.data, args.output)
    print(format_checks(checks))
    return EXIT_FAILED if any(c.status == "FAIL" for c in checks) else EXIT_OK
