"""The man page and the bash completion, generated from the parser, as a user meets them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import Run
from transferd.cli.docs import commands, walk
from transferd.cli.main import build_parser


def test_the_man_page_renders_without_a_warning_and_names_every_option(
    run: Run, tmp_path: Path
) -> None:
    result = run("generate", "--man-page", "transferd.1")
    assert result.code == 0, result.stderr

    rendered = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-P-cbou"],
        input=(tmp_path / "transferd.1").read_bytes(),
        capture_output=True,
        check=True,
    )
    assert rendered.stderr == b""
    text = rendered.stdout.decode()
    page = " ".join(text.split())
    for command in ("transferd send", "transferd jobs watch", "transferd ls", "EXIT STATUS"):
        assert command in page
    every = {
        option
        for command in walk(commands(build_parser()))
        for action in command.options()
        for option in action.option_strings
        if option not in ("-h", "--help")
    }
    for option in sorted(every):
        assert f" {option}" in page, option
    assert "TRANSFERD_SOCKET" in page


def _complete(script: Path, line: str) -> list[str]:
    words = line.split(" ")
    program = (
        f"source {script}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_transferd\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "-c", program], cwd=script.parent, capture_output=True, text=True, check=True
    )
    return sorted(done.stdout.split())


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("transferd se", ["send", "serve"]),
        ("transferd send --bw", ["--bwlimit"]),
        ("transferd keygen --kind ", ["recipient", "sender"]),
        ("transferd jobs st", ["start", "status"]),
        ("transferd jobs start x --li", ["--limit"]),
        ("transferd verify --progress a", ["always", "auto"]),
    ],
)
def test_bash_completes_commands_options_and_choices(
    run: Run, tmp_path: Path, line: str, expected: list[str]
) -> None:
    assert run("generate", "--bash-completion", "transferd.bash").code == 0

    assert _complete(tmp_path / "transferd.bash", line) == expected


def test_bash_completes_a_file_for_an_option_that_takes_one(run: Run, tmp_path: Path) -> None:
    run("generate", "--bash-completion", "transferd.bash")
    (tmp_path / "owner.key").write_text("")

    assert _complete(tmp_path / "transferd.bash", "transferd restore --identity own") == [
        "owner.key"
    ]


def test_generate_without_a_target_is_a_usage_error(run: Run) -> None:
    result = run("generate")

    assert result.code == 2
    assert result.stderr.startswith("transferd: error: nothing to generate")
