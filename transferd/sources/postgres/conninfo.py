"""Where a PostgreSQL server is and how to log in: parse a libpq URL or DSN, keep the password out
of every message, and connect.

One ``ConnInfo`` serves the async driver (asyncpg) and the libpq tools (``pg_dump``, ``psql``), so
both reach the same server as the same user. Defaults are resolved here, as libpq does (``PGHOST``,
``PGPORT``, ``PGUSER``, ``PGDATABASE``), so that the description of a source is explicit and stable.

The password, when one is given (in the URL, with ``--password-file``, or in ``PGPASSWORD``), is
held in a field that no ``repr`` shows, and reaches the tools only through their environment:
never an argument (``ps`` shows those to every user) and never a file. When none is given, both
asyncpg and libpq read the passfile (``PGPASSFILE``, default ``~/.pgpass``) themselves.
"""

from __future__ import annotations

import getpass
import os
import stat
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg

from transferd.errors import ConfigError, TransferdError

CONNECT_TIMEOUT = 30.0
"""Seconds to wait for a server to accept a connection before calling it unreachable."""

_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(spec: str) -> bool:
    return spec.startswith(_SCHEMES)


@dataclass(frozen=True)
class ConnInfo:
    host: str
    port: int
    user: str
    dbname: str
    options: Mapping[str, str] = field(default_factory=dict)
    """Other libpq keywords given (sslmode, sslrootcert, …), passed on to the driver and tools."""
    password: str | None = field(default=None, repr=False, compare=False)
    timeout: float = CONNECT_TIMEOUT

    @property
    def server(self) -> str:
        """``host:port`` (``[v6]:port``), or the socket directory and port."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def description(self) -> str:
        """A URL naming server, user and database, without any password: safe in any message,
        and the same whichever way the password was given."""
        user = urllib.parse.quote(self.user, safe="")
        db = urllib.parse.quote(self.dbname, safe="")
        if self.host.startswith("/"):
            query = urllib.parse.urlencode({"host": self.host, "port": self.port})
            return f"postgresql://{user}@/{db}?{query}"
        return f"postgresql://{user}@{self.server}/{db}"

    def with_dbname(self, dbname: str) -> ConnInfo:
        return replace(self, dbname=dbname)

    def libpq_string(self) -> str:
        """A ``key=value`` connection string for libpq tools, without the password."""
        items = {"host": self.host, "port": str(self.port), "user": self.user,
                 "dbname": self.dbname, "connect_timeout": str(max(1, int(self.timeout))),
                 **self.options}  # fmt: skip
        return " ".join(f"{k}={_quote_value(v)}" for k, v in items.items())

    def tool_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment for a libpq tool: ``base`` (default: ours), with the password if we
        hold one; settings of the caller's that would point it elsewhere are dropped."""
        env = dict(os.environ if base is None else base)
        for key in ("PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE"):
            env.pop(key, None)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    async def connect(
        self,
        error: type[TransferdError],
        *,
        application_name: str = "transferd",
        settings: Mapping[str, str] | None = None,
    ) -> asyncpg.Connection:
        """A connection, or ``error`` with a message that says what to fix (never the password)."""
        server_settings = {"application_name": application_name, **(settings or {})}
        kwargs: dict[str, Any] = {}
        if "sslmode" in self.options:
            kwargs["ssl"] = self.options["sslmode"]
        if "passfile" in self.options:
            kwargs["passfile"] = self.options["passfile"]
        try:
            conn: asyncpg.Connection = await asyncpg.connect(
                host=self.host, port=self.port, user=self.user, database=self.dbname,
                password=self.password, timeout=self.timeout, server_settings=server_settings,
                statement_cache_size=0, **kwargs,
            )  # fmt: skip
        except asyncpg.InvalidPasswordError:
            raise error(
                f"password authentication failed for user {self.user} at {self.server}",
                hint="give the password with --password-file FILE, PGPASSWORD or ~/.pgpass",
                server=self.server,
                user=self.user,
            ) from None
        except asyncpg.InvalidCatalogNameError:
            raise error(
                f"database {self.dbname} does not exist at {self.server}",
                server=self.server,
                database=self.dbname,
            ) from None
        except asyncpg.PostgresError as e:
            raise error(f"{self.description}: {_server_message(e)}", server=self.server) from None
        except (OSError, TimeoutError, asyncpg.InterfaceError) as e:
            reason = "timed out" if isinstance(e, TimeoutError) else str(e) or type(e).__name__
            raise error(
                f"cannot connect to PostgreSQL at {self.server}: {reason}",
                hint="check that the server runs and accepts connections from this host",
                server=self.server,
            ) from None
        return conn


def parse(spec: str, password_file: Path | None = None) -> ConnInfo:
    """A ``postgresql://`` URL or a ``key=value`` DSN, with libpq's defaults filled in."""
    params = _parse_url(spec) if is_postgres_url(spec) else _parse_dsn(spec)
    unknown = {k for k in params if not k.isidentifier()}
    if unknown:
        raise ConfigError(f"not a PostgreSQL connection string: bad keyword {sorted(unknown)[0]}")
    password = params.pop("password", None)
    if password_file is not None:
        password = read_password_file(password_file)
    elif password is None:
        password = os.environ.get("PGPASSWORD")
    host = params.pop("host", "") or os.environ.get("PGHOST") or "localhost"
    port_text = params.pop("port", "") or os.environ.get("PGPORT") or "5432"
    user = params.pop("user", "") or os.environ.get("PGUSER") or getpass.getuser()
    dbname = params.pop("dbname", "") or os.environ.get("PGDATABASE") or user
    try:
        port = int(port_text)
        timeout = float(params.pop("connect_timeout", CONNECT_TIMEOUT))
    except ValueError:
        raise ConfigError(
            f"not a PostgreSQL connection string: bad port or connect_timeout in {mask(spec)}"
        ) from None
    if "," in host:
        raise ConfigError("several hosts in one connection string are not supported")
    params.pop("application_name", None)
    return ConnInfo(host, port, user, dbname, params, password, timeout or CONNECT_TIMEOUT)


def read_password_file(path: Path) -> str:
    """The first line of a file that only its owner can read (libpq's rule for ``.pgpass``)."""
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read password file {path}: {e.strerror}") from None
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise ConfigError(
            f"password file {path} can be read by other users",
            hint=f"run: chmod 600 {path}",
        )
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise ConfigError(f"password file {path} is empty")
    return lines[0]


def mask(spec: str) -> str:
    """The text of a connection string as given, with any password replaced by ``****``."""
    if is_postgres_url(spec):
        parts = urllib.parse.urlsplit(spec)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            if ":" in userinfo:
                netloc = userinfo.split(":", 1)[0] + ":****@" + hostport
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        masked_query = "&".join(
            f"{k}={'****' if k == 'password' else urllib.parse.quote(v, safe='/')}"
            for k, v in query
        )
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, masked_query, ""))
    try:
        params = _parse_dsn(spec)
    except ConfigError:
        return "(a connection string that does not parse)"
    return " ".join(
        f"{k}={'****' if k == 'password' else _quote_value(v)}" for k, v in params.items()
    )


def _parse_url(spec: str) -> dict[str, str]:
    try:
        parts = urllib.parse.urlsplit(spec)
        port = parts.port
    except ValueError as e:
        raise ConfigError(f"not a PostgreSQL URL: {mask(spec)}: {e}") from None
    params: dict[str, str] = {}
    if parts.username:
        params["user"] = urllib.parse.unquote(parts.username)
    if parts.password is not None:
        params["password"] = urllib.parse.unquote(parts.password)
    if parts.hostname:
        params["host"] = urllib.parse.unquote(parts.hostname)
    if port is not None:
        params["port"] = str(port)
    if parts.path.strip("/"):
        params["dbname"] = urllib.parse.unquote(parts.path.lstrip("/"))
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        params["dbname" if key == "database" else key] = value
    return params


def _parse_dsn(spec: str) -> dict[str, str]:
    """libpq's ``key=value`` form: values may be single-quoted, with ``\\'`` and ``\\\\``."""
    params: dict[str, str] = {}
    i, n = 0, len(spec)
    while True:
        while i < n and spec[i].isspace():
            i += 1
        if i >= n:
            return params
        eq = spec.find("=", i)
        if eq < 0:
            raise ConfigError("not a PostgreSQL connection string: expected key=value")
        key = spec[i:eq].strip()
        i = eq + 1
        while i < n and spec[i].isspace():
            i += 1
        value: list[str] = []
        if i < n and spec[i] == "'":
            i += 1
            while i < n and spec[i] != "'":
                if spec[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(spec[i])
                i += 1
            if i >= n:
                raise ConfigError("not a PostgreSQL connection string: unterminated quote")
            i += 1
        else:
            while i < n and not spec[i].isspace():
                if spec[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(spec[i])
                i += 1
        params[key] = "".join(value)


def _quote_value(value: str) -> str:
    if value and not any(c.isspace() or c in "'\\" for c in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _server_message(e: asyncpg.PostgresError) -> str:
    return str(getattr(e, "message", None) or e)
