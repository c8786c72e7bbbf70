"""Open the source a command line names: a PostgreSQL URL, an Azure Blob container
(``az://ACCOUNT/CONTAINER[/PREFIX]``) or a directory."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from transferd.errors import ConfigError
from transferd.sources.base import Source
from transferd.util.extras import needs
from transferd.util.pathfilter import PathFilter

if TYPE_CHECKING:
    from transferd.sources.azure.auth import AzureOptions
    from transferd.sources.postgres.source import PgOptions


_DSN = re.compile(r"\s*(host|hostaddr|port|dbname|user|service|sslmode)\s*=")


def is_postgres(spec: str) -> bool:
    """A libpq URL, or a ``key=value`` connection string starting with a usual keyword."""
    return spec.startswith(("postgresql://", "postgres://")) or _DSN.match(spec) is not None


def open_source(
    spec: str,
    *,
    postgres: PgOptions | None = None,
    azure: AzureOptions | None = None,
    select: PathFilter | None = None,
) -> Source:
    """``postgres``: options of a PostgreSQL source (snapshot, parallelism, selection);
    ``azure``: credential file, endpoint and read sizes of an Azure Blob source; ``select``:
    the filter rules of a directory source (--exclude, --include, --filter)."""
    if select is not None and select.active and (is_postgres(spec) or spec.startswith("az://")):
        raise ConfigError(
            "--exclude, --include and --filter apply to directory sources only",
            hint="choose the tables of a database with -n/-N/-t/-T/--exclude-table-data",
        )
    if is_postgres(spec):
        with needs("postgres"):
            from transferd.sources.postgres.source import PostgresSource

        return PostgresSource(spec, postgres)
    if spec.startswith("az://"):
        with needs("azure"):  # the Azure SDK only when used
            from transferd.sources.azure.source import AzureBlobSource

        return AzureBlobSource(spec, azure)
    from transferd.sources.directory import DirectorySource

    return DirectorySource(spec, select)
