"""``transferd serve``: run a storage host that keeps jobs' ciphertext in a directory.

The host holds no secret of the data: it accepts uploads signed by the sender keys the operator
allows (``--allow JOBPATTERN=tds1…``), serves reads to those and to reader keys
(``--allow-reader``), and stores what it is sent under LocalStore's write order. It prints
``listening on http(s)://HOST:PORT`` once it accepts connections (with the real port when given
port 0), logs one line per request on stderr, and stops gracefully on SIGTERM or SIGINT:
requests in flight are finished, then the store is closed.

Settings come from the command line and from the ``[serve]`` table of a TOML file
(``--config``); the command line wins for single values and adds to the lists of grants::

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
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferd.cli.output import Output, add_json_flag
from transferd.core.keys import SenderPublicKey
from transferd.errors import ConfigError
from transferd.host.auth import Authorizer, parse_grant
from transferd.stores.base import Store
from transferd.stores.local import LocalStore
from transferd.util.extras import needs
from transferd.util.runtime import setup_logging
from transferd.util.secretfiles import read_secret_file
from transferd.util.tomlfile import read_toml_table

DEFAULT_LISTEN = "127.0.0.1:8443"
_LISTEN = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]+)):(?P<port>[0-9]{1,5})")
_SETTINGS = frozenset(
    {"store", "listen", "tls_cert", "tls_key", "accept_hosts", "senders", "readers"}
)

log = logging.getLogger("transferd.serve")


@dataclass(frozen=True)
class ServeConfig:
    store: Path | str
    """A directory, or an s3:// location."""
    listen: tuple[str, int]
    writers: tuple[tuple[str, SenderPublicKey], ...]
    readers: tuple[tuple[str, SenderPublicKey], ...] = ()
    accept_hosts: tuple[str, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    shutdown_timeout: float = 60.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run a storage host that receives and serves encrypted jobs",
        description="Serve the store directory DIR over HTTP(S) to the sender keys allowed "
        "with --allow (write and read) and --allow-reader (read only). Prints 'listening on "
        "URL' when ready; stops gracefully on SIGTERM or SIGINT. The host stores only "
        "ciphertext and signed manifests: it needs no recipient key.",
        epilog="Example: transferd serve --store /srv/transferd --listen 0.0.0.0:8443 "
        "--tls-cert host.crt --tls-key host.key --allow 'snds-*=tds1…'",
    )
    parser.add_argument(
        "--store",
        metavar="DIR|S3URL",
        help="the store directory, or s3://BUCKET/PREFIX (endpoint and credentials from the "
        "[s3] table of --config, $TRANSFERD_S3_CONFIG or AWS_*)",
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help=f"address to listen on, [v6]:PORT for IPv6, port 0 for any (default {DEFAULT_LISTEN})",
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
    parser.add_argument("--tls-cert", type=Path, metavar="FILE", help="PEM certificate chain")
    parser.add_argument("--tls-key", type=Path, metavar="FILE", help="PEM private key")
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        metavar="SECONDS",
        help="how long a stop waits for requests in flight (default 60)",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="a TOML file with [serve]")
    add_json_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, out: Output) -> int:
    config = load_config(args)
    setup_logging(json_mode=out.json_mode)
    from transferd.host.server import run_server  # aiohttp only for this command

    if config.tls_key is not None and read_secret_file(config.tls_key).exposed:
        raise ConfigError(
            f"the TLS key {config.tls_key} can be read by group or others",
            hint=f"chmod 600 {config.tls_key}",
        )
    store: Store
    if isinstance(config.store, str):
        with needs("s3"):  # aiobotocore only for an s3:// store
            from transferd.stores.s3 import S3Store
        from transferd.stores.s3config import load_settings

        store = S3Store(load_settings(config.store, args.config))
    else:
        store = LocalStore(config.store)
    authorizer = Authorizer(config.writers, config.readers, hosts=config.accept_hosts)
    host = config.listen[0]
    if config.tls_cert is None and not _is_loopback(host):
        out.warning(
            f"serving without TLS on {host}: job names, sizes and timing are visible on the "
            "network (the data itself stays end-to-end encrypted)",
            hint="give --tls-cert and --tls-key",
        )
    run_server(
        store,
        config.listen,
        authorizer,
        tls_cert=str(config.tls_cert) if config.tls_cert else None,
        tls_key=str(config.tls_key) if config.tls_key else None,
        on_listening=lambda url: out.result({"listening": url}, [f"listening on {url}"]),
        shutdown_timeout=config.shutdown_timeout,
    )
    log.info("stopped")
    return 0


def load_config(args: argparse.Namespace) -> ServeConfig:
    """The settings of the command line over those of ``--config``, checked."""
    table: dict[str, Any] = {}
    base = Path.cwd()
    if args.config is not None:
        table, base = _read_table(args.config), args.config.parent

    def path(value: object, name: str) -> Path | None:
        if value is None:
            return None
        if not isinstance(value, str | Path):
            raise ConfigError(f"{name} in {args.config} must be a path")
        return base / value

    given = args.store or table.get("store")
    store: Path | str | None
    if isinstance(given, str) and given.startswith("s3://"):
        store = given
    else:
        store = Path(args.store) if args.store else path(table.get("store"), "store")
    if store is None:
        raise ConfigError("no store directory: give --store DIR", hint="or store = … in [serve]")
    listen = parse_listen(args.listen or _string(table, "listen", DEFAULT_LISTEN))
    tls_cert = args.tls_cert or path(table.get("tls_cert"), "tls_cert")
    tls_key = args.tls_key or path(table.get("tls_key"), "tls_key")
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("TLS needs both a certificate and its key (--tls-cert, --tls-key)")
    writers = _grants(table, "senders") + tuple(parse_grant(g) for g in args.allow)
    readers = _grants(table, "readers") + tuple(parse_grant(g) for g in args.allow_reader)
    if not writers and not readers:
        raise ConfigError(
            "no key is allowed to use this host",
            hint="add --allow 'JOBPATTERN=tds1…' for each sender (its public key)",
        )
    hosts = table.get("accept_hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise ConfigError(f"accept_hosts in {args.config} must be a list of host names")
    timeout = args.shutdown_timeout if args.shutdown_timeout is not None else 60.0
    return ServeConfig(
        store=store,
        listen=listen,
        writers=writers,
        readers=readers,
        accept_hosts=(*hosts, *args.accept_host),
        tls_cert=tls_cert,
        tls_key=tls_key,
        shutdown_timeout=timeout,
    )


def parse_listen(text: str) -> tuple[str, int]:
    match = _LISTEN.fullmatch(text.strip())
    if match is None or int(match["port"]) > 65535:
        raise ConfigError(f"listen address {text!r} is not HOST:PORT (or [IPv6]:PORT)")
    return match["v6"] or match["host"], int(match["port"])


def _read_table(path: Path) -> dict[str, Any]:
    table = read_toml_table(path, "serve")
    unknown = sorted(set(table) - _SETTINGS)
    if unknown:
        raise ConfigError(
            f"unknown setting {unknown[0]!r} in [serve] of {path}",
            hint=f"known settings: {', '.join(sorted(_SETTINGS))}",
        )
    return table


def _string(table: dict[str, Any], name: str, default: str) -> str:
    value = table.get(name, default)
    if not isinstance(value, str):
        raise ConfigError(f"{name} in [serve] must be a string")
    return value


def _grants(table: dict[str, Any], name: str) -> tuple[tuple[str, SenderPublicKey], ...]:
    grants = table.get(name, {})
    if not isinstance(grants, dict):
        raise ConfigError(f"[serve.{name}] must map job patterns to lists of keys")
    parsed: list[tuple[str, SenderPublicKey]] = []
    for pattern, keys in grants.items():
        if isinstance(keys, str):
            keys = [keys]
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ConfigError(f"[serve.{name}] {pattern!r} must be a list of keys tds1…")
        parsed.extend(parse_grant(f"{pattern}={key}") for key in keys)
    return tuple(parsed)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
