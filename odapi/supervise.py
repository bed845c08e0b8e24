"""Run an odapi command again after a crash, and only after a crash (`--restart-on-crash`).

The compose services run their command this way, because Docker's restart policies cannot tell
a crash from an error the user must fix: `on-failure` restarted a dataset without a usable
image nine times in two minutes, and would have gone on forever. odapi's exit status can tell
them apart. 0 is done, 1 an error whose message says what to fix, 2 a bad command line, 130
interrupted: all final. A process killed by a signal crashed (the kernel's OOM killer sends
SIGKILL; a segmentation fault or one of TensorFlow's aborts ends it the same way) and is
started again, and training resumes from its last checkpoint. A command that crashes again and
again soon after it starts is given up after CRASH_LIMIT times in a row.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable

CRASH_LIMIT = 5  # crashes in a row, each soon after starting, before giving up
STEADY_SECONDS = 600.0  # a run this long was making progress: its crash starts a new count
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def supervise(argv: list[str], log: Callable[[str], None], *,
              crash_limit: int = CRASH_LIMIT, steady_seconds: float = STEADY_SECONDS) -> int:
    """Run `odapi ARGV` in a child process until it ends without crashing; its exit status.

    Signals that ask to stop (`docker compose stop` sends SIGTERM to PID 1) are passed on to
    the child, and no crash after them is restarted.
    """
    stopped_by: int | None = None  # the signal that asked to stop
    child: subprocess.Popen | None = None

    def forward(signum: int, _frame) -> None:
        nonlocal stopped_by
        stopped_by = signum
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in FORWARDED}
    try:
        crashes = 0
        while True:
            started = time.monotonic()
            # its own session: a terminal's Ctrl-C reaches it once, through `forward`
            child = subprocess.Popen([sys.executable, "-m", "odapi", *argv],
                                     start_new_session=True)
            if stopped_by is not None:  # asked to stop while it was being started
                child.send_signal(stopped_by)
            code = child.wait()
            if code >= 0 or stopped_by is not None:
                return code if code >= 0 else 128 - code
            crashes = 1 if time.monotonic() - started >= steady_seconds else crashes + 1
            name = _signal_name(-code)
            if _one_of_several_workers():
                log(f"odapi {argv[0]} crashed: killed by {name}{_why(-code)}. Not started "
                    "again: it is one of several workers, which stop together; start every "
                    "worker again to resume")
                return 128 - code
            if crashes >= crash_limit:
                log(f"odapi {argv[0]} crashed {crashes} times in a row (last: {name}); "
                    "giving up. Look at the lines above each crash, and at the host's memory "
                    "if it was SIGKILL")
                return 128 - code
            delay = min(60, 2 ** crashes)
            log(f"odapi {argv[0]} crashed: killed by {name}{_why(-code)}. Starting it again "
                f"in {delay} s (crash {crashes} in a row; it gives up after {crash_limit})")
            deadline = time.monotonic() + delay
            while stopped_by is None and time.monotonic() < deadline:
                time.sleep(0.2)
            if stopped_by is not None:
                return 128 + stopped_by
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _one_of_several_workers() -> bool:
    """Restarted alone, a worker of a cluster would wait for the others, which have stopped."""
    from odapi.engine import cluster
    from odapi.errors import OdapiError

    try:
        return cluster.active()
    except OdapiError:  # a cluster setting the child has already reported
        return False


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _why(signum: int) -> str:
    if signum == signal.SIGKILL:
        return " (the kernel's OOM killer sends it when memory runs out)"
    return ""
