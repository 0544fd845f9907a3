"""Lightning callbacks: the adaptive p controller, metrics, sample images, checkpoints."""

from dgan.callbacks.adaptive_probability import AdaptiveProbability

__all__ = ["AdaptiveProbability"]
