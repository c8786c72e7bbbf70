"""Name the word of a command line that transferd does not know, and what was probably meant.

argparse checks required options before it complains about unknown ones, so ``send … --too URL``
said "the following arguments are required: --to" and never named the typo; and an unknown
command was answered with the list of every command. This module reads the command line against
the parser first, word by word, the way argparse will (options that take a value consume the next
word), and stops at the first word no parser knows: "unknown option --too; did you mean --to?".
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Iterable, Sequence

from transferd.errors import ConfigError

_NUMBER = re.compile(r"-\d+(\.\d*)?$")


def check_words(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Raise ConfigError at the first unknown command or option of ``argv``, if any."""
    current = parser
    takes_value = optional = False
    for word in argv:
        if takes_value:
            takes_value = False
            if not (optional and word.startswith("-")):
                continue
        if word == "--":
            return
        if word.startswith("-") and word != "-" and not _NUMBER.match(word):
            action = _option(current, word)
            if action is None:
                name = word.split("=", 1)[0] if word.startswith("--") else word[:2]
                raise _unknown("option", name, _options(current), current.prog)
            if action.nargs == 0:
                takes_value = False
            elif word.startswith("--"):
                takes_value = "=" not in word
            else:
                takes_value = len(word) == 2  # -j8: the value is in the word
            optional = action.nargs == "?"
            continue
        sub = _subcommands(current)
        if sub is not None:
            chosen = sub.choices.get(word)
            if chosen is None:
                what = "command"
                if current is not parser:  # "unknown jobs command strat"
                    what = f"{current.prog.split(' ', 1)[-1]} command"
                raise _unknown(what, word, list(sub.choices), current.prog)
            current = chosen


def suggestion(word: str, known: Iterable[str]) -> str | None:
    """The known word closest to ``word``, if one is close enough to be what was meant."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown(what: str, word: str, known: list[str], prog: str) -> ConfigError:
    best = suggestion(word, known)
    message = f"unknown {what} {word}" + (f"; did you mean {best}?" if best else "")
    return ConfigError(message, hint=f"run '{prog} --help' for usage")


def _option(parser: argparse.ArgumentParser, word: str) -> argparse.Action | None:
    if word.startswith("--"):
        return parser._option_string_actions.get(word.split("=", 1)[0])
    return parser._option_string_actions.get(word[:2])


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [o for o in parser._option_string_actions if o.startswith("--")] + [
        o for o in parser._option_string_actions if not o.startswith("--")
    ]


def _subcommands(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None
