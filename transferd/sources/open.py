"""Open the source a command line names: a directory path (PostgreSQL and Azure come later)."""

from __future__ import annotations

from transferd.errors import ConfigError
from transferd.sources.base import Source


def open_source(spec: str) -> Source:
    if spec.startswith(("postgresql://", "postgres://")):
        raise ConfigError("PostgreSQL sources are not supported yet")
    if spec.startswith("az://"):
        raise ConfigError("Azure Blob sources are not supported yet")
    from transferd.sources.directory import DirectorySource

    return DirectorySource(spec)
