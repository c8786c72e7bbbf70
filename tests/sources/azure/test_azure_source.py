"""The Azure Blob source against a real Azurite: send, restore, compare bytes and MD5s.

A container with nested prefixes, an empty blob, a 100 MiB blob read in ranges, names the
catalog cannot hold as they are (mapped, sources/azure/names.py), and a blob rewritten while the
copy runs (read again at its new ETag). Each restored file is compared byte for byte and by MD5
with what Azure states for the blob.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import subprocess
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient as SyncBlobServiceClient
from azure.storage.blob import ContentSettings

from tests.sources.azure.azurite import KEY, Azurite
from transferd.core.keys import (
    RecipientIdentity,
    SenderSecretKey,
    parse_key_file,
    render_key_file,
)
from transferd.core.source_entry import SourceEntry
from transferd.errors import SourceError
from transferd.restore.directory import restore
from transferd.send.config import PipelineConfig
from transferd.send.run import send
from transferd.sources.azure.auth import AzureOptions
from transferd.sources.azure.names import mapped_path
from transferd.sources.azure.source import AzureBlobSource
from transferd.sources.base import Item, StreamItem, one_per_batch
from transferd.stores.local import LocalStore
from transferd.util.secretfiles import write_secret_file

REPO = Path(__file__).resolve().parents[3]
MIB = 1024 * 1024


async def upload(azurite: Azurite, container: str, blobs: dict[str, bytes]) -> dict[str, bytes]:
    """Create the container and its blobs; returns each blob's Content-MD5 as Azure states it.

    Uploads go through the SDK's synchronous client on a thread: its async client hands aiohttp
    raw 4 MiB bodies, which aiohttp warns about (and warnings are errors here)."""
    return await asyncio.to_thread(_upload, azurite, container, blobs, True)


def _upload(
    azurite: Azurite, container: str, blobs: dict[str, bytes], create: bool
) -> dict[str, bytes]:
    service = SyncBlobServiceClient.from_connection_string(azurite.connection_string)
    client = service.get_container_client(container)
    if create:
        client.create_container()
    for name, data in blobs.items():
        settings = ContentSettings(
            content_md5=bytearray(hashlib.md5(data, usedforsecurity=False).digest())
        )
        client.upload_blob(name, data, overwrite=True, content_settings=settings, max_concurrency=4)
    return {b.name: bytes(b.content_settings.content_md5) for b in client.list_blobs()}


def keys(directory: Path) -> tuple[SenderSecretKey, RecipientIdentity, Path, Path]:
    sender, identity = SenderSecretKey(os.urandom(32)), RecipientIdentity(os.urandom(32))
    sender_file, identity_file = directory / "sender.key", directory / "owner.key"
    created = "2026-11-22T21:00:00Z"
    write_secret_file(sender_file, render_key_file(sender, created).encode())
    write_secret_file(identity_file, render_key_file(identity, created).encode())
    return sender, identity, sender_file, identity_file


def transferd(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AZURE_"))}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "transferd", *args],
        capture_output=True, text=True, env=env, timeout=240, check=False,
    )  # fmt: skip


@pytest.mark.slow
async def test_a_container_round_trips_byte_identical_with_md5s_matching(
    azurite: Azurite, tmp_path: Path
) -> None:
    big = os.urandom(100 * MIB)
    blobs = {
        "exports/2026/top.csv": b"id;acte\n1;consultation\n" * 100,
        "exports/2026/a/d.csv": b"d" * 5000,
        "exports/2026/a/b/c.csv": os.urandom(300 * 1024),  # above INLINE_MAX: a ranged read
        "exports/2026/empty.csv": b"",
        "exports/2026/big/dcir.bin": big,
        "exports/2026/x": b"a blob named like a directory",
        "exports/2026/x/y.csv": b"a blob under a blob",  # conflicts with x: mapped
        "exports/2026//lead.csv": b"a double slash",  # relative name "/lead.csv": mapped
        "other/outside.csv": b"not under the prefix",
    }
    md5s = await upload(azurite, "hdh", blobs)
    _, _, sender_file, identity_file = keys(tmp_path)
    identity_text = identity_file.read_text().splitlines()[-1]
    owner = parse_key_file(identity_file.read_text())
    assert isinstance(owner, RecipientIdentity)
    store, out = tmp_path / "store", tmp_path / "out"

    sent = transferd(
        "send", "az://devstoreaccount1/hdh/exports/2026", "--to", str(store), "--job", "az-test",
        "--sender-key", str(sender_file), "--recipient", owner.public().to_text(),
        "--state", str(tmp_path / "state"), "--azure-credential-file",
        str(azurite.credential_file(tmp_path)), "--workers", "2", "--json",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    restored = transferd(
        "restore", "--store", str(store), "--job", "az-test", "--identity", str(identity_file),
        "--out", str(out),
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr

    for output in (sent.stdout, sent.stderr, restored.stdout, restored.stderr):
        assert KEY not in output
        assert identity_text not in output
    prefix = "exports/2026/"
    expected_paths = {}
    for name in blobs:
        if not name.startswith(prefix):
            continue
        rel = name[len(prefix) :]
        mapped = rel in ("x/y.csv", "/lead.csv")
        expected_paths[name] = out / (mapped_path(rel) if mapped else rel)
    for name, path in expected_paths.items():
        data = path.read_bytes()
        assert data == blobs[name], name
        assert hashlib.md5(data, usedforsecurity=False).digest() == md5s[name], name
    assert not (out / "other").exists()
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert len(files) == len(expected_paths)


class RewriteWhileCopying:
    """A source that rewrites one blob in Azure once the pipeline has read its first range."""

    independent_streams = False

    def __init__(self, inner: AzureBlobSource, path: bytes, rewrite: Any) -> None:
        self.inner, self.path, self.rewrite = inner, path, rewrite
        self.kind, self.description = inner.kind, inner.description

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    async def size_hint(self) -> int | None:
        return None

    async def items(self) -> AsyncIterator[Item]:
        async for item in self.inner.items():
            yield _Hooked(item, self.rewrite) if item.entry.path == self.path else item  # type: ignore[arg-type]

    def batches(self) -> AsyncGenerator[Sequence[Item], None]:
        return one_per_batch(self.items())

    async def close(self) -> None:
        await self.inner.close()


class _Hooked:
    def __init__(self, item: StreamItem, hook: Any) -> None:
        self.item, self.entry, self.hook, self.fired = item, item.entry, hook, False

    async def blocks(self) -> AsyncIterator[bytes | memoryview]:
        async for block in self.item.blocks():
            yield block
            if not self.fired:
                self.fired = True
                await self.hook()

    async def finish(self, size: int, blake3: str) -> SourceEntry:
        return await self.item.finish(size, blake3)


async def test_a_blob_changed_during_the_copy_is_read_again_at_its_new_version(
    azurite: Azurite, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    first, second = os.urandom(2 * MIB + 5), os.urandom(3 * MIB + 7)
    await upload(azurite, "changing", {"day/a.bin": first, "day/b.csv": b"b" * 100})
    sender, owner, _, _ = keys(tmp_path)

    async def rewrite() -> None:
        await asyncio.to_thread(_upload, azurite, "changing", {"day/a.bin": second}, False)

    options = AzureOptions(
        credential_file=azurite.credential_file(tmp_path), range_size=256 * 1024, parallel_ranges=3
    )
    source = RewriteWhileCopying(
        AzureBlobSource("az://devstoreaccount1/changing/day", options), b"a.bin", rewrite
    )
    store = LocalStore(tmp_path / "store")
    result = await send(
        source=source, store=store, job="changing", sender=sender, recipients=[owner.public()],
        state_dir=tmp_path / "state", config=PipelineConfig(workers=2),
    )  # fmt: skip
    await source.close()
    assert result.failures == []
    assert "a.bin changed while it was read; reading it again" in caplog.text

    await restore(store=store, job="changing", identity=owner, out=tmp_path / "out")
    restored = (tmp_path / "out" / "a.bin").read_bytes()
    assert restored == second
    assert (tmp_path / "out" / "b.csv").read_bytes() == b"b" * 100


async def test_refused_credentials_and_a_missing_container_are_named(
    azurite: Azurite, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.credential"
    wrong.write_text(azurite.connection_string.replace(KEY, base64.b64encode(b"x" * 64).decode()))
    wrong.chmod(0o600)
    denied = AzureBlobSource(
        "az://devstoreaccount1/hdh", AzureOptions(credential_file=wrong, attempts=1)
    )
    with pytest.raises(SourceError, match="Azure refused the credential for account"):
        [item async for item in denied.items()]
    await denied.close()
    missing = AzureBlobSource(
        "az://devstoreaccount1/no-such-container",
        AzureOptions(credential_file=azurite.credential_file(tmp_path), attempts=1),
    )
    with pytest.raises(SourceError, match="container no-such-container does not exist"):
        [item async for item in missing.items()]
    await missing.close()
