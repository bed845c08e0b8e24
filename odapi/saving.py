"""Saving a serving SavedModel: its signatures, without what tf_keras adds for reloading it as a
Keras model."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def signatures_only():
    """Save the serving signature, not a traced copy of every Keras layer's `call` (what
    tf_keras adds to a SavedModel for reloading it as a Keras model): nothing loads an export
    that way, and tracing each layer took much of the export's time. Together with
    `experimental_custom_gradients=False` in the caller (an inference model needs no
    gradients), an export of the demo run took 72 s instead of 161 s here."""
    from tf_keras.src.saving.legacy.saved_model.utils import keras_option_scope

    with keras_option_scope(save_traces=False):
        yield
