"""``transferd generate``: the man page and the bash completion, from the parser itself."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from transferd.cli import docs
from transferd.cli.output import Output, add_json_flag
from transferd.errors import EXIT_OK, ConfigError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "generate",
        help="write the man page or the bash completion (generated from the commands)",
        description="Write transferd(1), the man page of every command and option, or the bash "
        "completion script; '-' writes to standard output.",
        epilog="Example: transferd generate --man-page /usr/share/man/man1/transferd.1 "
        "--bash-completion /usr/share/bash-completion/completions/transferd",
    )
    p.add_argument("--man-page", type=Path, metavar="FILE", help="write the man page to FILE")
    p.add_argument(
        "--bash-completion", type=Path, metavar="FILE", help="write the bash completion to FILE"
    )
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Output) -> int:
    if args.man_page is None and args.bash_completion is None:
        raise ConfigError(
            "nothing to generate", hint="give --man-page FILE or --bash-completion FILE"
        )
    from transferd.cli.main import build_parser  # the parser of every command, not just this one

    parser = build_parser()
    written: list[str] = []
    for path, text in (
        (args.man_page, docs.man_page(parser) if args.man_page else ""),
        (args.bash_completion, docs.bash_completion(parser) if args.bash_completion else ""),
    ):
        if path is None:
            continue
        if str(path) == "-":
            sys.stdout.write(text)
            continue
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot write {path}: {(e.strerror or str(e)).lower()}") from None
        written.append(str(path))
    if written:
        out.result({"written": written}, [f"wrote {p}" for p in written])  # type: ignore[dict-item]
    return EXIT_OK
