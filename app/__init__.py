"""User-facing layer, the only package importing Qt; three rooms and what they share.

:mod:`app.cli` is the ``focalrig`` command line (one module per command group), :mod:`app.bench` the benchmarks
behind ``focalrig bench``, :mod:`app.gui` the PyQt6 + pyqtgraph window (the only room importing Qt). Directly in
``app/`` sits only what several rooms use: the version and :mod:`app.config`, the configuration files' loader.
"""

__version__ = "0.1.0"
