"""``transferd serve``: run a storage host that keeps jobs' ciphertext in a directory.

The host holds no secret of the data: it accepts uploads signed by the sender keys the operator
allows (``--allow JOBPATTERN=tds1…``), serves reads to those and to reader keys
(``--allow-reader``), and stores what it is sent under LocalStore's write order. It prints
``listening on http(s)://HOST:PORT`` once it accepts connections (with the real port when given
port 0), logs one line per request on stderr, and stops gracefully on SIGTERM or SIGINT:
requests in flight are finished, then the store is closed.

Settings come from the command line and from the ``[serve]`` table of a TOML file
(``--config``), read as the daemon's receiving role reads it (host/settings.py, with every
setting and its default in systemd/transferd.toml.example); the command line wins for single
values and adds to the lists of grants::

    [serve]
    store = "/srv/transferd"          # relative paths are relative to this file
    listen = "0.0.0.0:8443"
    tls_cert = "host.crt"
    tls_key = "host.key"
    accept_hosts = ["store.example.org:8443"]

    [serve.senders]                   # job pattern -> keys that may write (and read) it
    "snds-*" = ["tds1…"]

    [serve.readers]                   # job pattern -> keys that may only read it
    "*" = ["tds1…"]

The store may be an S3-compatible bucket instead of a directory (``store =
"s3://BUCKET/PREFIX"``): the host then acknowledges an upload once S3 has confirmed it, and its
endpoint and credentials come from an ``[s3]`` table of the same file (stores/s3config.py),
else from ``$TRANSFERD_S3_CONFIG`` or the AWS_* variables.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
from pathlib import Path

from transferd.cli.output import Output, add_json_flag
from transferd.host.settings import SCALARS, HostSettings, read_serve_table, with_options
from transferd.util.runtime import setup_logging
from transferd.util.tomlfile import read_toml_table

log = logging.getLogger("transferd.serve")

_HELP = {
    "store": "the store directory, or s3://BUCKET/PREFIX (endpoint and credentials from the "
    "[s3] table of --config, $TRANSFERD_S3_CONFIG or AWS_*)",
    "listen": "address to listen on, [v6]:PORT for IPv6, port 0 for any (default 127.0.0.1:8443)",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run a storage host that receives and serves encrypted jobs",
        description="Serve the store directory DIR over HTTP(S) to the sender keys allowed "
        "with --allow (write and read) and --allow-reader (read only). Prints 'listening on "
        "URL' when ready; stops gracefully on SIGTERM or SIGINT. The host stores only "
        "ciphertext and signed manifests: it needs no recipient key. Every option is also a "
        "setting of the [serve] table of --config (systemd/transferd.toml.example).",
        epilog="Example: transferd serve --store /srv/transferd --listen 0.0.0.0:8443 "
        "--tls-cert host.crt --tls-key host.key --allow 'snds-*=tds1…'",
    )
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="JOBPATTERN=KEY",
        help="let sender key tds1… write and read the jobs matching JOBPATTERN (fnmatch: "
        "'snds-*'); repeat for more",
    )
    parser.add_argument(
        "--allow-reader",
        action="append",
        default=[],
        metavar="JOBPATTERN=KEY",
        help="let key tds1… read (restore, verify) the jobs matching JOBPATTERN",
    )
    parser.add_argument(
        "--accept-host",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="answer only requests signed for this Host (repeat); default: any",
    )
    for scalar in (s for s in SCALARS if s.option):
        default = f" (default {scalar.default:g})" if scalar.kind is not str else ""
        parser.add_argument(
            scalar.flag,
            dest=scalar.name,
            type=scalar.kind,
            metavar=scalar.metavar or None,
            help=_HELP.get(scalar.name, scalar.help + default),
        )
    parser.add_argument("--config", type=Path, metavar="FILE", help="a TOML file with [serve]")
    add_json_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, out: Output) -> int:
    settings = load_settings(args)
    setup_logging(json_mode=out.json_mode)
    from transferd.host.build import run_host  # aiohttp only for this command

    host = settings.listen[0]
    if settings.tls_cert is None and not _is_loopback(host):
        out.warning(
            f"serving without TLS on {host}: job names, sizes and timing are visible on the "
            "network (the data itself stays end-to-end encrypted)",
            hint="give --tls-cert and --tls-key",
        )
    run_host(
        settings, on_listening=lambda url: out.result({"listening": url}, [f"listening on {url}"])
    )
    log.info("stopped")
    return 0


def load_settings(args: argparse.Namespace) -> HostSettings:
    """The ``[serve]`` table of ``--config`` (if any), the command line laid over it."""
    table, base = {}, Path.cwd()
    if args.config is not None:
        table, base = read_toml_table(args.config, "serve"), args.config.parent
    where = f"[serve] of {args.config}" if args.config is not None else "[serve]"
    settings = read_serve_table(
        table, base=base, where=where, env=os.environ, s3_config=args.config
    )
    return with_options(
        settings,
        {s.name: getattr(args, s.name) for s in SCALARS if s.option},
        allow=tuple(args.allow),
        allow_reader=tuple(args.allow_reader),
        accept_hosts=tuple(args.accept_host),
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
