"""train_config's optimizer and learning-rate schedule as Model Garden's optimizer_config.

The OD API's momentum, RMSProp and Adam optimizers are Model Garden's sgd, rmsprop and adam;
its constant, exponential, cosine and manual-step schedules are Model Garden's constant,
exponential, cosine and stepwise, with the OD API's burn-in or warmup as a linear warmup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from odapi.engine.pipeline_config.draft import Draft, clean_float
from odapi.engine.pipeline_config.fates import APPLIED, APPROXIMATED, IGNORED

if TYPE_CHECKING:
    from odapi.protos import train_pb2

OPTIMIZER_CONFIG = "trainer.optimizer_config"


def translate_optimizer(draft: Draft, optimizer: train_pb2.Optimizer, path: str) -> None:
    which = optimizer.WhichOneof("optimizer")
    if which is None:
        return
    config = getattr(optimizer, which)
    base = f"{path}.{which}"
    key = f"{OPTIMIZER_CONFIG}.optimizer"
    if which == "momentum_optimizer":
        draft.set(key, {"type": "sgd",
                        "sgd": {"momentum": clean_float(config.momentum_optimizer_value)}})
        draft.mark(f"{base}.momentum_optimizer_value", APPLIED, f"{key}.sgd.momentum")
    elif which == "rms_prop_optimizer":
        draft.set(key, {"type": "rmsprop", "rmsprop": {
            "momentum": clean_float(config.momentum_optimizer_value),
            "rho": clean_float(config.decay), "epsilon": clean_float(config.epsilon)}})
        draft.mark(f"{base}.momentum_optimizer_value", APPLIED, f"{key}.rmsprop.momentum")
        draft.mark(f"{base}.decay", APPLIED, f"{key}.rmsprop.rho")
        draft.mark(f"{base}.epsilon", APPROXIMATED, f"{key}.rmsprop.epsilon; Keras adds it "
                   "outside the square root, TF1's RMSProp inside")
    else:
        draft.set(key, {"type": "adam", "adam": {"epsilon": clean_float(config.epsilon)}})
        draft.mark(f"{base}.epsilon", APPLIED, f"{key}.adam.epsilon")
    _learning_rate(draft, config.learning_rate, f"{base}.learning_rate")
    draft.mark(f"{path}.use_moving_average",
               IGNORED if optimizer.use_moving_average else APPLIED,
               "odapi evaluates and exports the trained weights, not a moving average"
               if optimizer.use_moving_average else "no moving average of the weights")


def _learning_rate(draft: Draft, rate: train_pb2.LearningRate, path: str) -> None:
    which = rate.WhichOneof("learning_rate")
    if which is None:
        return
    config = getattr(rate, which)
    base = f"{path}.{which}"
    key = OPTIMIZER_CONFIG
    warmup: dict = {"type": None}
    if which == "constant_learning_rate":
        schedule = {"type": "constant",
                    "constant": {"learning_rate": clean_float(config.learning_rate)}}
        draft.mark(f"{base}.learning_rate", APPLIED, f"{key}.learning_rate.constant")
    elif which == "exponential_decay_learning_rate":
        schedule = {"type": "exponential", "exponential": {
            "initial_learning_rate": clean_float(config.initial_learning_rate),
            "decay_steps": config.decay_steps, "decay_rate": clean_float(config.decay_factor),
            "staircase": config.staircase, "offset": config.burnin_steps}}
        for name in ("initial_learning_rate", "decay_steps", "staircase"):
            draft.mark(f"{base}.{name}", APPLIED, f"{key}.learning_rate.exponential.{name}")
        draft.mark(f"{base}.decay_factor", APPLIED,
                   f"{key}.learning_rate.exponential.decay_rate")
        if config.burnin_steps:
            warmup = _linear_warmup(config.burnin_steps, config.burnin_learning_rate)
            draft.mark(f"{base}.burnin_steps", APPROXIMATED, "a linear warmup from "
                       "burnin_learning_rate over burnin_steps, where the OD API holds it")
            draft.mark(f"{base}.burnin_learning_rate", APPROXIMATED, "the warmup's start")
        draft.mark(f"{base}.min_learning_rate", IGNORED,
                   "Model Garden's exponential decay has no floor")
    elif which == "cosine_decay_learning_rate":
        lead = config.warmup_steps + config.hold_base_rate_steps
        schedule = {"type": "cosine", "cosine": {
            "initial_learning_rate": clean_float(config.learning_rate_base),
            "decay_steps": max(1, config.total_steps - lead), "offset": lead}}
        if config.warmup_steps:
            warmup = _linear_warmup(config.warmup_steps, config.warmup_learning_rate)
        draft.mark(f"{base}.learning_rate_base", APPLIED,
                   f"{key}.learning_rate.cosine.initial_learning_rate")
        draft.mark(f"{base}.total_steps", APPLIED, f"{key}.learning_rate.cosine.decay_steps"
                   " (after the warmup) and offset")
        for name in ("warmup_steps", "warmup_learning_rate"):
            draft.mark(f"{base}.{name}", APPLIED, f"{key}.warmup.linear.{name}")
        draft.mark(f"{base}.hold_base_rate_steps",
                   APPLIED if not config.hold_base_rate_steps else APPROXIMATED,
                   "the decay starts after it; Model Garden's cosine dips slightly while "
                   "holding")
    else:
        steps = [(s.step, clean_float(s.learning_rate)) for s in config.schedule]
        schedule = {"type": "stepwise", "stepwise": {
            "boundaries": [step for step, _ in steps],
            "values": [clean_float(config.initial_learning_rate)] + [lr for _, lr in steps]}}
        draft.mark(f"{base}.initial_learning_rate", APPLIED,
                   f"{key}.learning_rate.stepwise.values[0]")
        draft.mark(f"{base}.schedule", APPLIED,
                   f"{key}.learning_rate.stepwise.boundaries and values")
        draft.mark(f"{base}.warmup", APPLIED if not config.warmup else IGNORED,
                   "Model Garden's stepwise schedule has no ramp to the first step's rate")
    draft.set(f"{key}.learning_rate", schedule)
    draft.set(f"{key}.warmup", warmup)


def _linear_warmup(steps: int, start: float) -> dict:
    """Model Garden's linear warmup from `start` to the schedule's first rate over `steps`."""
    return {"type": "linear", "linear": {"warmup_steps": steps,
                                         "warmup_learning_rate": clean_float(start)}}
