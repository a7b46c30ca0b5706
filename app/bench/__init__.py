"""The benchmarks behind ``focalrig bench …``: one module per benchmark, timed through :mod:`app.bench.timing`.

Each module takes a rich console, runs its measurement on synthetic (or the shared real) data and prints the
figures; none is asserted, they depend on the machine. Qt-free: the GUI does not use them and they do not use
the GUI or the command line (``app/cli/bench.py`` holds the commands and their options).
"""
