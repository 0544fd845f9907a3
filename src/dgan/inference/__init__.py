"""Loading and sampling a trained generator."""
