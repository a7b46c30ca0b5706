"""User-facing layer: the ``focalrig`` command line and (later) the Qt GUI; the only package importing Qt."""

__version__ = "0.1.0"
