"""Datasets: image folders and zips in the StyleGAN2-ADA layout, embedded digits, toy 2-D data.

Import the module you need (``dgan.data.images``, ``dgan.data.digits``, ``dgan.data.prepare``,
...) directly; this package imports nothing so that each stays cheap to load on its own.
"""
