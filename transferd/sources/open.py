"""Open the source a command line names: a PostgreSQL URL, an Azure Blob container
(``az://ACCOUNT/CONTAINER[/PREFIX]``) or a directory."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from transferd.sources.base import Source

if TYPE_CHECKING:
    from transferd.sources.azure.auth import AzureOptions
    from transferd.sources.postgres.source import PgOptions


_DSN = re.compile(r"\s*(host|hostaddr|port|dbname|user|service|sslmode)\s*=")


def is_postgres(spec: str) -> bool:
    """A libpq URL, or a ``key=value`` connection string starting with a usual keyword."""
    return spec.startswith(("postgresql://", "postgres://")) or _DSN.match(spec) is not None


def open_source(
    spec: str, *, postgres: PgOptions | None = None, azure: AzureOptions | None = None
) -> Source:
    """``postgres``: options of a PostgreSQL source (snapshot, parallelism, selection);
    ``azure``: credential file, endpoint and read sizes of an Azure Blob source."""
    if is_postgres(spec):
        from transferd.sources.postgres.source import PostgresSource

        return PostgresSource(spec, postgres)
    if spec.startswith("az://"):
        from transferd.sources.azure.source import AzureBlobSource  # the Azure SDK only when used

        return AzureBlobSource(spec, azure)
    from transferd.sources.directory import DirectorySource

    return DirectorySource(spec)
