"""Progress a person can follow: a redrawn bar on a terminal, plain lines in a log.

tqdm redraws one line with carriage returns. A terminal shows that; `docker compose logs`,
`docker logs -f`, CI logs, `| tee` and nohup files show lines, and a bar that never ends its
line shows nothing until the job is over. So where the stream is not a terminal, progress is
printed as whole lines: at most one every `min_interval` seconds as work advances, and, while
nothing advances (a long training loop, a slow image), a heartbeat line at least every
`max_interval` seconds.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

MIN_INTERVAL = 10.0  # seconds between lines while work advances
MAX_INTERVAL = 60.0  # seconds without a line before the heartbeat prints one


def progress_bar(total: int | None, desc: str, unit: str, *, enabled: bool = True,
                 initial: int = 0, stream: TextIO | None = None,
                 poll: Callable[[], int] | None = None):
    """A tqdm bar on a terminal, else a LineProgress; both take update, set_postfix, write
    and close, and work as context managers. `poll` reads the current count for heartbeat
    lines (training's global step moves inside a loop, where no update is called)."""
    stream = stream or sys.stderr
    if enabled and not _is_terminal(stream):
        return LineProgress(total, desc, unit, initial=initial, stream=stream, poll=poll)
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled,
                dynamic_ncols=True, file=stream)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class LineProgress:
    """Progress as log lines, like
    `train 120/300 (40%) steps | total_loss 0.512 lr 0.08 | 2.10 step/s, ETA 1m26s`."""

    def __init__(self, total: int | None, desc: str, unit: str, *, initial: int = 0,
                 stream: TextIO | None = None, poll: Callable[[], int] | None = None,
                 min_interval: float = MIN_INTERVAL, max_interval: float = MAX_INTERVAL):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = initial
        self.stream = stream or sys.stderr
        self.poll = poll
        self.min_interval, self.max_interval = min_interval, max_interval
        self.postfix: dict[str, str] = {}
        self._created, self._initial = time.monotonic(), initial
        self._rate_from: tuple[float, int] | None = None  # (time, count) at the first update:
        #   the rate leaves out start-up (the first training loop also traces the graph)
        self._printed_at: float | None = None  # None: no line yet, the first one goes out
        self._printed: tuple | None = None  # (count, postfix) of the last line printed
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, daemon=True,
                                           name=f"odapi-progress-{desc}")
        self._heartbeat.start()

    def update(self, n: int = 1) -> None:
        with self._lock:
            self.n += n
            now = time.monotonic()
            if self._rate_from is None:
                self._rate_from = (now, self.n)
            if self._printed_at is None or now - self._printed_at >= self.min_interval:
                self._print(now)

    def set_postfix(self, values: dict, refresh: bool = False) -> None:
        self.postfix = {str(k): str(v) for k, v in values.items()}

    def write(self, message: str, file: TextIO | None = None) -> None:
        with self._lock:
            print(message, file=file or self.stream, flush=True)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        with self._lock:
            # the final state, unless the last line showed it: a heartbeat may have shown the
            # final count before the losses that came with it
            if self.n != self._initial and self._printed != (self.n, self.postfix):
                self._print(time.monotonic())

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def line(self, now: float | None = None) -> str:
        """The progress as one line of text."""
        now = time.monotonic() if now is None else now
        count = f"{self.n}/{self.total}" if self.total else str(self.n)
        if self.total:
            count += f" ({100 * self.n / self.total:.0f}%)"
        units = self.unit if self.unit.isupper() else f"{self.unit}s"  # MB, but steps
        parts = [f"{self.desc} {count} {units}"]
        if self.postfix:
            parts.append(" ".join(f"{k} {v}" for k, v in self.postfix.items()))
        started, first = self._rate_from or (now, self.n)
        elapsed, done = now - started, self.n - first
        if elapsed > 0 and done > 0:
            rate = done / elapsed
            speed = f"{rate:.2f} {self.unit}/s" if rate < 100 else f"{rate:.0f} {self.unit}/s"
            if self.total and self.n < self.total:
                speed += f", ETA {_duration((self.total - self.n) / rate)}"
            parts.append(speed)
        return " | ".join(parts)

    def _print(self, now: float) -> None:
        print(self.line(now), file=self.stream, flush=True)
        self._printed_at, self._printed = now, (self.n, dict(self.postfix))

    def _beat(self) -> None:
        """While the work runs: a line after `max_interval` seconds without one."""
        while not self._closed.wait(min(1.0, self.max_interval / 4)):
            last = self._printed_at if self._printed_at is not None else self._created
            if time.monotonic() - last < self.max_interval:
                continue
            polled = None
            if self.poll is not None:  # outside the lock: it may wait for TensorFlow
                with contextlib.suppress(Exception):  # a heartbeat never ends the work
                    polled = int(self.poll())
            with self._lock:
                if self._closed.is_set():
                    return
                if polled is not None:
                    self.n = max(self.n, polled)
                self._print(time.monotonic())


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
