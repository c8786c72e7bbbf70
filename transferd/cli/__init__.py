"""The ``transferd`` command line: argument parsing, subcommands, output and exit codes."""
