"""The work a command does on one recording, as one pure function per kind.

A single command (``focalrig fuse``, ``stack``, ``calibrate``, ``events convert``) calls the function here that
does its work, so that any other runner of the same work writes what the single command would have written.
The functions print nothing and know nothing of typer: they report through a
:class:`~app.jobs.listener.Listener` (a progress bar in a single command) and raise the library's errors.

- :mod:`app.jobs.fuse`, :mod:`app.jobs.stack`, :mod:`app.jobs.calibrate`, :mod:`app.jobs.convert`,
  :mod:`app.jobs.inspect`: the per-recording work;
- :mod:`app.jobs.stacking`: how ``fuse`` and ``stack`` settle planes and span.
"""
