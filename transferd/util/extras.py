"""The optional parts of transferd, each an extra of the package, and the one error for a missing
one: ``pip install 'transferd[postgres]'`` (asyncpg; psycopg2 and pypgoutput for ``--follow``),
``[azure]`` (azure-storage-blob) and ``[s3]`` (aiobotocore). A directory sent to a storage host
needs none of them.

Every import of an optional library happens inside ``needs(extra)``, where the code path that
needs it starts: a missing library then ends the command with an error naming the extra to
install (exit 2), not with a ModuleNotFoundError traceback from deep inside a driver.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from transferd.errors import ConfigError

EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "postgres": (
        "PostgreSQL sources, restores and comparisons",
        ("asyncpg", "psycopg2", "pypgoutput"),
    ),
    "azure": ("Azure Blob sources", ("azure",)),
    "s3": ("S3 stores", ("aiobotocore", "botocore")),
}
"""extra -> (what it is for, the top-level modules it installs)."""


@contextlib.contextmanager
def needs(extra: str) -> Iterator[None]:
    """Run the block; if it fails to import a module of ``extra``, say which extra to install."""
    what, modules = EXTRAS[extra]
    try:
        yield
    except ModuleNotFoundError as e:
        missing = (e.name or "").partition(".")[0]
        if missing not in modules:
            raise
        raise ConfigError(
            f"{what} need the Python package {missing}, which is not installed",
            hint=f"install transferd with its {extra} extra: pip install 'transferd[{extra}]'",
            extra=extra,
            module=missing,
        ) from None
