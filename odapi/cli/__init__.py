"""The `odapi` command: a thin layer over the library. Each command has a module-level pair,
`add_NAME` (its options, beside its handler) and `cmd_NAME` (one library call, then printing);
options several commands take are declared once, in `options.py`."""

from __future__ import annotations

import argparse
import io
import os
import re
import select
import sys

from odapi import __version__
from odapi.cli import data, deploy, doctor, evaluate, train
from odapi.cli.options import EXIT_FAILED, RESTART_ON_CRASH, log, shared_options
from odapi.errors import OdapiError
from odapi.quiet import quiet_tensorflow

COMMANDS = (data.add_convert, data.add_inspect, data.add_demo_data, train.add_train,
            train.add_config, evaluate.add_eval, train.add_checkpoints,
            evaluate.add_tensorboard, evaluate.add_report, train.add_demo, deploy.add_export,
            deploy.add_predict, doctor.add_doctor)
BUG_REPORT = "this is a bug in odapi, please report it with the output of --verbose"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="odapi",
        description="Train TensorFlow object detectors on your own labelled images.",
        epilog="Run `odapi COMMAND --help` for a command's options. Exit status: 0 success, "
               "1 failure (the message says why), 2 bad command line.")
    parser.add_argument("--version", action="version", version=f"odapi {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    shared = shared_options()
    for add in COMMANDS:
        add(commands, shared)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = build_parser().parse_args(argv)
    quiet_tensorflow(args.verbose)
    if getattr(args, "restart_on_crash", False):
        from odapi.supervise import supervise

        return supervise([a for a in argv if not _names_restart_on_crash(a)], log=log)
    try:
        code = args.run(args)
        sys.stdout.flush()  # a closed pipe fails here, not in the interpreter's exit
        return code
    except OdapiError as e:
        if args.verbose:
            raise
        print(f"error: {e}{_where_options_go(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError as e:
        if _stdout_closed():  # `odapi ... | head`: the reader has all it wanted
            _drop_stdout()
            return EXIT_BROKEN_PIPE
        if args.verbose:
            raise
        print(f"error: {unexpected(e)}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as e:  # a bug: still one sentence and a status, never a bare traceback
        if args.verbose:
            raise
        print(f"error: {unexpected(e)}", file=sys.stderr)
        return EXIT_FAILED


# What a shell reports for a command ended by SIGPIPE (128 + 13), as `yes | head` ends
EXIT_BROKEN_PIPE = 141


def _stdout_closed() -> bool:
    """Whether stdout is a pipe nobody reads any more (its reader gone), rather than another
    pipe or socket having broken."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
    except (OSError, ValueError, io.UnsupportedOperation):  # captured, as in tests
        return False
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush at exit does not
    fail on the closed pipe again (the recipe in Python's signal module docs)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


# The options compose.yaml passes itself, each from the variable that sets it
COMPOSE_SETS = {"--config": "ODAPI_CONFIG", "--data": "ODAPI_DATA",
                "--model-dir": "ODAPI_MODEL_DIR"}


def _where_options_go(error: OdapiError) -> str:
    """In the compose stack, whose services set ODAPI_OPTIONS_FROM, nobody types the command:
    an error that asks for an option also says which variable the option goes in."""
    variable = os.environ.get("ODAPI_OPTIONS_FROM")
    named = dict.fromkeys(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", error.message))
    if not variable or not named:
        return ""
    ways = [f"sets {option} from {COMPOSE_SETS[option]}" for option in named
            if option in COMPOSE_SETS]
    if any(option not in COMPOSE_SETS for option in named):
        ways.insert(0, f"takes options in {variable}")
    return f"\n(the compose stack {' and '.join(ways)}: set {'them' if len(ways) > 1 else 'it'} " \
        "in .env or beside `docker compose up`)"


def _names_restart_on_crash(argument: str) -> bool:
    """`--restart-on-crash`, or an abbreviation argparse took for it (`--restart`): the child
    must not get it, or it would supervise another child in turn."""
    return len(argument) > 3 and RESTART_ON_CRASH.startswith(argument)


def unexpected(error: Exception) -> str:
    """The message for an exception odapi did not expect; tests look for BUG_REPORT in it."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else "no message"
    return f"unexpected {type(error).__name__}: {detail}; {BUG_REPORT}"
