"""One module per subcommand; each exposes ``register(subparsers)``.

``register`` adds the subcommand's parser and sets its ``run`` default: a function taking the
parsed arguments and an :class:`~transferd.cli.output.Output` and returning the exit code (0 on
success). Errors are raised, never printed: ``cli/main.py`` is the one place they become output.
"""
