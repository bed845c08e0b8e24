"""Keeping TensorFlow's and Model Garden's own log output out of a user's way.

Their start-up chatter and per-loop blocks hide what matters; odapi's progress lines and tables
say it better. `--verbose` lets it all through.
"""

from __future__ import annotations

import os


def quiet_tensorflow(verbose: bool) -> None:
    """TensorFlow's C++ start-up messages; before TensorFlow is imported."""
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")


def quiet_model_garden(verbose: bool) -> None:
    """Model Garden logs every loop through absl, and Keras warns about what it cannot change."""
    if verbose:
        return
    import warnings

    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)
    absl_logging.get_absl_logger().addFilter(_not_about_gradients)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="keras|tf_keras")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")


def _not_about_gradients(record) -> bool:
    """False for TensorFlow's warning, on loading any Model Garden SavedModel, that gradients
    of its custom-gradient ops will fail: odapi never asks for them (export, predict)."""
    return "with ops with unsaved custom gradients" not in str(record.msg)
