"""The model dir: everything one run writes, and what reads it back.

`manifest.json` (what ran, on what data, with what result: `manifest.py`), the checkpoints
(`ckpt-N.*` and TensorFlow's `checkpoint` index: `checkpoints.py`), `eval/metrics.json` with
the best checkpoint copied to `best/` (`metrics.py`), `label_map.pbtxt`, `params.yaml`, and the
`train/` and `eval/` event files TensorBoard reads. Training, evaluation, export and predict
all come here for them; this package imports none of those.
"""
