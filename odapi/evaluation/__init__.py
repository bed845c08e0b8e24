"""Evaluation: COCO metrics with per-class AP, image summaries, and following a training run."""
