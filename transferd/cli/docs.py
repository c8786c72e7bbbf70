"""The man page and the bash completion, generated from the parser so that they cannot drift
from the options the command really takes (``transferd generate``, after restic's).

Both walk the same tree: every command, its subcommands (``jobs start``…) and their options.
The man page is plain ``man(7)`` macros, readable by groff and mandoc; the completion is one
bash function that completes commands, subcommands, option names, the choices of an option
that has them and file names for the options whose value is a FILE or DIR.
"""

from __future__ import annotations

import argparse
import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from transferd import __version__
from transferd.cli.output import PROG
from transferd.errors import EXIT_CODES

ENVIRONMENT = {
    "TRANSFERD_STATE": "the sender's state directory (journals, job keys, the verify seen state); "
    "default $STATE_DIRECTORY under systemd, else ~/.local/state/transferd",
    "TRANSFERD_SOCKET": "the daemon's control socket that transferd jobs talks to; default "
    "/run/transferd/control.sock (the unit's); a daemon started from a terminal listens on "
    "control_socket of its [daemon] table, by default STATE/control.sock",
    "TRANSFERD_CONFIG": "the daemon's configuration file; default /etc/transferd/transferd.toml",
    "TRANSFERD_S3_CONFIG": "a TOML file whose [s3] table gives an s3:// store's endpoint and "
    "credentials file (else the AWS_* variables)",
}


@dataclass
class Command:
    """One (sub)command: its words after ``transferd``, its parser and its subcommands."""

    words: list[str]
    parser: argparse.ArgumentParser
    help: str = ""
    subcommands: list[Command] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " ".join([PROG, *self.words])

    def options(self) -> list[argparse.Action]:
        return [a for a in self.parser._actions if a.option_strings]

    def positionals(self) -> list[argparse.Action]:
        return [
            a
            for a in self.parser._actions
            if not a.option_strings and not isinstance(a, argparse._SubParsersAction)
        ]


def commands(parser: argparse.ArgumentParser, words: list[str] | None = None) -> Command:
    """The tree of commands below ``parser``."""
    top = Command(words or [], parser)
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {c.dest: c.help or "" for c in action._choices_actions}
        for name, sub in action.choices.items():
            child = commands(sub, [*top.words, name])
            child.help = helps.get(name, "")
            top.subcommands.append(child)
    return top


def walk(command: Command) -> Iterator[Command]:
    yield command
    for sub in command.subcommands:
        yield from walk(sub)


# --- the man page -----------------------------------------------------------------------------


def _roff(text: str) -> str:
    """Text escaped for roff: backslashes, a leading dot or quote, and hyphens in options."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = re.sub(r"`([^`]+)`", r"\\fB\1\\fR", text)
    # groff reads bytes: a character beyond ASCII (…, —) is named by its code point
    text = "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)
    return "\\&" + text if text[:1] in (".", "'") else text


def _option_head(action: argparse.Action) -> str:
    names = ", ".join(f"\\fB{_roff(o)}\\fR" for o in action.option_strings)
    if action.nargs == 0:
        return names
    metavar = action.metavar or (action.dest.upper() if action.choices is None else None)
    if metavar is None:
        metavar = "{" + ",".join(str(c) for c in action.choices or ()) + "}"
    return f"{names} \\fI{_roff(str(metavar))}\\fR"


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    if action.help == argparse.SUPPRESS:
        return ""
    return text % {"default": action.default, "prog": PROG} if "%(" in text else text


def man_page(parser: argparse.ArgumentParser, date: datetime.date | None = None) -> str:
    """transferd(1), every command and option in it."""
    day = (date or datetime.date.today()).isoformat()
    tree = commands(parser)
    out = [
        f'.TH TRANSFERD 1 "{day}" "transferd {__version__}" "User Commands"',
        ".nh",  # no hyphenation: an option name split at a line's end cannot be copied
        ".ad l",
        ".SH NAME",
        f"transferd \\- {_roff(parser.description or '')}",
        ".SH SYNOPSIS",
        "\\fBtransferd\\fR \\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
        ".SH DESCRIPTION",
        _roff(
            "transferd copies directories, live PostgreSQL databases and Azure Blob containers "
            "to a storage host, chunked, compressed and end-to-end encrypted to the data "
            "owner's public key, resumable after any failure; a signed manifest lets anyone "
            "holding the sender's public key verify a stored copy without reading it. Every "
            "command that reports takes --json: one JSON object per line, the result last."
        ),
        ".SH OPTIONS",
    ]
    for action in tree.options():
        out += [".TP", _option_head(action), _roff(_help(action))]
    out.append(".SH COMMANDS")
    for command in walk(tree):
        if not command.words or command.parser.add_help is False:
            continue
        out.append(f'.SS "{_roff(command.name)}"')
        description = command.parser.description or command.help
        if description:
            out.append(_roff(description))
        if command.subcommands:
            subs = ", ".join(sub.words[-1] for sub in command.subcommands)
            out.append(f".PP\nSubcommands: {_roff(subs)}.")
        for action in command.positionals():
            out += [".TP", f"\\fI{_roff(str(action.metavar or action.dest))}\\fR"]
            out.append(_roff(_help(action)))
        for action in command.options():
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            out += [".TP", _option_head(action), _roff(_help(action))]
    out.append(".SH EXIT STATUS")
    for code, meaning in EXIT_CODES.items():
        out += [".TP", f"\\fB{code}\\fR", _roff(meaning)]
    out += [".PP", _roff("Read any other code as a failure.")]
    out.append(".SH ENVIRONMENT")
    for name, meaning in ENVIRONMENT.items():
        out += [".TP", f"\\fB{_roff(name)}\\fR", _roff(meaning)]
    out += [
        ".SH FILES",
        ".TP",
        "\\fI/etc/transferd/transferd.toml\\fR",
        _roff("the daemon's configuration; transferd daemon --print-config prints every setting"),
        ".SH SEE ALSO",
        _roff(
            "The specification and threat model: protocol/SPEC.md and protocol/THREATS.md of "
            "the source distribution."
        ),
    ]
    return "\n".join(out) + "\n"


# --- bash completion --------------------------------------------------------------------------

_PATH_METAVARS = re.compile(r"FILE|DIR|PATH|SOURCE|\bOUT\b", re.I)


def _words(words: list[str]) -> str:
    return " ".join(w for w in words if re.fullmatch(r"[A-Za-z0-9_./:@%+=,-]+", w))


def bash_completion(parser: argparse.ArgumentParser) -> str:
    """A bash completion script for ``transferd``: ``source`` it, or install it as
    /usr/share/bash-completion/completions/transferd."""
    tree = commands(parser)
    options, subs, values = [], [], []
    for command in walk(tree):
        key = " ".join(command.words) or "-"
        opts = [o for a in command.options() for o in a.option_strings]
        options.append(f'        "{key}") options="{_words(opts)}" ;;')
        if command.subcommands:
            names = [s.words[-1] for s in command.subcommands]
            subs.append(f'        "{key}") subs="{_words(names)}" ;;')
        for action in command.options():
            if action.nargs == 0:
                continue
            if action.choices:
                what = _words([str(c) for c in action.choices])
            elif _PATH_METAVARS.search(str(action.metavar or action.dest)):
                what = "__files__"
            else:
                continue
            pattern = "|".join(f'"{key}:{o}"' for o in action.option_strings)
            values.append(f'        {pattern}) values="{what}" ;;')
    return f"""# bash completion for transferd, generated from its parser ({PROG} generate)
# shellcheck shell=bash disable=SC2207
_transferd() {{
    local cur prev cmd="" key="-" i word options="" subs="" values=""
    cur=${{COMP_WORDS[COMP_CWORD]}}
    prev=${{COMP_WORDS[COMP_CWORD-1]}}
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${{COMP_WORDS[i]}}
        [[ $word == -* ]] && continue
        subs=""
        case "$key" in
{chr(10).join(subs)}
        esac
        if [[ " $subs " == *" $word "* ]]; then
            cmd="$cmd $word"
            key=${{cmd# }}
        fi
    done
    case "$key:$prev" in
{chr(10).join(values)}
    esac
    if [[ $values == __files__ ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
        return
    elif [[ -n $values ]]; then
        COMPREPLY=($(compgen -W "$values" -- "$cur"))
        return
    fi
    case "$key" in
{chr(10).join(options)}
    esac
    subs=""
    case "$key" in
{chr(10).join(subs)}
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$options" -- "$cur"))
    elif [[ -n $subs ]]; then
        COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}}
complete -F _transferd transferd
"""
