"""``transferd daemon``: run the sending role (managed jobs), the receiving role, or both.

Meant to run under systemd (systemd/transferd.service: ``Type=notify``, a watchdog, a hardened
sandbox) but runs the same from a terminal. ``--check`` reads the configuration and the secrets
it names, reports what would run, and exits: 0 when the daemon would start, 2 otherwise.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from transferd.cli.output import Output, add_json_flag
from transferd.daemon.config import DEFAULT_CONFIG, example_config, load_config


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "daemon",
        help="run managed jobs and/or a storage host, under systemd or from a terminal",
        description="Run the transferd daemon: the jobs started with 'transferd jobs' (they "
        "continue from their checkpoints after a restart), the receiving role of [serve], a "
        "Prometheus endpoint. Stops cleanly on SIGTERM: uploads in flight finish, the "
        "checkpoint is written; a second signal aborts.",
        epilog="Every setting, with its default and what it does: transferd daemon --print-config "
        "(the example configuration, also systemd/transferd.toml.example).",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"the TOML configuration (default $TRANSFERD_CONFIG or {DEFAULT_CONFIG})",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--check",
        action="store_true",
        help="check the configuration and its secrets (every problem, not only the first), "
        "then exit",
    )
    what.add_argument(
        "--print-config",
        action="store_true",
        help="print the example configuration (every setting, its default, what it does) and "
        "exit: transferd daemon --print-config > /etc/transferd/transferd.toml",
    )
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Output) -> int:
    if args.print_config:
        text = example_config()
        out.result({"config": text}, [text.rstrip("\n")])
        return 0
    path = args.config or Path(os.environ.get("TRANSFERD_CONFIG") or DEFAULT_CONFIG)
    config = load_config(path)
    from transferd.daemon.run import load_sender, run_daemon

    if args.check:
        sender = load_sender(config)
        summary = {
            "config": str(path),
            "state_dir": str(config.daemon.state_dir),
            "control_socket": str(config.daemon.control_socket),
            "sending": sender is not None,
            "sender": sender.public().to_text() if sender is not None else None,
            "receiving": config.serve.enabled,
            "metrics": "{}:{}".format(*config.metrics.listen) if config.metrics.listen else None,
        }
        out.result(summary, [f"{k}: {v}" for k, v in summary.items()])  # type: ignore[arg-type]
        return 0
    from transferd.daemon.logs import setup_logging

    d = config.daemon
    logs = setup_logging(d.log_format, d.log_level, d.logs_dir)
    return run_daemon(config, logs)
