"""How long a run trains, and a learning-rate schedule that stretches with it.

The length comes from `--steps`, from `--epochs` (passes over the training records), from
`--set trainer.train_steps`, or from the config file. A schedule written for the file's length
(warm-up steps, decay steps, step boundaries) is read as fractions of that length and scaled
to the run's: `--steps 600` on a preset that decays over its 300 steps decays over 600, instead
of training the last 300 steps at a learning rate of zero. Schedule keys given with `--set` are
taken as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from odapi.errors import OdapiError

# Model Garden's schedule fields that count steps, in optimizer_config's learning_rate and
# warmup blocks (whichever type is active)
STEP_FIELDS = ("boundaries", "decay_steps", "total_decay_steps", "offset", "warmup_steps")


@dataclass(frozen=True)
class Length:
    """What the user asked for: steps, or epochs (kept within min and max steps)."""

    steps: int | None = None
    epochs: float | None = None
    min_steps: int = 1
    max_steps: int | None = None
    named: str = "--epochs"  # how a message names where the epochs came from

    def __post_init__(self) -> None:
        if self.steps is not None and self.epochs is not None:
            raise OdapiError("give --steps or --epochs, not both")
        if self.epochs is not None and self.epochs <= 0:
            raise OdapiError(f"--epochs must be more than 0, not {self.epochs:g}")


@dataclass(frozen=True)
class RunLength:
    """The resolved length, as the manifest records it."""

    steps: int
    epochs: float | None  # over the training records, when they were counted (--epochs)
    source: str  # "--steps", "--epochs", "--set trainer.train_steps", "the config"

    def to_dict(self) -> dict:
        return {"steps": self.steps, "epochs": self.epochs, "from": self.source}


def steps_per_epoch(examples: int, batch_size: int) -> int:
    return max(1, math.ceil(examples / batch_size))


def decide(length: Length, file_steps: int, set_steps: int | None, examples: int | None,
           batch_size: int) -> RunLength:
    """The run's steps: --steps, else --epochs, else --set trainer.train_steps, else the file."""
    per_epoch = steps_per_epoch(examples, batch_size) if examples else None
    if length.steps is not None:
        steps, source = length.steps, "--steps"
    elif length.epochs is not None:
        if per_epoch is None:
            raise OdapiError(f"{length.named} needs the number of training examples, and no "
                             "training records were found to count; give --steps instead")
        steps = math.ceil(length.epochs * per_epoch)
        steps = max(length.min_steps, min(steps, length.max_steps or steps))
        source = "--epochs"
    elif set_steps is not None:
        steps, source = set_steps, "--set trainer.train_steps"
    else:
        steps, source = file_steps, "the config"
    epochs = round(steps / per_epoch, 2) if per_epoch else None
    return RunLength(steps, epochs, source)


def scale_schedule(optimizer_config, file_steps: int, steps: int,
                   given: set[str]) -> tuple[dict, list[str]]:
    """Overrides that stretch the schedule from `file_steps` to `steps`, and what changed.

    `given` holds the dotted keys set on the command line: those stay as they are.
    """
    if steps == file_steps or file_steps <= 0:
        return {}, []
    factor = steps / file_steps
    overrides: dict = {}
    changes = []
    for block in ("learning_rate", "warmup"):
        kind = getattr(optimizer_config, block).type
        if not kind:
            continue
        config = getattr(getattr(optimizer_config, block), kind)
        for name in STEP_FIELDS:
            key = f"trainer.optimizer_config.{block}.{kind}.{name}"
            value = getattr(config, name, None)
            if not value or key in given:
                continue
            scaled = _scaled(value, factor)
            overrides.setdefault(block, {}).setdefault(kind, {})[name] = scaled
            changes.append(f"{kind} {name} {value} -> {scaled}")
    return overrides, changes


def _scaled(value, factor: float):
    if isinstance(value, list | tuple):  # boundaries: still increasing, each at least 1
        result, floor = [], 1
        for item in value:
            scaled = max(floor, round(item * factor))
            result.append(scaled)
            floor = scaled + 1
        return result
    return max(1, round(value * factor))
