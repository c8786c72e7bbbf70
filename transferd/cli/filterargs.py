"""The filter options (``--include``, ``--exclude``, ``--filter`` and their ``-from`` files) of
the commands that take part of a tree: ``send`` from a directory, ``restore`` into one.

The rules and their order are rclone's (util/pathfilter.py says them); this module only reads
the options and the files they name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from transferd.errors import ConfigError
from transferd.util.pathfilter import PathFilter, rule_lines

_OPTIONS = (
    ("--include", "take only paths matching PATTERN (then everything else is left out)"),
    ("--exclude", "leave out paths matching PATTERN; PATTERN/ leaves out a directory"),
    ("--filter", "a rule '+ PATTERN' (take) or '- PATTERN' (leave out), in order"),
)


def add_filter_arguments(p: argparse.ArgumentParser, what: str) -> None:
    g = p.add_argument_group(
        f"which paths {what} (rclone's filter rules; the first rule that matches decides)",
        "PATTERN is a glob: * (not /), ** (any), ?, [a-z], {a,b}; a leading / anchors it at "
        "the root, a trailing / names a directory. Order: every --include, every --exclude, "
        "every --filter, each followed by its -from files (one rule a line, # comments).",
    )
    for option, text in _OPTIONS:
        g.add_argument(option, action="append", default=[], metavar="PATTERN" if option !=
                       "--filter" else "RULE", help=f"{text} (repeatable)")  # fmt: skip
        g.add_argument(
            f"{option}-from",
            action="append",
            default=[],
            type=Path,
            metavar="FILE",
            help=f"the {option.removeprefix('--')} rules of FILE, one a line ('-': stdin)",
        )


def path_filter(args: argparse.Namespace) -> PathFilter:
    """The filter the options give (no rule: takes every path)."""
    return PathFilter.from_options(
        include=args.include,
        exclude=args.exclude,
        filters=args.filter,
        include_from=[_lines(f) for f in args.include_from],
        exclude_from=[_lines(f) for f in args.exclude_from],
        filter_from=[_lines(f) for f in args.filter_from],
    )


def _lines(path: Path) -> list[str]:
    if str(path) == "-":
        return rule_lines(sys.stdin.read())
    try:
        return rule_lines(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(
            f"cannot read filter file {path}: {(e.strerror or str(e)).lower()}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"filter file {path} is not UTF-8 text") from None
