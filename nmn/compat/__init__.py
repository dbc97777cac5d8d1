"""Compatibility with earlier releases: :mod:`nmn.compat.v03` converts nmn 0.3.x checkpoints.

Importing this package imports no framework; each converter imports its own when called.
"""
