"""The training and evaluation steps traced as written, without AutoGraph.

A tf.function converts every Python function it calls (Keras layers, Model Garden's tasks and
losses) with AutoGraph before tracing it, in every new process: measured in a 6-step run of the
demo preset on 2 cores, 9.1 s of converting (392 functions), 5.3 s (219) once the steps are
traced as written, out of 40-60 s. Model Garden's models, tasks and losses write their
data-dependent control flow with tf.cond and tf.while_loop, so the steps trace as written.
Its input pipelines do not (the SSD random crop branches on tensors with a
Python `if`): datasets keep AutoGraph. Code that needed AutoGraph fails loudly without it (a
symbolic tensor used as a Python bool, or iterated); it does not compute something else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

Function = TypeVar("Function", bound=Callable)


def without_autograph(function: Function) -> Function:
    """`function`, and what it calls while traced, unconverted (a tf.function nested inside it
    converts its own code again, as AutoGraph does)."""
    import tensorflow as tf

    return tf.autograph.experimental.do_not_convert(function)
