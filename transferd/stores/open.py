"""Open the store a URL or path names: a local directory, a storage host over HTTP(S), or an
S3-compatible bucket (``s3://BUCKET/PREFIX``, settings in stores/s3config.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from transferd.core.keys import SenderSecretKey
from transferd.errors import ConfigError
from transferd.stores.base import Store
from transferd.stores.s3lock import LockPolicy
from transferd.util.extras import needs


def open_store(
    location: str,
    signing_key: SenderSecretKey | None = None,
    ca_file: Path | None = None,
    s3_config: Path | None = None,
    *,
    read_only: bool = False,
    lock: LockPolicy | None = None,
) -> Store:
    """``http(s)://HOST:PORT`` → the storage host's API (requests signed with ``signing_key``);
    ``s3://BUCKET/PREFIX`` → the bucket (endpoint and credentials from ``s3_config``, else
    ``$TRANSFERD_S3_CONFIG``, else the AWS_* variables); ``file://PATH`` or a plain path → a
    local store directory. ``read_only`` (verify, restore) opens a local store without writing.
    ``lock``: retention for what an S3 store keeps (over its [s3] table's); refused elsewhere."""
    if lock is not None and not location.startswith("s3://"):
        raise ConfigError(
            f"--object-lock needs an s3:// store, not {location}",
            hint="Object Lock is S3's: store to a bucket created with Object Lock",
        )
    if location.startswith(("http://", "https://")):
        if signing_key is None:
            raise ConfigError(f"{location} needs a key to sign requests with (--sender-key)")
        from transferd.stores.http import HttpStore  # aiohttp only when used

        return HttpStore(location, signing_key, ca_file=ca_file)
    if location.startswith("s3://"):
        with needs("s3"):  # aiobotocore only when used
            from transferd.stores.s3 import S3Store
        from transferd.stores.s3config import load_settings

        settings = load_settings(location, s3_config)
        if lock is not None:
            settings = dataclasses.replace(settings, lock=lock)
        return S3Store(settings)
    if "://" in location and not location.startswith("file://"):
        raise ConfigError(
            f"unknown store location {location!r}: use a path, file://, http(s):// or s3://"
        )
    from transferd.stores.local import LocalStore

    return LocalStore(Path(location.removeprefix("file://")), read_only=read_only)
