"""Parse the command line, dispatch to a subcommand, and turn its outcome into an exit code.

This is the one place where exceptions become output. A :class:`~transferd.errors.TransferdError`
was raised on purpose: its message (and hint) go to stderr, with ``--json`` beside its fields
(``path``, ``job``, ``cause``...), and its ``exit_code`` is returned.
``KeyboardInterrupt`` is a cancellation (130). Anything else is a bug: the traceback is printed
with a request to report it, and the exit code is 1. Scripts must read any code not in the
table of README.md as a failure (restic's rule, doc/075_scripting.rst).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import shlex
import sys
import traceback
import types
from collections.abc import Sequence
from typing import Any, NoReturn

from transferd import __version__
from transferd.cli import commands
from transferd.cli.output import PROG, JSONValue, Output
from transferd.cli.suggest import check_words
from transferd.errors import EXIT_BUG, CancelledByUserError, ConfigError, TransferdError

BUG_MESSAGE = f"this is a bug in {PROG}, please report it"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are raised, not printed, so they share one format.

    argparse would print the usage and exit 2 by itself; raising ConfigError instead gives a
    usage error the same ``transferd: error:`` line, the same hint and the same ``--json``
    object as every other error.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No abbreviations: "--exclude" was "ambiguous" beside --exclude-table, and a prefix
        # that works today breaks the day an option sharing it is added.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise ConfigError(message, hint=f"run '{self.prog} --help' for usage")


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser of every command, or only of the one ``argv`` names: importing all of them
    (aiohttp, rich, the copy agent...) took 0.2 s of every run, 0.1 s more than one needs."""
    parser = _Parser(
        prog=PROG,
        description="Stream chunked, compressed, end-to-end encrypted copies of databases "
        "and directories to a sovereign storage host.",
        epilog="Exit codes are listed in README.md; read any other code as a failure.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for module in command_modules(_named_command(argv)):
        module.register(subparsers)
    return parser


def command_names() -> list[str]:
    """The commands, in name order: one module of transferd/cli/commands each, named as the
    command it registers (a test holds them to it). Adding a command is adding a file with a
    ``register(subparsers)`` function, and no shared list to edit."""
    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.ispkg)


def command_modules(only: str | None = None) -> list[types.ModuleType]:
    """The modules of every command, or of ``only``."""
    names = [only] if only is not None else command_names()
    return [importlib.import_module(f"{commands.__name__}.{name}") for name in names]


def _named_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` runs, if its first word names one; else None (``--help``, a typo:
    the parser then knows every command, to list them or say which exist)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in command_names() else None


def _json_fields(exc: TransferdError) -> dict[str, JSONValue]:
    """The error's fields for its ``--json`` object: scripts read ``path`` or ``cause`` there
    instead of parsing the message."""
    fields: dict[str, JSONValue] = {}
    for name, value in exc.fields.items():
        fields[name] = [str(v) for v in value] if isinstance(value, list) else value
    return fields


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``transferd`` with ``argv`` (default: ``sys.argv[1:]``) and return its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # Until parsing succeeds, a usage error is reported in JSON if the user asked for JSON.
    out = Output(json_mode="--json" in argv)
    args: argparse.Namespace | None = None
    try:
        parser = build_parser(argv)
        check_words(parser, argv)
        args = parser.parse_args(argv)
        out = Output(json_mode=getattr(args, "json", False))
        code: int = args.run(args, out)
    except TransferdError as exc:
        out.error(exc.message, hint=exc.hint, exit_code=exc.exit_code, extra=_json_fields(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        cancelled = CancelledByUserError("interrupted")
        out.error(cancelled.message, hint=_resume_hint(args, argv), exit_code=cancelled.exit_code)
        return cancelled.exit_code
    except Exception as exc:  # noqa: BLE001 -- the one catch-all: anything else is a bug
        trace = "".join(traceback.format_exception(exc))
        if out.json_mode:
            out.error(BUG_MESSAGE, hint=None, exit_code=EXIT_BUG, extra={"traceback": trace})
        else:
            sys.stderr.write(trace)
            out.error(BUG_MESSAGE, hint=None, exit_code=EXIT_BUG)
        return EXIT_BUG
    return code


def _resume_hint(args: argparse.Namespace | None, argv: Sequence[str]) -> str | None:
    """What to run to go on after an interrupt: a command that resumes sets ``resume_hint``,
    a sentence in which ``{command}`` stands for the command line that was interrupted."""
    hint = getattr(args, "resume_hint", None)
    if not isinstance(hint, str):
        return None
    return hint.format(command=shlex.join([PROG, *argv]))
