"""Experiment tracking: loggers, W&B with kimg as the x axis, run information and the
offline W&B reader."""
