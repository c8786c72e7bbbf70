"""Read and check the daemon's TOML configuration into frozen dataclasses.

systemd/transferd.toml.example (shipped in the package, as a link to it, and printed by
``transferd daemon --print-config``) shows every setting with its default and what it does; this
module is the one place those defaults live. Unknown tables and settings are refused (a typo must
not silently leave a default in force), relative paths are relative to the file.

Secrets never appear in the file. A secret is named by a file path (``sender_key``, ``tls_key``),
read at start with its mode checked: a key file that group or others can read is refused, with a
message saying so (the rule ssh applies to private keys; util/secretfiles.py reads it). Or it is
named as a systemd credential (``sender_key_credential``): the unit's ``LoadCredential=NAME:PATH``
gives the service a private copy under ``$CREDENTIALS_DIRECTORY``, readable by it alone, so the
original can stay root-only. A value that looks like a key itself is refused outright.
"""

from __future__ import annotations

import importlib.resources
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferd.errors import ConfigError
from transferd.host.settings import HostSettings, read_serve_table
from transferd.send.state import default_state_dir
from transferd.util.secretfiles import read_secret_file
from transferd.util.tomlfile import read_toml
from transferd.util.units import parse_rate

DEFAULT_CONFIG = Path("/etc/transferd/transferd.toml")
_LISTEN = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]+)):(?P<port>[0-9]{1,5})")
_SECRET_TEXT = re.compile(r"\btd-secret-|AGE-SECRET-KEY-|-----BEGIN [A-Z ]*PRIVATE KEY", re.I)
_LOG_FORMATS = ("logfmt", "json")
_LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class SecretRef:
    """Where a secret is: a file the operator named, or a systemd credential."""

    path: Path
    what: str
    """What the secret is for, for messages ("the sender key")."""

    def read(self) -> str:
        """The secret's text; ConfigError if it cannot be read or others can read it."""
        text = read_secret_file(self.path)
        if text.exposed:
            raise ConfigError(
                f"{self.what} {self.path} is readable by group or others "
                f"(mode {text.mode:04o}); refusing to use it",
                hint=f"chmod 600 {self.path}, or pass it as a systemd credential (LoadCredential=)",
            )
        return text.text


@dataclass(frozen=True)
class DaemonSettings:
    state_dir: Path
    control_socket: Path
    logs_dir: Path
    drain_timeout: float = 60.0
    max_jobs: int = 2
    log_format: str = "logfmt"
    log_level: str = "info"


@dataclass(frozen=True)
class MetricsSettings:
    listen: tuple[str, int] | None = ("127.0.0.1", 9464)


@dataclass(frozen=True)
class SendSettings:
    enabled: bool = True
    sender_key: SecretRef | None = None
    store: str | None = None
    ca_file: Path | None = None
    recipients: tuple[str, ...] = ()
    bandwidth: int = 0
    job_bandwidth: int = 0
    level: int = 1
    workers: int = 0
    uploads: int = 4
    pack_size: int = 16 << 20
    retries: int = 8
    retry_delay: float = 30.0
    require_pq: bool = False
    """Refuse jobs with a classic-only (X25519) recipient, as ``send --require-pq`` does."""


ServeSettings = HostSettings
"""The receiving role's settings are the storage host's own: ``[serve]`` is read by
host/settings.py, the parser ``transferd serve`` uses, so one table runs the same host both ways."""


@dataclass(frozen=True)
class Config:
    path: Path | None
    daemon: DaemonSettings
    metrics: MetricsSettings
    send: SendSettings
    serve: ServeSettings
    azure: dict[str, Any] = field(default_factory=dict)
    """``[azure]``, its paths resolved (sources/azure/table.py): how the jobs' az:// sources sign
    in. Empty: the default of an Azure source (a key or SAS from its environment)."""
    has_s3: bool = False

    @property
    def s3_config(self) -> Path | None:
        """This file when it has an ``[s3]`` table: where the jobs' s3:// stores are and how to
        sign in to them (stores/s3config.py), as the receiving role's store reads it."""
        return self.path if self.has_s3 else None


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (None: defaults only) and resolve defaults from ``environ``."""
    env = os.environ if environ is None else environ
    doc: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        doc, base = _read(path), path.parent
    t = _Tables(doc, base, path, env)
    t.known(doc, "", {"daemon", "metrics", "send", "serve", "s3", "azure"})
    config = Config(path, t.daemon(), t.metrics(), t.send(), t.serve(), t.azure(),
                    has_s3="s3" in doc)  # fmt: skip
    t.raise_problems()
    return config


EXAMPLE = "transferd.toml.example"


def example_config() -> str:
    """The example configuration shipped in the package: every setting, its default, what it
    does (``transferd daemon --print-config``)."""
    return (
        importlib.resources.files(__package__ or "transferd.daemon")
        .joinpath(EXAMPLE)
        .read_text(encoding="utf-8")
    )


def parse_listen(text: str, where: str = "listen") -> tuple[str, int]:
    m = _LISTEN.fullmatch(text.strip())
    if m is None or int(m["port"]) > 65535:
        raise ConfigError(f"{where} {text!r} is not HOST:PORT (or [IPv6]:PORT)")
    return m["v6"] or m["host"], int(m["port"])


def _read(path: Path) -> dict[str, Any]:
    return read_toml(path)


PRINT_CONFIG_HINT = (
    "every setting, with its default and what it does: transferd daemon --print-config"
)


class _Tables:
    """Typed getters over one document: each names the table and setting it complains about.

    A problem is recorded and the setting's default used, so that every problem of the file is
    found in one reading: ``daemon --check`` lists them all, instead of one per edit."""

    def __init__(
        self, doc: dict[str, Any], base: Path, path: Path | None, env: Mapping[str, str]
    ) -> None:
        self.doc, self.base, self.path, self.env = doc, base, path, env
        self.problems: list[ConfigError] = []

    def problem(self, error: ConfigError) -> None:
        self.problems.append(error)

    def raise_problems(self) -> None:
        """One problem as it is; several as one error listing each, one a line."""
        if len(self.problems) == 1:
            raise self.problems[0]
        if self.problems:
            messages = [p.message for p in self.problems]
            raise ConfigError(
                f"{len(messages)} problems in {self.path}:\n" + "\n".join(messages),
                hint=PRINT_CONFIG_HINT,
                problems=messages,
            )

    def azure(self) -> dict[str, Any]:
        table = self.doc.get("azure", {})
        if not isinstance(table, dict):
            self.problem(ConfigError(f"[azure] of {self.path} must be a table"))
            return {}
        from transferd.sources.azure.table import check_table, options_from_table

        try:
            resolved = check_table(table, self.base, str(self.path))
            if resolved:
                options_from_table(resolved)  # the sign-in's own checks, now, not at a job's run
        except ConfigError as e:
            self.problem(e)
            return {}
        return resolved

    def known(self, table: Mapping[str, Any], name: str, allowed: set[str]) -> None:
        where = f"[{name}] of {self.path}" if name else str(self.path)
        for key in sorted(set(table) - allowed):
            self.problem(
                ConfigError(
                    f"unknown setting {key!r} in {where}",
                    hint=f"known: {', '.join(sorted(allowed))} ({PRINT_CONFIG_HINT})",
                )
            )

    def _table(self, name: str, allowed: set[str]) -> dict[str, Any]:
        table = self.doc.get(name, {})
        if not isinstance(table, dict):
            self.problem(ConfigError(f"[{name}] in {self.path} must be a table"))
            return {}
        self.known(table, name, allowed)
        return table

    def _listen(self, text: str, where: str, default: tuple[str, int]) -> tuple[str, int]:
        try:
            return parse_listen(text, where)
        except ConfigError as e:
            self.problem(e)
            return default

    def _rate(self, table: dict[str, Any], key: str, default: str, name: str) -> int:
        text = self._get(table, key, str, default, name)
        try:
            return parse_rate(text)
        except ConfigError as e:
            self.problem(ConfigError(f"{key} in [{name}] of {self.path}: {e.message}", hint=e.hint))
            return parse_rate(default)

    def _get(self, table: dict[str, Any], key: str, kind: type, default: Any, name: str) -> Any:
        value = table.get(key, default)
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            self.problem(ConfigError(f"{key} in [{name}] of {self.path} must be a {kind.__name__}"))
            return default
        if isinstance(value, str) and _SECRET_TEXT.search(value):
            self.problem(
                ConfigError(
                    f"{key} in [{name}] of {self.path} holds a secret; secrets go in files",
                    hint="name a key file (mode 0600) or a systemd credential instead",
                )
            )
            return default
        return value

    def _positive(self, table: dict[str, Any], key: str, default: Any, name: str) -> Any:
        value = self._get(table, key, type(default), default, name)
        if value <= 0:
            self.problem(ConfigError(f"{key} in [{name}] of {self.path} must be above 0"))
            return default
        return value

    def _path(self, value: str) -> Path | None:
        return self.base / os.path.expanduser(value) if value else None

    def _strings(self, table: dict[str, Any], key: str, name: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(ConfigError(f"{key} in [{name}] of {self.path} must be a list of strings"))
            return ()
        for v in value:
            self._get({key: v}, key, str, "", name)
        return tuple(value)

    def _secret(
        self, table: dict[str, Any], key: str, what: str, name: str, credential: str
    ) -> SecretRef | None:
        path = self._path(self._get(table, key, str, "", name))
        if path is not None:
            return SecretRef(path, what)
        cred = self._get(table, f"{key}_credential", str, credential, name)
        directory = self.env.get("CREDENTIALS_DIRECTORY")
        if not cred or not directory:
            return None
        if "/" in cred or cred in (".", ".."):
            self.problem(
                ConfigError(f"{key}_credential in [{name}] must be a credential name, not a path")
            )
            return None
        return SecretRef(Path(directory) / cred, what)

    def daemon(self) -> DaemonSettings:
        name = "daemon"
        t = self._table(
            name,
            {
                "state_dir",
                "control_socket",
                "logs_dir",
                "drain_timeout",
                "max_jobs",
                "log_format",
                "log_level",
            },
        )
        state = self._path(self._get(t, "state_dir", str, "", name)) or default_state_dir()
        socket = self._path(self._get(t, "control_socket", str, "", name))
        if socket is None:
            runtime = self.env.get("RUNTIME_DIRECTORY", "").split(":")[0]
            socket = Path(runtime) / "control.sock" if runtime else state / "control.sock"
        logs = self._path(self._get(t, "logs_dir", str, "", name))
        if logs is None:
            env_logs = self.env.get("LOGS_DIRECTORY", "").split(":")[0]
            logs = Path(env_logs) if env_logs else state / "logs"
        fmt = self._get(t, "log_format", str, "logfmt", name)
        level = self._get(t, "log_level", str, "info", name)
        if fmt not in _LOG_FORMATS:
            self.problem(
                ConfigError(f"log_format in [daemon] must be one of {', '.join(_LOG_FORMATS)}")
            )
            fmt = _LOG_FORMATS[0]
        if level not in _LOG_LEVELS:
            self.problem(
                ConfigError(f"log_level in [daemon] must be one of {', '.join(_LOG_LEVELS)}")
            )
            level = "info"
        return DaemonSettings(
            state_dir=state,
            control_socket=socket,
            logs_dir=logs,
            drain_timeout=self._positive(t, "drain_timeout", 60.0, name),
            max_jobs=self._positive(t, "max_jobs", 2, name),
            log_format=fmt,
            log_level=level,
        )

    def metrics(self) -> MetricsSettings:
        t = self._table("metrics", {"listen"})
        text = self._get(t, "listen", str, "127.0.0.1:9464", "metrics")
        if not text:
            return MetricsSettings(None)
        default = MetricsSettings().listen
        assert default is not None  # noqa: S101 - the class default is an address
        listen = self._listen(text, "listen in [metrics]", default)
        if listen[0] not in ("127.0.0.1", "::1", "localhost") and not listen[0].startswith("127."):
            self.problem(
                ConfigError(
                    f"listen in [metrics] is {text}: the metrics endpoint listens on loopback only",
                    hint="use 127.0.0.1:PORT and let a local Prometheus agent or proxy forward it",
                )
            )
            listen = default
        return MetricsSettings(listen)

    def send(self) -> SendSettings:
        name = "send"
        t = self._table(
            name,
            {"enabled", "sender_key", "sender_key_credential", "store", "ca_file", "recipients",
             "bandwidth", "job_bandwidth", "level", "workers", "uploads", "pack_size", "retries",
             "retry_delay", "require_pq"},
        )  # fmt: skip
        d = SendSettings()
        store = self._get(t, "store", str, "", name)
        if store and "://" not in store:
            store = str(self.base / store)
        level = self._get(t, "level", int, d.level, name)
        if not 1 <= level <= 22:
            self.problem(
                ConfigError(f"level in [send] must be a zstd level from 1 to 22, not {level}")
            )
            level = d.level
        workers = self._get(t, "workers", int, d.workers, name)
        if workers < 0:
            self.problem(ConfigError("workers in [send] must be 0 (one per core) or more"))
            workers = d.workers
        return SendSettings(
            enabled=self._get(t, "enabled", bool, True, name),
            sender_key=self._secret(t, "sender_key", "the sender key", name, "sender.key"),
            store=store or None,
            ca_file=self._path(self._get(t, "ca_file", str, "", name)),
            recipients=self._strings(t, "recipients", name),
            bandwidth=self._rate(t, "bandwidth", "0", name),
            job_bandwidth=self._rate(t, "job_bandwidth", "0", name),
            level=level,
            workers=workers,
            uploads=self._positive(t, "uploads", d.uploads, name),
            pack_size=self._rate(t, "pack_size", "16M", name) or d.pack_size,
            retries=self._positive(t, "retries", d.retries, name),
            retry_delay=self._positive(t, "retry_delay", d.retry_delay, name),
            require_pq=self._get(t, "require_pq", bool, d.require_pq, name),
        )

    def serve(self) -> ServeSettings:
        table = self.doc.get("serve", {})
        if not isinstance(table, dict):
            self.problem(ConfigError(f"[serve] in {self.path} must be a table"))
            table = {}
        where = f"[serve] of {self.path}"
        try:
            settings = read_serve_table(
                table, base=self.base, where=where, env=self.env, s3_config=self.path
            )
        except ConfigError as e:  # recorded; the other tables are still read for their problems
            self.problem(e)
            return read_serve_table({}, base=self.base, where=where, env=self.env)
        if settings.enabled and settings.store is None:
            self.problem(
                ConfigError(f"[serve] of {self.path} is enabled but names no store directory")
            )
        return settings
