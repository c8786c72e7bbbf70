"""The command line's frame: help, usage errors, and the one place errors become exit codes."""

from __future__ import annotations

import argparse
import json

import pytest

from tests.cli.conftest import Run
from transferd import __version__
from transferd.cli import main as cli_main
from transferd.cli.commands import keygen
from transferd.cli.output import Output
from transferd.errors import CancelledByUserError, JobLockedError, TransferdError


@pytest.mark.parametrize(
    "command",
    [[], ["keygen"], ["keys"], ["keys", "show"]],
    ids=lambda c: " ".join(c) or "transferd",
)
def test_help_answers(run: Run, command: list[str]) -> None:
    result = run(*command, "--help")

    assert result.code == 0
    assert result.stderr == ""
    assert result.stdout.startswith(f"usage: {' '.join(['transferd', *command])} ")


def test_top_level_help_lists_the_commands(run: Run) -> None:
    out = run("--help").stdout

    assert "keygen    create a recipient identity or a sender key" in out
    assert "keys      inspect keys" in out


def test_version(run: Run) -> None:
    result = run("--version")

    assert (result.code, result.stdout, result.stderr) == (0, f"transferd {__version__}\n", "")


def test_no_command_is_a_usage_error(run: Run) -> None:
    result = run()

    assert (result.code, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "transferd: error: the following arguments are required: COMMAND",
        "transferd: hint: run 'transferd --help' for usage",
    ]


def test_an_unknown_command_is_named_with_what_was_meant(run: Run) -> None:
    result = run("sned")

    assert (result.code, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "transferd: error: unknown command sned; did you mean send?",
        "transferd: hint: run 'transferd --help' for usage",
    ]


def test_a_usage_error_in_json(run: Run) -> None:
    result = run("keys", "show", "--json")

    assert (result.code, result.stdout) == (2, "")
    assert json.loads(result.stderr) == {
        "error": "the following arguments are required: FILE",
        "hint": "run 'transferd keys show --help' for usage",
        "exit_code": 2,
    }


# The boundary itself, in process: a command is replaced by one that raises.


def fail_with(exc: BaseException) -> object:
    def run(args: argparse.Namespace, out: Output) -> int:
        raise exc

    return run


ARGS = ["keygen", "--kind", "sender", "-o", "unused.key"]


def test_a_transferd_error_becomes_its_exit_code_with_hints(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    error = JobLockedError("job nightly is locked by pid 4242", hint="wait\nor stop pid 4242")
    monkeypatch.setattr(keygen, "run", fail_with(error))

    assert cli_main.main(ARGS) == 11

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "transferd: error: job nightly is locked by pid 4242",
        "transferd: hint: wait",
        "transferd: hint: or stop pid 4242",
    ]


def test_a_transferd_error_in_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(keygen, "run", fail_with(TransferdError("boom")))

    assert cli_main.main([*ARGS, "--json"]) == 1

    assert json.loads(capsys.readouterr().err) == {"error": "boom", "hint": None, "exit_code": 1}


def test_an_errors_fields_are_in_its_json_object(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    error = JobLockedError("job nightly is locked", job="nightly", path="/s/lock", pids=["42"])
    monkeypatch.setattr(keygen, "run", fail_with(error))

    assert cli_main.main([*ARGS, "--json"]) == 11

    assert json.loads(capsys.readouterr().err) == {
        "error": "job nightly is locked",
        "hint": None,
        "exit_code": 11,
        "job": "nightly",
        "path": "/s/lock",
        "pids": ["42"],
    }


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), CancelledByUserError("interrupted")])
def test_an_interrupt_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], exc: BaseException
) -> None:
    monkeypatch.setattr(keygen, "run", fail_with(exc))

    assert cli_main.main(ARGS) == 130

    assert capsys.readouterr().err == "transferd: error: interrupted\n"


def test_anything_else_is_a_bug_with_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(keygen, "run", fail_with(ZeroDivisionError("division by zero")))

    assert cli_main.main(ARGS) == 1

    err = capsys.readouterr().err.splitlines()
    assert err[0] == "Traceback (most recent call last):"
    assert err[-2] == "ZeroDivisionError: division by zero"
    assert err[-1] == "transferd: error: this is a bug in transferd, please report it"


def test_a_bug_in_json_is_one_object_with_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(keygen, "run", fail_with(ZeroDivisionError("division by zero")))

    assert cli_main.main([*ARGS, "--json"]) == 1

    report = json.loads(capsys.readouterr().err)
    assert report["error"] == "this is a bug in transferd, please report it"
    assert report["exit_code"] == 1
    assert report["traceback"].endswith("ZeroDivisionError: division by zero\n")


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    """The command names a parser knows."""
    actions = parser._actions
    return list(next(a for a in actions if isinstance(a, argparse._SubParsersAction)).choices)


def test_each_command_module_registers_the_command_it_is_named_after() -> None:
    # main imports only the module named by the command word; a module registering another
    # name would make that command unreachable.
    for name in cli_main.command_names():
        assert _commands(cli_main.build_parser([name])) == [name]


def test_a_run_imports_only_its_own_command() -> None:
    assert _commands(cli_main.build_parser(["keygen", "--kind", "sender"])) == ["keygen"]
    assert _commands(cli_main.build_parser(["--help"])) == cli_main.command_names()
