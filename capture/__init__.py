"""Acquisition engine, recordings and event file formats (imports :mod:`drivers` only)."""
