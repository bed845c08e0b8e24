"""Datasets: annotation formats -> validated examples -> sharded TFRecords."""
