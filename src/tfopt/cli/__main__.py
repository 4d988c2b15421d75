"""``python -m tfopt.cli``: the same as the ``tfopt`` command."""

from tfopt.cli.main import main

main()
