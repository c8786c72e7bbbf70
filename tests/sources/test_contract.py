"""The Source contract (sources/base.py), one suite run against every source: a directory, an
Azure Blob container in a real Azurite, and a database in a real PostgreSQL cluster, both
started by this module.

Each backend makes the same small copy job in its own terms (files, blobs, tables) and the suite
checks what the pipeline relies on: clean unique paths, ``batches()`` holding ``items()`` in
order, each stream read to its end giving its size and hash back from ``finish()``, an identity
without secrets, declared capabilities, and (where the backend can lose an item after listing
it) a failure confined to that item.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient, ContentSettings

from tests.postgres.cluster import Cluster, remove, start_cluster
from tests.sources.azure.azurite import ACCOUNT, KEY, Azurite, running_azurite
from transferd.core import chunking
from transferd.core.source_entry import SourceEntry
from transferd.errors import SourceError
from transferd.sources.azure.auth import AzureOptions
from transferd.sources.azure.source import AzureBlobSource
from transferd.sources.base import FailedItem, Item, MetaItem, Source
from transferd.sources.directory import DirectorySource
from transferd.sources.postgres.source import PgOptions, PostgresSource

FILES = {
    "a/small": b"s" * 1000,
    "a/big": bytes(range(256)) * 2400,  # 600 KiB: above the directory's INLINE_MAX
    "b/c/deep": b"deep\n",
    "empty": b"",
}
SECRET = "s3cret-in-the-url"  # noqa: S105 - a test password, checked never to be shown
_names = itertools.count(1)

Opener = Callable[[], Source]


@dataclass
class Made:
    open: Opener
    contents: dict[bytes, bytes | None]
    """Paths that hold content, and the bytes when the backend's test knows them."""


class Backend:
    kind: str

    def make(self, tmp: Path) -> Made:
        raise NotImplementedError

    def lose(self, tmp: Path, made: Made, path: bytes) -> None:
        """Make a listed item unreadable (only backends in LOSERS)."""
        raise NotImplementedError


class Directory(Backend):
    kind = "directory"

    def make(self, tmp: Path) -> Made:
        root = tmp / f"tree{next(_names)}"
        for name, data in FILES.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        (root / "link").symlink_to("a/small")
        return Made(lambda: DirectorySource(root), {k.encode(): v for k, v in FILES.items()})

    def lose(self, tmp: Path, made: Made, path: bytes) -> None:
        source = made.open()
        assert isinstance(source, DirectorySource)
        os.unlink(os.path.join(source.root, path))


class Azure(Backend):
    kind = "azure-blob"

    def __init__(self, server: Azurite, tmp: Path) -> None:
        self.server = server
        self.options = AzureOptions(credential_file=server.credential_file(tmp), attempts=2)

    def service(self) -> BlobServiceClient:
        """A client of its own for each use, closed after it (its sockets with it)."""
        return BlobServiceClient.from_connection_string(self.server.connection_string)

    def make(self, tmp: Path) -> Made:
        container = f"contract{next(_names)}"
        with self.service() as service:
            client = service.get_container_client(container)
            client.create_container()
            for name, data in FILES.items():
                md5 = bytearray(hashlib.md5(data, usedforsecurity=False).digest())
                client.upload_blob(name, data, content_settings=ContentSettings(content_md5=md5))
        url = f"az://{ACCOUNT}/{container}"
        contents: dict[bytes, bytes | None] = {k.encode(): v for k, v in FILES.items()}
        return Made(lambda: AzureBlobSource(url, self.options), contents)

    def lose(self, tmp: Path, made: Made, path: bytes) -> None:
        source = made.open()
        assert isinstance(source, AzureBlobSource)
        with self.service() as service:
            service.get_container_client(source.location.container).delete_blob(path.decode())


class Postgres(Backend):
    kind = "postgresql"

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def make(self, tmp: Path) -> Made:
        db = f"contract{next(_names)}"
        self.cluster.psql("postgres", f"CREATE DATABASE {db}")
        self.cluster.psql(db, "CREATE TABLE claims AS SELECT g AS id, md5(g::text) AS v "
                              "FROM generate_series(1, 3000) g; CREATE TABLE empty (id int); "
                              "CREATE SCHEMA care; CREATE TABLE care.stays (id int, d date); "
                              "INSERT INTO care.stays VALUES (1, '2026-01-02')")  # fmt: skip
        url = self.cluster.url(db, password=SECRET)
        contents: dict[bytes, bytes | None] = {
            b"tables/public/claims": None,
            b"tables/public/empty": b"",
            b"tables/care/stays": b"1\t2026-01-02\n",
            b"sequences.sql": None,
        }
        return Made(lambda: PostgresSource(url, PgOptions(jobs=2)), contents)


LOSERS = ("directory", "azure-blob")
"""Backends whose test can lose an item between listing and reading it."""


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with running_azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = start_cluster()
    try:
        yield c
    finally:
        remove(c)


@pytest.fixture(params=["directory", "azure-blob", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "directory":
        return Directory()
    if request.param == "azure-blob":
        return Azure(request.getfixturevalue("azurite"), tmp_path)
    return Postgres(request.getfixturevalue("cluster"))


@dataclass
class Read:
    path: bytes
    kind: str
    data: bytes | None
    """None for an item with no content."""
    entry: SourceEntry


async def read_all(source: Source) -> tuple[list[list[bytes]], list[Read]]:
    """Every item in order, each stream read to its end before the next list is asked for (what
    the pipeline does with a source whose streams are not independent); the lists' paths."""
    lists: list[list[bytes]] = []
    read: list[Read] = []
    try:
        async with contextlib.aclosing(source.batches()) as batches:
            async for batch in batches:
                lists.append([])
                for item in batch:
                    assert not isinstance(item, FailedItem), item
                    lists[-1].append(item.entry.path)
                    read.append(await _read(item))
    finally:
        await source.close()
    return lists, read


async def _read(item: Item) -> Read:
    assert not isinstance(item, FailedItem)
    if isinstance(item, MetaItem):
        return Read(item.entry.path, item.entry.kind, None, item.entry)
    hasher = chunking.content_hasher()
    blocks = [bytes(b) async for b in item.blocks()]
    data = b"".join(blocks)
    hasher.update(data)
    entry = await item.finish(len(data), hasher.hexdigest())
    return Read(item.entry.path, item.entry.kind, data, entry)


def run(coro: object) -> object:
    return asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def test_paths_are_relative_clean_and_each_appears_once(backend: Backend, tmp_path: Path) -> None:
    made = backend.make(tmp_path)
    _, read = run(read_all(made.open()))  # type: ignore[misc]
    paths = [r.path for r in read]
    assert len(paths) == len(set(paths))
    for path in paths:
        parts = path.split(b"/")
        assert not path.startswith(b"/")
        assert all(p not in (b"", b".", b"..") for p in parts), path


def test_batches_hold_the_items_of_items_in_the_same_order(
    backend: Backend, tmp_path: Path
) -> None:
    made = backend.make(tmp_path)
    lists, _ = run(read_all(made.open()))  # type: ignore[misc]

    async def one_by_one() -> list[bytes]:
        """Each item read before the next one is asked for, as the pipeline reads them."""
        source = made.open()
        try:
            return [(await _read(i)).path async for i in source.items()]
        finally:
            await source.close()

    assert [p for batch in lists for p in batch] == run(one_by_one())
    assert all(lists), "no empty list"


def test_each_stream_read_to_its_end_is_finished_with_its_size_and_hash(
    backend: Backend, tmp_path: Path
) -> None:
    made = backend.make(tmp_path)
    _, read = run(read_all(made.open()))  # type: ignore[misc]
    streams = {r.path: r for r in read if r.data is not None}
    assert set(made.contents) <= set(streams)
    for path, r in streams.items():
        assert r.data is not None
        assert r.entry.path == path
        assert r.entry.kind == r.kind
        assert r.entry.size == len(r.data)
        assert r.entry.blake3 == chunking.content_hasher().update(r.data).hexdigest()
        expected = made.contents.get(path)
        if expected is not None:
            assert r.data == expected, path


def test_the_identity_names_the_kind_and_never_a_secret(backend: Backend, tmp_path: Path) -> None:
    made = backend.make(tmp_path)
    source = made.open()
    run(read_all(source))
    identity = source.identity()
    assert identity["kind"] == source.kind == backend.kind
    assert all(isinstance(v, str | int) for v in identity.values())
    for secret in (SECRET, KEY):  # the database's password, Azurite's account key
        assert secret not in repr(identity)
        assert secret not in source.description


def test_the_capabilities_the_pipeline_uses_are_declared(backend: Backend, tmp_path: Path) -> None:
    source = backend.make(tmp_path).open()
    assert isinstance(source.independent_streams, bool)
    assert isinstance(source.kind, str)
    assert hasattr(source.batches(), "aclose"), "batches() can be closed early"
    run(source.close())


def test_independent_streams_are_read_after_the_listing_moved_on(
    backend: Backend, tmp_path: Path
) -> None:
    """What a source that declares them promises: its streams read once everything is listed,
    in any order, give the same bytes."""
    made = backend.make(tmp_path)
    source = made.open()
    if not source.independent_streams:
        run(source.close())
        return  # the pipeline reads such a source's streams in order (the test above)

    async def listed_then_read() -> dict[bytes, bytes]:
        try:
            items = [i async for i in source.items()]
            got = {}
            for item in reversed(items):
                r = await _read(item)
                if r.data is not None:
                    got[r.path] = r.data
            return got
        finally:
            await source.close()

    got = run(listed_then_read())
    assert got == {k: v for k, v in made.contents.items() if v is not None}


@pytest.mark.parametrize("backend", LOSERS, indirect=True)
def test_an_item_lost_after_listing_fails_alone(backend: Backend, tmp_path: Path) -> None:
    made = backend.make(tmp_path)
    source = made.open()

    async def main() -> tuple[list[bytes], list[str]]:
        ok, failed = [], []
        try:
            items = [i async for i in source.items()]
            backend.lose(tmp_path, made, b"a/big")
            for item in items:
                try:
                    r = await _read(item)
                except SourceError as e:
                    failed.append(e.message)
                else:
                    ok.append(r.path)
        finally:
            await source.close()
        return ok, failed

    ok, failed = run(main())  # type: ignore[misc]
    assert len(failed) == 1
    assert "a/big" in failed[0]
    assert {b"a/small", b"b/c/deep", b"empty"} <= set(ok)
