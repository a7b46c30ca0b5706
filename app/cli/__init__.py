"""The ``focalrig`` command line (typer): one module per command group over the capture, calibration and fusion
layers, the root that joins them (:mod:`app.cli.root`), and the helpers only commands use.

Commands stay thin: they parse arguments, load the configuration, call into the library, show progress and
report errors in one line (:mod:`app.cli.common`). Anything worth testing without a terminal lives below. The
benchmark commands (:mod:`app.cli.bench`) run the modules of :mod:`app.bench`; ``focalrig gui`` opens
:mod:`app.gui`, imported only when it runs, so no command but that one loads Qt.
"""

from app.cli.root import app, main

__all__ = ["app", "main"]
