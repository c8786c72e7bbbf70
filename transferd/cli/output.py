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
from typing import TextIO, TypeAlias

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

    Streams are looked up when written to, not when the object is built, so tests that
    replace ``sys.stdout`` see what the command printed.
    """

    def __init__(
        self,
        *,
        json_mode: bool,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.json_mode = json_mode
        self._stdout = stdout
        self._stderr = stderr

    @property
    def stdout(self) -> TextIO:
        return self._stdout if self._stdout is not None else sys.stdout

    @property
    def stderr(self) -> TextIO:
        return self._stderr if self._stderr is not None else sys.stderr

    def result(self, data: Mapping[str, JSONValue], human: Iterable[str]) -> None:
        """Report a result: ``data`` as one JSON line, or the ``human`` lines, on stdout."""
        if self.json_mode:
            print(_dumps(data), file=self.stdout)
        else:
            for line in human:
                print(line, file=self.stdout)
        self.stdout.flush()

    def warning(self, message: str, *, hint: str | None = None) -> None:
        """Warn on stderr; the command goes on."""
        if self.json_mode:
            print(_dumps({"warning": message, "hint": hint}), file=self.stderr)
        else:
            lines = _prefixed("warning", message)
            if hint:
                lines += _prefixed("hint", hint)
            print("\n".join(lines), file=self.stderr)
        self.stderr.flush()

    def error(
        self,
        message: str,
        *,
        hint: str | None,
        exit_code: int,
        extra: Mapping[str, JSONValue] | None = None,
    ) -> None:
        """Report the error that ends the command (called by ``cli/main.py`` only)."""
        if self.json_mode:
            obj: dict[str, JSONValue] = {"error": message, "hint": hint, "exit_code": exit_code}
            obj.update(extra or {})
            print(_dumps(obj), file=self.stderr)
        else:
            lines = _prefixed("error", message)
            if hint:
                lines += _prefixed("hint", hint)
            print("\n".join(lines), file=self.stderr)
        self.stderr.flush()
