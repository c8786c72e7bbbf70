"""Open the source a command line names: a PostgreSQL URL or a directory (Azure comes later)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from transferd.errors import ConfigError
from transferd.sources.base import Source

if TYPE_CHECKING:
    from transferd.sources.postgres import PgOptions


_DSN = re.compile(r"\s*(host|hostaddr|port|dbname|user|service|sslmode)\s*=")


def is_postgres(spec: str) -> bool:
    """A libpq URL, or a ``key=value`` connection string starting with a usual keyword."""
    return spec.startswith(("postgresql://", "postgres://")) or _DSN.match(spec) is not None


def open_source(spec: str, *, postgres: PgOptions | None = None) -> Source:
    """``postgres``: options of a PostgreSQL source (snapshot, parallelism, selection)."""
    if is_postgres(spec):
        from transferd.sources.postgres import PostgresSource

        return PostgresSource(spec, postgres)
    if spec.startswith("az://"):
        raise ConfigError("Azure Blob sources are not supported yet")
    from transferd.sources.directory import DirectorySource

    return DirectorySource(spec)
