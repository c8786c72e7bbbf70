"""ADLS Gen2 handling, on Azurite (which has no hierarchical namespace, but shows what such an
account shows through the blob API): directories are zero-length blobs marked hdi_isfolder and
are copied as directories; no blob versions, so each blob is pinned by its ETag and the prefix is
listed again at the end, naming any blob modified, added or deleted since it was read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from tests.sources.azure.azurite import Azurite
from tests.sources.azure.test_azure_source import keys
from transferd.core.source_entry import SourceEntry
from transferd.errors import ObjectNotFoundError, SourceChangedError
from transferd.restore.directory import restore
from transferd.send.config import PipelineConfig
from transferd.send.run import send
from transferd.sources.azure.auth import AzureOptions
from transferd.sources.azure.relist import ReadLog, compare
from transferd.sources.azure.source import AzureBlobSource
from transferd.sources.base import Item, MetaItem, StreamItem, one_per_batch
from transferd.stores.local import LocalStore

FOLDER = {"hdi_isfolder": "true"}


def make_container(azurite: Azurite, name: str, blobs: dict[str, bytes | None]) -> None:
    """``None`` is a directory placeholder, as an HNS account lists its directories."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    client = service.create_container(name)
    for blob, data in blobs.items():
        if data is None:
            client.upload_blob(blob, b"", metadata=FOLDER)
        else:
            client.upload_blob(blob, data)


def write(azurite: Azurite, container: str, name: str, data: bytes) -> None:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    service.get_container_client(container).upload_blob(name, data, overwrite=True)


class AfterRead:
    """The source, with ``hook`` run once the pipeline has finished reading ``path``."""

    independent_streams = False

    def __init__(self, inner: AzureBlobSource, path: bytes, hook: Callable[[], Awaitable[None]]):
        self.inner, self.path, self.hook = inner, path, hook
        self.kind, self.description = inner.kind, inner.description

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    async def size_hint(self) -> int | None:
        return None

    async def items(self) -> AsyncIterator[Item]:
        async for item in self.inner.items():
            if not isinstance(item, MetaItem) and item.entry.path == self.path:
                yield _Finished(item, self.hook)  # type: ignore[arg-type]
            else:
                yield item

    def batches(self) -> AsyncGenerator[Sequence[Item], None]:
        return one_per_batch(self.items())

    async def close(self) -> None:
        await self.inner.close()


class _Finished:
    def __init__(self, item: StreamItem, hook: Callable[[], Awaitable[None]]) -> None:
        self.item, self.entry, self.hook = item, item.entry, hook

    def blocks(self) -> AsyncIterator[bytes | memoryview]:
        return self.item.blocks()

    async def finish(self, size: int, blake3: str) -> SourceEntry:
        entry = await self.item.finish(size, blake3)
        await self.hook()
        return entry


def options(azurite: Azurite, tmp_path: Path) -> AzureOptions:
    return AzureOptions(credential_file=azurite.credential_file(tmp_path), range_size=128 * 1024)


async def test_directory_placeholders_are_restored_as_directories_not_empty_files(
    azurite: Azurite, tmp_path: Path
) -> None:
    make_container(azurite, "hns", {
        "raw": None, "raw/2026": None, "raw/2026/claims.csv": b"1;2\n" * 1000,
        "raw/empty-dir": None, "raw/big.bin": b"\x07" * (400 * 1024),
    })  # fmt: skip
    sender, owner, _, _ = keys(tmp_path)
    store = LocalStore(tmp_path / "store")
    source = AzureBlobSource("az://devstoreaccount1/hns", options(azurite, tmp_path))
    result = await send(
        source=source, store=store, job="hns", sender=sender, recipients=[owner.public()],
        state_dir=tmp_path / "state", config=PipelineConfig(workers=1),
    )  # fmt: skip
    await source.close()
    assert result.failures == []

    out = tmp_path / "out"
    await restore(store=store, job="hns", identity=owner, out=out)
    assert (out / "raw").is_dir()
    assert (out / "raw" / "empty-dir").is_dir()  # kept though nothing is under it
    assert not any((out / "raw" / "empty-dir").iterdir())
    assert (out / "raw" / "2026" / "claims.csv").read_bytes() == b"1;2\n" * 1000
    assert (out / "raw" / "big.bin").read_bytes() == b"\x07" * (400 * 1024)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda az: write(az, "live", "b.csv", b"rewritten"), "b.csv (modified since it was read)"),
        (lambda az: write(az, "live", "c-new.csv", b"new"), "c-new.csv (added since the listing)"),
        (
            lambda az: (
                BlobServiceClient.from_connection_string(az.connection_string)
                .get_container_client("live")
                .delete_blob("a.bin")
            ),
            "a.bin (deleted since it was read)",
        ),
    ],
    ids=["modified", "added", "deleted"],
)
async def test_a_blob_changed_after_it_was_read_is_named_and_nothing_is_published(
    azurite: Azurite, tmp_path: Path, change: Callable[[Azurite], object], named: str
) -> None:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    if not service.get_container_client("live").exists():
        make_container(azurite, "live", {})
    for name, data in {"a.bin": b"a" * (300 * 1024), "b.csv": b"b\n" * 10}.items():
        write(azurite, "live", name, data)
    for extra in ("c-new.csv",):
        if service.get_container_client("live").get_blob_client(extra).exists():
            service.get_container_client("live").delete_blob(extra)
    sender, owner, _, _ = keys(tmp_path)
    store = LocalStore(tmp_path / "store")

    async def hook() -> None:
        await asyncio.to_thread(change, azurite)

    inner = AzureBlobSource("az://devstoreaccount1/live", options(azurite, tmp_path))
    source = AfterRead(inner, b"b.csv" if "a.bin" not in named else b"a.bin", hook)
    with pytest.raises(SourceChangedError) as caught:
        await send(
            source=source, store=store, job="live", sender=sender, recipients=[owner.public()],
            state_dir=tmp_path / "state", config=PipelineConfig(workers=1),
        )  # fmt: skip
    await source.close()
    assert named in caught.value.message
    assert "1 blob has changed while the container was copied" in caught.value.message
    assert "nothing was published" in caught.value.message
    with pytest.raises(ObjectNotFoundError):
        await store.get_manifest("live", 1)


async def listing(items: list[tuple[str, str]]) -> AsyncIterator[tuple[str, str]]:
    for item in items:
        yield item


async def test_the_comparison_names_each_kind_of_change_and_skips_blobs_not_read() -> None:
    log = ReadLog()
    for name, etag in [("a", '"1"'), ("b", "2"), ("c", None), ("d", "4"), ("f", "6")]:
        log.add(name, etag)
    again = [("a", "1"), ("b", "20"), ("c", "3"), ("e", "5"), ("f", "6")]
    changes = await compare(log, listing(again))
    log.close()
    # a: the same ETag, quoted once; c: not read (reported already); f: unchanged
    assert changes.count == 3
    assert changes.named == [
        "b (modified since it was read)",
        "d (deleted since it was read)",
        "e (added since the listing)",
    ]
