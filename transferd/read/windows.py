"""Which chunks a fetch may join into one ranged read of a pack (read/fetch.py coalesces them).

The reader knows the chunks it will open next; a fetch of one chunk may bring the others of the
same pack with it, as one range, if they are read soon enough that the pack-range cache keeps
them until then.
"""

from __future__ import annotations

from collections.abc import Iterable

from transferd.core.catalog import ChunkRef


def pack_spans(ref_lists: Iterable[list[ChunkRef]]) -> dict[int, list[tuple[int, int]]]:
    """Per pack, the (offset, end) of every chunk to be read from it, sorted: what a fetch may
    coalesce."""
    soon: dict[int, list[tuple[int, int]]] = {}
    for refs in ref_lists:
        for r in refs:
            soon.setdefault(r.pack_index, []).append((r.offset, r.offset + r.blob_len))
    for spans in soon.values():
        spans.sort()
    return soon


class ChunkWindows:
    """The chunks a fetch may join to the one asked for: those of the same pack among the next
    ``size`` bytes of chunks in reading order. A range never reaches chunks read much later,
    which the cache would have to keep (or drop, and fetch again): when packs do not follow
    the catalog's order (a pipeline that packs large files beside small ones listed before
    them), a whole segment's worth made a restore fetch 13% of its bytes twice."""

    def __init__(self, ref_lists: Iterable[list[ChunkRef]], size: int) -> None:
        self._spans: list[dict[int, list[tuple[int, int]]]] = []
        self._ends: list[int] = []
        window: list[ChunkRef] = []
        count = total = 0
        for refs in ref_lists:
            for ref in refs:
                window.append(ref)
                count += 1
                total += ref.blob_len
                if total >= size:
                    self._close(window, count)
                    window, total = [], 0
        if window:
            self._close(window, count)
        self._taken = 0
        self._current = 0

    def _close(self, window: list[ChunkRef], count: int) -> None:
        self._spans.append(pack_spans([window]))
        self._ends.append(count)

    def spans(self, pack: int) -> list[tuple[int, int]]:
        """For the next chunk in reading order: the spans of its window in its pack."""
        while self._taken >= self._ends[self._current]:
            self._current += 1
        self._taken += 1
        return self._spans[self._current].get(pack, [])
