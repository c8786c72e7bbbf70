"""Human and ``--json`` rendering of what a command reports, warns about or fails with.

Two audiences read the same run. A person reads short lines: results on stdout, and on stderr
``transferd: warning: …``, ``transferd: error: …`` and ``transferd: hint: …`` lines (lower case,
no final period, after age's ``errorWithHint``). A script passes ``--json`` and reads one JSON
object per line: each result on stdout, each warning and the final error on stderr. The two
streams stay apart so that ``transferd keygen … > pub.txt`` never captures a warning.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from typing import TypeAlias

PROG = "transferd"

JSONValue: TypeAlias = "str | int | float | bool | list[JSONValue] | dict[str, JSONValue] | None"


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """Give a command that reports something the ``--json`` option."""
    parser.add_argument(
        "--json",
        action="store_true",
        help="print results, warnings and errors as JSON objects, one per line",
    )


def _dumps(obj: Mapping[str, JSONValue]) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _prefixed(kind: str, message: str) -> list[str]:
    return [f"{PROG}: {kind}: {line}" for line in message.splitlines() or [""]]


class Output:
    """Where a command's results and warnings go, in the form the user asked for.

    ``sys.stdout`` and ``sys.stderr`` are looked up at each write, not kept, so tests that
    replace them (pytest's ``capsys``) see what the command printed.
    """

    def __init__(self, *, json_mode: bool) -> None:
        self.json_mode = json_mode

    def result(self, data: Mapping[str, JSONValue], human: Iterable[str]) -> None:
        """Report a result: ``data`` as one JSON line, or the ``human`` lines, on stdout."""
        if self.json_mode:
            print(_dumps(data), file=sys.stdout)
        else:
            for line in human:
                print(line, file=sys.stdout)
        sys.stdout.flush()

    def progress(self, data: Mapping[str, JSONValue], human: str) -> None:
        """Report how far a running command is: with ``--json`` an ``{"event": "progress"}``
        object on stdout (before the result, which is the last line), else a
        ``transferd: progress: …`` line on stderr."""
        if self.json_mode:
            print(_dumps({"event": "progress", **data}), file=sys.stdout, flush=True)
        else:
            print(f"{PROG}: progress: {human}", file=sys.stderr, flush=True)

    def warning(self, message: str, *, hint: str | None = None) -> None:
        """Warn on stderr; the command goes on."""
        self._to_stderr("warning", message, hint, {"warning": message, "hint": hint})

    def error(
        self,
        message: str,
        *,
        hint: str | None,
        exit_code: int,
        extra: Mapping[str, JSONValue] | None = None,
    ) -> None:
        """Report the error that ends the command (called by ``cli/main.py`` only). ``extra``
        (the error's fields: ``path``, ``job``, ``cause``...) goes into the JSON object beside
        ``error``, ``hint`` and ``exit_code``, which it cannot replace."""
        obj: dict[str, JSONValue] = {"error": message, "hint": hint, "exit_code": exit_code}
        fields = {k: v for k, v in (extra or {}).items() if k not in obj}
        self._to_stderr("error", message, hint, {**obj, **fields})

    def _to_stderr(
        self, kind: str, message: str, hint: str | None, obj: Mapping[str, JSONValue]
    ) -> None:
        if self.json_mode:
            print(_dumps(obj), file=sys.stderr)
        else:
            lines = _prefixed(kind, message)
            if hint:
                lines += _prefixed("hint", hint)
            print("\n".join(lines), file=sys.stderr)
        sys.stderr.flush()
