"""DirectorySource hands out large files ahead of the small files listed before them, once each."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from transferd.sources import directory
from transferd.sources.base import FailedItem, InlineItem, Item, MetaItem
from transferd.sources.directory import DirectorySource, FileItem


def _items(root: Path) -> list[list[Item]]:
    async def collect() -> list[list[Item]]:
        return [list(batch) async for batch in DirectorySource(root).batches()]

    return asyncio.run(collect())


def test_a_large_file_comes_before_the_small_files_listed_ahead_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(directory, "BATCH_ITEMS", 4)
    (tmp_path / "a").mkdir()
    for i in range(20):
        (tmp_path / "a" / f"{i:02}").write_bytes(b"x" * 10)
    (tmp_path / "b.bin").write_bytes(b"y" * (directory.INLINE_MAX + 1))
    batches = _items(tmp_path)
    first = batches[0]
    assert isinstance(first[0], FileItem)
    assert first[0].entry.path == b"b.bin"
    paths = [i.entry.path for b in batches for i in b if not isinstance(i, FailedItem)]
    assert sorted(paths) == sorted([b"a", b"b.bin"] + [f"a/{i:02}".encode() for i in range(20)])
    rest = [i for b in batches for i in b if isinstance(i, MetaItem | InlineItem)]
    assert isinstance(rest[0], MetaItem)
    assert all(isinstance(i, InlineItem) for i in rest[1:])
    assert [i.entry.path for i in rest] == sorted(i.entry.path for i in rest), "walk order"


def test_the_look_ahead_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(directory, "LOOKAHEAD", 5)
    monkeypatch.setattr(directory, "BATCH_ITEMS", 2)
    for i in range(12):
        (tmp_path / f"s{i:02}").write_bytes(b"x")
    (tmp_path / "z.bin").write_bytes(b"y" * (directory.INLINE_MAX + 1))
    batches = _items(tmp_path)
    where = next(n for n, b in enumerate(batches) if any(isinstance(i, FileItem) for i in b))
    assert where > 0, "twelve small files listed first, five at a time: not in the first batch"
    assert sum(len(b) for b in batches) == 13
