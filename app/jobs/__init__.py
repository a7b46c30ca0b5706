"""The work a command does on one recording, as one pure function per kind, and the runner that does it over many.

A single command (``focalrig fuse``, ``stack``, ``calibrate``, ``events convert``) and ``focalrig batch`` call the
same function here, so a batch output is what the single command would have written. The functions print
nothing and know nothing of typer: they report through a :class:`~app.jobs.listener.Listener` (a progress bar
in a single command, a row of the summary in a batch) and raise the library's errors.

- :mod:`app.jobs.fuse`, :mod:`app.jobs.stack`, :mod:`app.jobs.calibrate`, :mod:`app.jobs.convert`,
  :mod:`app.jobs.inspect`: the per-recording work;
- :mod:`app.jobs.kinds`: what ``focalrig batch`` needs to know of each (inputs it takes, calibration it uses);
- :mod:`app.jobs.keyed`: one job into ``OUT/<name>-<uid>-<settings hash>/``, written under a temporary name and
  renamed when complete, with its provenance, skipped when already there;
- :mod:`app.jobs.runner`: those over many recordings on Dask distributed (an embedded local cluster, or an
  existing one by its scheduler address), its workers set up by :mod:`app.jobs.workers`;
- :mod:`app.jobs.inputs`: what PATHS name, and the identity (uid or content fingerprint) outputs are keyed by.
"""
