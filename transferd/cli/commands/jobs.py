"""``transferd jobs``: start, list, watch, pause, resume, cancel and limit the daemon's jobs.

Every subcommand talks to a running ``transferd daemon`` over its control socket (``--socket``,
default $TRANSFERD_SOCKET or /run/transferd/control.sock) and reports with ``--json`` as one
object per line. Exit codes are the table's: 7 when no daemon answers, 10 for an unknown job, 2
for a request the daemon refuses as invalid.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from transferd.cli.control import ControlClient, default_socket
from transferd.cli.jobview import list_lines, status_lines, watch
from transferd.cli.output import Output, add_json_flag
from transferd.cli.pgargs import add_source_arguments, source_options
from transferd.errors import EXIT_OK, ConfigError, DaemonUnavailableError
from transferd.util.keyfiles import load_recipients
from transferd.util.units import format_rate, parse_rate, parse_size


def _common(p: argparse.ArgumentParser, name: bool = True) -> None:
    if name:
        p.add_argument("name", metavar="NAME", help="the job's name")
    p.add_argument(
        "--socket",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"the daemon's control socket (default {default_socket()})",
    )
    add_json_flag(p)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "jobs",
        help="start, watch, pause, resume and cancel the daemon's jobs",
        description="Control the jobs of a running 'transferd daemon' through its control "
        "socket. Jobs outlive the daemon: after a restart or a reboot, running jobs continue "
        "from their checkpoints.",
    )
    sub = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("start", help="start a job (or run an ended job again)")
    _common(p)
    p.add_argument("source", nargs="?", metavar="SOURCE",
                   help="what to copy: a directory, postgresql://…, az://…")  # fmt: skip
    p.add_argument("--to", metavar="URL", help="the store (default: store in [send])")
    p.add_argument(
        "-r",
        "--recipient",
        action="append",
        default=[],
        metavar="KEY",
        help="a recipient public key tdrpq1… or tdr1… (repeat; default: recipients in [send])",
    )
    p.add_argument(
        "-R",
        "--recipients-file",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a file of recipient keys, one per line",
    )
    p.add_argument("--limit", type=parse_rate, metavar="RATE",
                   help="this job's bandwidth limit, e.g. 20M (bytes/s; 0: none)")  # fmt: skip
    add_source_arguments(p, daemon=True)
    g = p.add_argument_group("PostgreSQL follow mode", "as send --follow (README)")
    g.add_argument("--follow", action="store_true",
                   help="after the snapshot, follow until 'jobs cutover NAME'")  # fmt: skip
    g.add_argument("--publication", metavar="NAME", help="carry this publication's changes")
    g.add_argument("--keep-slot", action="store_true", help="keep the slot after the cut-over")
    g.add_argument("--cutover-at-end", action="store_true",
                   help="cut over once the copy has caught up with the source")  # fmt: skip
    g.add_argument("--max-retained-wal", type=parse_size, default=None, metavar="SIZE",
                   help="warn when the source keeps more WAL than SIZE (default 16G)")  # fmt: skip
    p.set_defaults(run=_start)

    p = sub.add_parser("cutover", help="a follow job: stop at the current LSN, publish, drop "
                       "the slot; then 'copy complete up to LSN …'")  # fmt: skip
    _common(p)
    p.set_defaults(run=_cutover)

    p = sub.add_parser("list", help="every job, one line each")
    _common(p, name=False)
    p.set_defaults(run=_list)

    p = sub.add_parser("status", help="one job: phase, bytes, objects, rate, ETA, last error")
    _common(p)
    p.set_defaults(run=_simple("status"))

    for verb, text in (
        ("pause", "start no new read or upload; uploads in flight finish"),
        ("resume", "continue a paused job"),
    ):
        p = sub.add_parser(verb, help=text)
        _common(p)
        p.set_defaults(run=_simple(verb))

    p = sub.add_parser("cancel", help="stop a job for good; the host keeps what it holds")
    _common(p)
    p.add_argument(
        "--purge",
        action="store_true",
        help="also delete what the host holds for the job, and its local state",
    )
    p.set_defaults(run=_cancel)

    p = sub.add_parser("limit", help="change a job's (or the global) bandwidth limit now")
    _common(p, name=False)
    p.add_argument("name", nargs="?", metavar="NAME", help="the job (omit with --global)")
    p.add_argument("rate", metavar="RATE", help="bytes/s, e.g. 512K, 20M; 0: none; default")
    p.add_argument("--global", dest="global_", action="store_true", help="the daemon's limit")
    p.set_defaults(run=_limit)

    p = sub.add_parser("logs", help="a job's log lines (across daemon restarts)")
    _common(p)
    p.add_argument("-n", "--lines", type=int, default=50, help="how many (default 50)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.set_defaults(run=_logs)

    p = sub.add_parser("watch", help="a live display of every job")
    _common(p, name=False)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between updates")
    p.add_argument("--count", type=int, default=None, help="stop after this many updates")
    p.set_defaults(run=_watch)


def _client(args: argparse.Namespace) -> ControlClient:
    return ControlClient(args.socket)


def _show(out: Output, result: dict[str, Any]) -> None:
    out.result(result, status_lines(result))


def _simple(op: str) -> Any:
    def run(args: argparse.Namespace, out: Output) -> int:
        with _client(args) as client:
            _show(out, client.call(op, name=args.name))
        return 0

    return run


def _start(args: argparse.Namespace, out: Output) -> int:
    recipients = [r.to_text() for r in load_recipients(args.recipient, args.recipients_file)]
    source = str(Path(args.source).absolute()) if args.source and "://" not in args.source else None
    source = source or args.source
    store = args.to
    if store and "://" not in store:
        store = str(Path(store).absolute())  # the daemon's working directory is not ours
    postgres = _postgres_options(args)
    with _client(args) as client:
        result = client.call(
            "start", name=args.name, source=source, store=store, recipients=recipients,
            limit=args.limit, postgres=postgres,
        )  # fmt: skip
    _show(out, result)
    return 0


def _postgres_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """A PostgreSQL source's options as the daemon keeps them; None for other sources."""
    if args.source is None:
        given = any(v for k, v in vars(args).items() if k in _PG_OPTIONS)
        if given:
            raise ConfigError("PostgreSQL options go with the job's source: give SOURCE too")
        return None
    options = source_options(args)
    if options is None:
        if args.follow:
            raise ConfigError("--follow applies to PostgreSQL sources (postgresql://…) only")
        return None
    settings = options.settings()
    if args.follow:
        follow = {"publication": args.publication, "keep_slot": args.keep_slot,
                  "cutover_at_end": args.cutover_at_end,
                  "max_retained_wal": args.max_retained_wal}  # fmt: skip
        settings["follow"] = {k: v for k, v in follow.items() if v is not None}
    elif args.publication or args.keep_slot or args.cutover_at_end:
        raise ConfigError("--publication, --keep-slot and --cutover-at-end go with --follow")
    return settings


def _cutover(args: argparse.Namespace, out: Output) -> int:
    """Ask the daemon's follow job to cut over, and wait until it has: one line at the end."""
    with _client(args) as client:
        result = client.call("cutover", name=args.name)
        while result.get("phase") not in ("done", "failed", "cancelled"):
            time.sleep(1)
            result = client.call("status", name=args.name)
    if result.get("phase") != "done":
        raise ConfigError(f"job {args.name} ended {result.get('phase')} before its cut-over: "
                          f"{result.get('last_error')}")  # fmt: skip
    lsn = (result.get("follow") or {}).get("cutover_lsn")
    out.result(result, [f"copy complete up to LSN {lsn}"])
    return 0


_PG_OPTIONS = ("jobs", "include_schema", "exclude_schema", "include_table", "exclude_table",
               "exclude_table_data", "no_large_objects", "no_owner", "no_privileges")  # fmt: skip


def _list(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as client:
        result = client.call("list")
    out.result(result, list_lines(result))
    return 0


def _cancel(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as client:
        result = client.call("cancel", name=args.name, purge=args.purge)
    lines = status_lines(result)
    purged = result.get("purged")
    if purged:
        lines.append(
            f"  purged   {purged['objects_deleted']:,} objects deleted at the host; "
            f"{purged['manifests_kept']} manifests kept (a store never deletes a manifest)"
        )
    out.result(result, lines)
    return 0


def _limit(args: argparse.Namespace, out: Output) -> int:
    name = None if args.global_ else args.name
    if args.global_ == (args.name is not None):
        raise ConfigError("give a job NAME or --global, not both or neither")
    limit: int | str = "default" if args.rate == "default" else parse_rate(args.rate)
    with _client(args) as client:
        result = client.call("limit", name=name, limit=None if limit == "default" else limit)
    if name is None:
        out.result(result, [f"global bandwidth limit: {format_rate(result['limit'])}"])
    else:
        _show(out, result)
    return 0


def _logs(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as client:
        offset = None
        while True:
            result = client.call("logs", name=args.name, lines=args.lines, offset=offset)
            for line in result["lines"]:
                if out.json_mode:
                    print(json.dumps({"job": args.name, "line": line}), flush=True)
                else:
                    print(line, flush=True)
            if not args.follow:
                return 0
            offset = result["offset"]
            time.sleep(1.0)


def _watch(args: argparse.Namespace, out: Output) -> int:
    """The live display. A daemon that stops (a restart, an upgrade) is waited for: "daemon
    gone, reconnecting…" once, the watch goes on asking every interval, and says when it is
    back. A daemon that never answered is an error (exit 7): a wrong socket path should not
    make a watch that waits forever."""
    client = _client(args)
    gone = False

    def fetch() -> dict[str, Any] | None:
        nonlocal gone
        try:
            result: dict[str, Any] = client.call("list")
        except DaemonUnavailableError as e:
            client.close()
            if not gone:
                gone = True
                out.warning(
                    f"daemon gone, reconnecting… ({e.message})",
                    hint="the watch goes on; jobs continue from their checkpoints when the "
                    "daemon is back",
                )
            return None
        if gone:
            gone = False
            out.warning(f"the daemon on {client.path} is back: watching again")
        return result

    try:
        client.call("list")  # the first answer decides that there is a daemon to wait for
        watch(fetch, interval=max(0.1, args.interval), json_mode=out.json_mode, count=args.count)
    finally:
        client.close()
    return EXIT_OK
