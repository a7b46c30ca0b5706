"""``python -m app.cli``: the ``focalrig`` command without the installed script."""

from app.cli.root import main

main()
