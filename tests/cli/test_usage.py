"""A mistyped word on the command line is named, with what was probably meant, before anything
else is checked: "--too" was answered with "required: --to", which never names the typo."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import Run


@pytest.mark.parametrize(
    ("argv", "message", "usage"),
    [
        (["send", "src", "--too", "https://h:1", "--job", "j"],
         "unknown option --too; did you mean --to?", "transferd send"),
        (["send", "src", "--to=x", "--exclud", "*.tmp"],
         "unknown option --exclud; did you mean --exclude?", "transferd send"),
        (["verify", "--store", "s", "--job", "j", "--sendr", "k"],
         "unknown option --sendr; did you mean --sender?", "transferd verify"),
        (["jobs", "strat", "x"], "unknown jobs command strat; did you mean start?",
         "transferd jobs"),
        (["jobs", "start", "x", "--limt", "3M"], "unknown option --limt; did you mean --limit?",
         "transferd jobs start"),
        (["keygen", "--kind", "sender", "--zzzzzz"], "unknown option --zzzzzz", "transferd keygen"),
    ],
    ids=["send --too", "send --exclud", "verify --sendr", "jobs strat", "jobs --limt", "none"],
)  # fmt: skip
def test_an_unknown_word_is_named(run: Run, argv: list[str], message: str, usage: str) -> None:
    result = run(*argv)

    assert (result.code, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"transferd: error: {message}",
        f"transferd: hint: run '{usage} --help' for usage",
    ]


def test_values_that_look_like_options_are_not_words(run: Run) -> None:
    # -1 is a value of --level; the missing --job is then the error, as it should be
    result = run("send", "src", "--to", "x", "--level", "-1", "--sender-key", "k")

    assert result.code == 2
    assert "the following arguments are required: --job" in result.stderr


def test_an_abbreviation_is_not_taken_for_an_option(run: Run) -> None:
    # with prefixes allowed, "--exclude" was "ambiguous" beside the PostgreSQL --exclude-table
    result = run("send", "src", "--to", "x", "--job", "j", "--sender-key", "k", "--exclude-t", "t")

    assert result.code == 2
    assert result.stderr.startswith("transferd: error: unknown option --exclude-t; did you mean")


def test_an_unknown_option_in_json(run: Run) -> None:
    result = run("keys", "show", "x", "--jsn", "--json")

    assert result.code == 2
    assert json.loads(result.stderr) == {
        "error": "unknown option --jsn; did you mean --json?",
        "hint": "run 'transferd keys show --help' for usage",
        "exit_code": 2,
    }
