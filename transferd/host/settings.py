"""The storage host's settings: one value for ``transferd serve`` and the daemon's receiving role.

Both read the same ``[serve]`` table (``read_serve_table``), so a host configured for one runs the
same under the other; ``serve`` then lays its command-line options over it (``with_options``):
single values replace the file's, grants add to its lists. Every scalar setting is listed once, in
``SCALARS``, with its type and default: the parser, the command's options and the test that checks
systemd/transferd.toml.example against the defaults all read that table. A setting the table does
not know is refused by name: a typo must not leave a default in force.

Paths are relative to the file that names them. A secret (the TLS key) is named by a path, or by
``tls_key_credential``, the name of a systemd credential under ``$CREDENTIALS_DIRECTORY``; its
file's mode is checked when the host opens it (host/build.py), not here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferd.core.keys import SenderPublicKey
from transferd.errors import ConfigError
from transferd.host.auth import parse_grant
from transferd.host.limits import HostLimits

Grant = tuple[str, SenderPublicKey]

DEFAULT_LISTEN = ("127.0.0.1", 8443)
_LISTEN = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]+)):(?P<port>[0-9]{1,5})")
_SECRET_TEXT = re.compile(r"\btd-secret-|AGE-SECRET-KEY-|-----BEGIN [A-Z ]*PRIVATE KEY", re.I)


@dataclass(frozen=True)
class HostSettings:
    """Everything that makes a storage host: its store, address, keys, TLS and limits."""

    store: str | None = None
    """A directory (as a path string, resolved against the file or the working directory) or an
    ``s3://BUCKET/PREFIX`` location; None until given."""
    listen: tuple[str, int] = DEFAULT_LISTEN
    writers: tuple[Grant, ...] = ()
    """Job pattern and key pairs that may write (and read) the jobs matching the pattern."""
    readers: tuple[Grant, ...] = ()
    accept_hosts: tuple[str, ...] = ()
    """Host header values answered; empty answers any (protocol/HTTP.md §4.3 step 2)."""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    s3_config: Path | None = field(default=None, compare=False)
    """The file whose ``[s3]`` table gives an s3:// store's endpoint and credentials; None: the
    ``$TRANSFERD_S3_CONFIG`` file or the AWS_* variables (stores/s3config.py)."""
    shutdown_timeout: float = 30.0
    """Seconds a stop gives the requests in flight (uploads whose body is still arriving
    included) before they are cancelled. Below the unit's TimeoutStopSec= (90 s)."""
    enabled: bool = False
    """Whether the daemon runs its receiving role; ``transferd serve`` ignores it."""
    limits: HostLimits = field(default_factory=HostLimits)
    """Timeouts, caps and rates (host/limits.py)."""


@dataclass(frozen=True)
class Scalar:
    """One single-valued setting: its name in ``[serve]``, its type, what it is for."""

    name: str
    kind: type
    default: Any
    help: str
    metavar: str = ""
    option: bool = True
    """Whether ``transferd serve`` has a command-line option for it (``--tls-key-credential`` is
    pointless there: the command line can name ``$CREDENTIALS_DIRECTORY/NAME`` itself)."""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


SCALARS: tuple[Scalar, ...] = (
    Scalar("store", str, "", "the store: a directory, or s3://BUCKET/PREFIX", "DIR|S3URL"),
    Scalar("listen", str, "127.0.0.1:8443", "HOST:PORT, [IPv6]:PORT; port 0: any", "HOST:PORT"),
    Scalar("tls_cert", str, "", "PEM certificate chain", "FILE"),
    Scalar("tls_key", str, "", "PEM private key (mode 0600)", "FILE"),
    Scalar(
        "tls_key_credential",
        str,
        "",
        "the TLS key as a systemd credential name",
        "NAME",
        option=False,
    ),
    Scalar("shutdown_timeout", float, 30.0, "seconds a stop gives requests in flight", "SECONDS"),
    Scalar("header_timeout", float, 10.0, "seconds for a request's headers", "SECONDS"),
    Scalar("idle_timeout", float, 60.0, "seconds a connection may wait for a request", "SECONDS"),
    Scalar("body_timeout", float, 30.0, "seconds without a byte of a body", "SECONDS"),
    Scalar("request_timeout", float, 900.0, "seconds for a whole request", "SECONDS"),
    Scalar("max_connections", int, 512, "connections open at once", "N"),
    Scalar("max_connections_per_peer", int, 64, "connections from one address", "N"),
    Scalar("max_uploads", int, 16, "uploads received at once", "N"),
    Scalar("upload_wait", float, 10.0, "seconds an upload waits for a slot", "SECONDS"),
    Scalar("key_rate", float, 100.0, "requests per second of one key", "RATE"),
    Scalar("key_burst", int, 200, "requests one key may make at once above its rate", "N"),
    Scalar("nonces_per_key", int, 65_536, "requests of one key remembered against replay", "N"),
    Scalar("partial_max_age", float, 900.0, "seconds before partial uploads go", "SECONDS"),
    Scalar("sweep_interval", float, 300.0, "seconds between sweeps of partial uploads", "SECONDS"),
)
"""The single-valued settings of ``[serve]``, in the order the example file shows them."""
_BY_NAME = {s.name: s for s in SCALARS}
_LIMITS = frozenset(f.name for f in dataclasses.fields(HostLimits))
LISTS = ("accept_hosts",)
TABLES = ("senders", "readers")
KNOWN = frozenset({"enabled", *_BY_NAME, *LISTS, *TABLES})


def read_serve_table(
    table: Mapping[str, Any],
    *,
    base: Path,
    where: str,
    env: Mapping[str, str],
    s3_config: Path | None = None,
) -> HostSettings:
    """The settings a ``[serve]`` table gives (defaults for what it omits). ``where`` names the
    table in messages ("[serve] of /etc/transferd/transferd.toml"); relative paths are relative
    to ``base``; ``env`` holds ``CREDENTIALS_DIRECTORY``."""
    unknown = sorted(set(table) - KNOWN)
    if unknown:
        raise ConfigError(
            f"unknown setting {unknown[0]!r} in {where}",
            hint=f"known settings: {', '.join(sorted(KNOWN))} (see systemd/transferd.toml.example)",
        )
    values = {s.name: _scalar(table, s, where) for s in SCALARS}
    limits = HostLimits(**{n: values.pop(n) for n in _LIMITS})
    enabled = table.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ConfigError(f"enabled in {where} must be true or false")
    store = values.pop("store")
    key = _path(base, values.pop("tls_key"))
    credential = values.pop("tls_key_credential")
    if key is None and credential:
        key = _credential(credential, where, env)
    settings = HostSettings(
        store=_store(base, store) if store else None,
        listen=parse_listen(values.pop("listen"), f"listen in {where}"),
        writers=_grants(table, "senders", where),
        readers=_grants(table, "readers", where),
        accept_hosts=_strings(table, "accept_hosts", where),
        tls_cert=_path(base, values.pop("tls_cert")),
        tls_key=key,
        s3_config=s3_config,
        enabled=enabled,
        limits=limits,
        **values,
    )
    return _checked(settings, where)


def with_options(
    settings: HostSettings,
    options: Mapping[str, Any],
    *,
    allow: tuple[str, ...] = (),
    allow_reader: tuple[str, ...] = (),
    accept_hosts: tuple[str, ...] = (),
) -> HostSettings:
    """``settings`` with the command line's values laid over them: each scalar in ``options``
    that is not None replaces the file's (paths as given, relative to the working directory);
    grants and accepted hosts add to the file's."""
    changes: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        if name == "store":
            changes["store"] = _store(Path.cwd(), str(value))
        elif name == "listen":
            changes["listen"] = parse_listen(str(value), "--listen")
        elif name in ("tls_cert", "tls_key"):
            changes[name] = Path(value)
        elif name in _BY_NAME and _BY_NAME[name].option:
            number = changes[name] = _BY_NAME[name].kind(value)
            if number <= 0:
                raise ConfigError(f"{_BY_NAME[name].flag} must be above 0, not {value}")
        else:
            raise ValueError(f"no command-line option sets {name}")
    limits = {n: changes.pop(n) for n in _LIMITS & set(changes)}
    changes["limits"] = dataclasses.replace(settings.limits, **limits)
    changes["writers"] = settings.writers + tuple(parse_grant(g) for g in allow)
    changes["readers"] = settings.readers + tuple(parse_grant(g) for g in allow_reader)
    changes["accept_hosts"] = settings.accept_hosts + tuple(accept_hosts)
    return _checked(dataclasses.replace(settings, **changes), "the command line")


def check_usable(settings: HostSettings) -> str:
    """The store of settings a host can run with; ConfigError saying what is missing."""
    if settings.store is None:
        raise ConfigError(
            "no store directory or bucket: give --store DIR or s3://BUCKET/PREFIX",
            hint="or store = … in [serve]",
        )
    if not settings.writers and not settings.readers:
        raise ConfigError(
            "no key is allowed to use this host",
            hint="add --allow 'JOBPATTERN=tds1…' for each sender (its public key), "
            'or [serve.senders] "JOBPATTERN" = ["tds1…"]',
        )
    return settings.store


def parse_listen(text: str, where: str = "listen") -> tuple[str, int]:
    match = _LISTEN.fullmatch(text.strip())
    if match is None or int(match["port"]) > 65535:
        raise ConfigError(f"{where}: {text!r} is not HOST:PORT (or [IPv6]:PORT)")
    return match["v6"] or match["host"], int(match["port"])


# --- the parts --------------------------------------------------------------------------------


def _checked(settings: HostSettings, where: str) -> HostSettings:
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise ConfigError(
            f"TLS needs both a certificate and its key (tls_cert and tls_key; --tls-cert and "
            f"--tls-key); {where} gives only one"
        )
    return settings


def _scalar(table: Mapping[str, Any], scalar: Scalar, where: str) -> Any:
    value = table.get(scalar.name, scalar.default)
    if scalar.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, scalar.kind) or isinstance(value, bool):
        kind = {str: "a string", float: "a number", int: "an integer"}[scalar.kind]
        raise ConfigError(f"{scalar.name} in {where} must be {kind}")
    if isinstance(value, int | float) and value <= 0:
        raise ConfigError(f"{scalar.name} in {where} must be above 0, not {value}")
    if isinstance(value, str) and _SECRET_TEXT.search(value):
        raise ConfigError(
            f"{scalar.name} in {where} holds a secret; secrets go in files",
            hint="name a key file (mode 0600) or a systemd credential instead",
        )
    return value


def _store(base: Path, value: str) -> str:
    if value.startswith("s3://"):
        return value
    if "://" in value and not value.startswith("file://"):
        raise ConfigError(f"store {value!r} is neither a directory nor s3://BUCKET/PREFIX")
    return str(base / value.removeprefix("file://"))


def _path(base: Path, value: str) -> Path | None:
    return base / value if value else None


def _credential(name: str, where: str, env: Mapping[str, str]) -> Path | None:
    if "/" in name or name in (".", ".."):
        raise ConfigError(f"tls_key_credential in {where} must be a credential name, not a path")
    directory = env.get("CREDENTIALS_DIRECTORY")
    return Path(directory) / name if directory else None


def _strings(table: Mapping[str, Any], name: str, where: str) -> tuple[str, ...]:
    value = table.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{name} in {where} must be a list of strings")
    return tuple(value)


def _grants(table: Mapping[str, Any], name: str, where: str) -> tuple[Grant, ...]:
    grants = table.get(name, {})
    if not isinstance(grants, dict):
        raise ConfigError(f"[serve.{name}] ({where}) must map job patterns to lists of keys")
    parsed: list[Grant] = []
    for pattern, keys in grants.items():
        if isinstance(keys, str):
            keys = [keys]
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ConfigError(f"[serve.{name}] {pattern!r} must be a list of keys tds1…")
        parsed.extend(parse_grant(f"{pattern}={key}") for key in keys)
    return tuple(parsed)
