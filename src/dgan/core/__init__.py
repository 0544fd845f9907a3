"""Foundations: what every other package may use and what uses nothing of dgan.

The error type of bad input and its message helpers, seeded random streams, the rank of this
process, fitting a state dict to a module. Nothing here imports another dgan package
(the layers contract in pyproject.toml enforces it).
"""
