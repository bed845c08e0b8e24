"""What a user sees while training: step, losses, learning rate, steps/s and ETA.

A bar on a terminal, lines in a log (`odapi.progress`). During a loop, which can take minutes,
the heartbeat reads the global step; it moves while the loop runs.
"""

from __future__ import annotations

import sys

import numpy as np

from odapi.progress import progress_bar


class ProgressBar:
    """An orbit train action: Model Garden calls it after every `steps_per_loop` steps."""

    def __init__(self, global_step, total: int, enabled: bool = True):
        self.global_step = global_step
        self.bar = progress_bar(total, "train", "step", enabled=enabled,
                                initial=int(global_step.numpy()),
                                poll=lambda: int(global_step.numpy()))
        self.latest: dict[str, float] = {}

    def __call__(self, train_output: dict) -> None:
        step = int(self.global_step.numpy())
        self.latest = {k: float(np.asarray(v)) for k, v in train_output.items()
                       if np.asarray(v).size == 1}
        shown = {k: f"{self.latest[k]:.3f}" for k in ("total_loss", "cls_loss", "box_loss")
                 if k in self.latest}
        if "learning_rate" in self.latest:
            shown["lr"] = f"{self.latest['learning_rate']:.2g}"
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(step - self.bar.n)  # to the step: the heartbeat may have moved n

    def write(self, message: str) -> None:
        self.bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()
