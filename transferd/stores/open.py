"""Open the store a URL or path names: a local directory, or a storage host over HTTP(S)."""

from __future__ import annotations

from pathlib import Path

from transferd.core.keys import SenderSecretKey
from transferd.errors import ConfigError
from transferd.stores.base import Store


def open_store(
    location: str,
    signing_key: SenderSecretKey | None = None,
    ca_file: Path | None = None,
) -> Store:
    """``http(s)://HOST:PORT`` → the storage host's API (requests signed with ``signing_key``);
    ``file://PATH`` or a plain path → a local store directory."""
    if location.startswith(("http://", "https://")):
        if signing_key is None:
            raise ConfigError(f"{location} needs a key to sign requests with (--sender-key)")
        from transferd.transport.client import HttpStore  # aiohttp only when used

        return HttpStore(location, signing_key, ca_file=ca_file)
    if location.startswith("s3://"):
        raise ConfigError("s3:// stores are not supported yet")
    if "://" in location and not location.startswith("file://"):
        raise ConfigError(f"unknown store location {location!r}: use a path, file:// or http(s)://")
    from transferd.stores.local import LocalStore

    return LocalStore(Path(location.removeprefix("file://")))
