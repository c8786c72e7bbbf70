"""Where a stored copy is read from, for the commands that read one (restore, verify).

One argument group (``--store DIR|s3://…`` or ``--from URL``) and one way to open it: local and
S3 stores read-only, a storage host over HTTP with a key that signs each request.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transferd.core.keys import SenderSecretKey
from transferd.errors import ConfigError, JobNotFoundError, StoreError, StoreUnopenedError
from transferd.stores.base import Store
from transferd.stores.open import open_store
from transferd.stores.retry import RetryingStore


def add_read_location(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--store",
        metavar="DIR|S3URL",
        help="a store directory on this host, or s3://BUCKET/PREFIX (endpoint and credentials "
        "from $TRANSFERD_S3_CONFIG or AWS_*)",
    )
    where.add_argument(
        "--from", dest="url", metavar="URL", help="http(s)://HOST:PORT of a storage host"
    )


def open_for_reading(
    args: argparse.Namespace,
    key: SenderSecretKey | None,
    *,
    attempts: int,
    key_hint: str,
) -> Store:
    """The store ``--store`` or ``--from`` names, opened to read; ``key`` signs HTTP requests."""
    if args.store is not None and args.store.startswith("s3://"):
        return RetryingStore(open_store(args.store, read_only=True), attempts=attempts)
    if args.store is not None:
        root = Path(args.store)
        if not root.is_dir():
            raise JobNotFoundError(f"store {root} does not exist or is not a directory")
        try:
            return open_store(str(root), read_only=True)
        except StoreError as e:
            raise StoreUnopenedError(f"cannot open store {root}: {e.message}") from None
    if key is None:
        raise ConfigError(f"--from {args.url} needs a key to sign requests with", hint=key_hint)
    return RetryingStore(open_store(args.url, key, args.ca_file), attempts=attempts)
