"""Fetch sealed chunks from a job's packs: pack index → object name, ranged reads, a small cache.

A catalog names a chunk by (pack index, offset, length). The pack index is a position in the
object-list segments the manifest names; those are loaded one segment (65,536 packs, 2.6 MiB) at
a time, checked against the manifest's SHA-256, and only the few most recent kept, so a job of
any number of packs is read in bounded memory.

Reading a chunk fetches a *range* of its pack, not the whole pack nor only the chunk: the caller
says which other chunks of the same pack come soon (those of the next half-cache of chunks in
reading order), and the range grows to cover them, on either side, while the gap between two is
at most ``GAP`` and the range at most ``MAX_RANGE``, never into a range already held. For a job
written in one run the catalog mostly follows the pack order, so one request fetches a whole
pack's worth of consecutive chunks; for a job whose later runs reuse chunks scattered over old
packs, a range never drags in more than ``GAP`` bytes of chunks nobody asked for. Consecutive
small files share packs, so fetched ranges are kept in an LRU cache
bounded by bytes; a fetch in flight is shared by every chunk it covers.

When the chunks to be read from a pack reach from its first blob to its last (each end within
``GAP``), the whole pack is fetched in one request instead, and checked as a verifier checks it
(SPEC 13.6, 13.7): its size and SHA-256 against the object list, its magic, version and trailer.
A pack that fails is recorded in ``damaged``, and its blobs are still served: each is
authenticated, so a damaged blob fails as that chunk (naming its file), and the reader fails at
the end when the damage was elsewhere (a cut trailer, a flipped header byte), which no blob's tag
can show. Either way the read does not end in success.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from transferd.core import objectlist, packs
from transferd.core.catalog import ChunkRef
from transferd.core.constants import OBJECT_LIST_ENTRY_SIZE, PACK_TARGET
from transferd.core.objectlist import ObjectRef
from transferd.core.packs import PACK_PREFIX_SIZE
from transferd.errors import FormatError, IntegrityError
from transferd.stores.base import Store

_LIST_HEADER = 9
"""Bytes before the first entry of an object-list segment: magic, version, count."""

GAP = 1024 * 1024
"""Bytes of unrequested chunks a range may span to join two requested ones: a second request
costs a round trip (tens of ms to a remote host), which 1 MiB at 100 MB/s roughly equals."""
MAX_RANGE = PACK_TARGET
"""Largest range fetched at once: a whole pack of the usual size."""
CACHE_BYTES = 64 * 1024 * 1024
"""Fetched ranges kept for chunks still to come: four packs."""
WHOLE_PACK_MAX = 22 * 1024 * 1024
"""Largest pack fetched whole (SPEC 13.7): every pack a sender writes with the default target
(at most 5 + 16 MiB + 4 MiB + 41 + 655404 + 4 bytes, SPEC 8) fits."""
LISTS_KEPT = 2
"""Object-list segments kept decoded (6.5 MiB each): the current one and its neighbour."""


async def fetch_checked(store: Store, job: str, ref: ObjectRef, what: str) -> bytes:
    """An object the manifest names, refused unless its size and SHA-256 are the manifest's."""
    data = await store.get_object(job, ref.name)
    if len(data) != ref.size:
        raise IntegrityError(
            f"{what} {ref.name} has {len(data)} bytes, the manifest says {ref.size}"
        )
    digest = await asyncio.to_thread(lambda: hashlib.sha256(data).digest())
    if digest != ref.sha256:
        raise IntegrityError(f"{what} {ref.name} does not hash to its name: it was altered")
    return data


class PackIndex:
    """Pack index → (object name, size), from the object-list segments, loaded lazily."""

    def __init__(self, store: Store, job: str, lists: Sequence[ObjectRef]) -> None:
        self._store = store
        self._job = job
        self._lists = list(lists)
        self._starts: list[int] = []
        total = 0
        for ref in self._lists:
            count, rest = divmod(ref.size - _LIST_HEADER, OBJECT_LIST_ENTRY_SIZE)
            if ref.size < _LIST_HEADER or rest:
                raise FormatError(f"object list {ref.name} has an impossible size {ref.size}")
            self._starts.append(total)
            total += count
        self.count = total
        """Packs the job holds: the sum of the segments' entry counts."""
        self._loaded: OrderedDict[int, asyncio.Future[list[ObjectRef]]] = OrderedDict()

    async def pack(self, index: int) -> ObjectRef:
        packs.check_pack_index(index, self.count)
        segment = bisect.bisect_right(self._starts, index) - 1
        refs = await self._segment(segment)
        return refs[index - self._starts[segment]]

    async def _segment(self, n: int) -> list[ObjectRef]:
        fut = self._loaded.get(n)
        if fut is None:
            fut = asyncio.ensure_future(self._load(n))
            self._loaded[n] = fut
            while len(self._loaded) > LISTS_KEPT:
                self._loaded.popitem(last=False)
        else:
            self._loaded.move_to_end(n)
        return await asyncio.shield(fut)

    async def _load(self, n: int) -> list[ObjectRef]:
        ref = self._lists[n]
        data = await fetch_checked(self._store, self._job, ref, "object list")
        refs = objectlist.decode_segment(data)
        expected = (ref.size - _LIST_HEADER) // OBJECT_LIST_ENTRY_SIZE
        if len(refs) != expected:  # pragma: no cover - decode_segment checks count against size
            raise FormatError(f"object list {ref.name} holds {len(refs)} entries")
        return refs


@dataclass(slots=True)
class _Range:
    pack: int
    start: int
    end: int
    data: asyncio.Future[bytes]


class PackReader:
    """Sealed blobs by catalog reference, fetched by coalesced ranges and cached by bytes."""

    def __init__(
        self, store: Store, job: str, index: PackIndex, cache_bytes: int = CACHE_BYTES
    ) -> None:
        self._store = store
        self._job = job
        self._index = index
        self._capacity = cache_bytes
        self.window = cache_bytes // 2
        """Bytes of chunks, in reading order, that one fetch may reach ahead to (half the
        cache: what it joins is still cached when it is read)."""
        self._ranges: dict[int, list[_Range]] = {}
        self._lru: OrderedDict[int, _Range] = OrderedDict()
        self._held = 0
        self.bytes_fetched = 0
        self.requests = 0
        self.damaged: dict[str, str] = {}
        """Packs read whole that failed the checks of SPEC 13.6: name -> what is wrong."""
        self._hashing: list[asyncio.Task[None]] = []
        """SHA-256 of packs read whole, running beside the blobs served from them."""

    async def blob(self, ref: ChunkRef, soon: Sequence[tuple[int, int]] = ()) -> memoryview:
        """The sealed blob ``ref`` names. ``soon``: (offset, end) of chunks of the same pack
        the caller will ask for next, sorted by offset; the fetched range may cover them."""
        end = ref.offset + ref.blob_len
        for rng in self._ranges.get(ref.pack_index, ()):
            if rng.start <= ref.offset and end <= rng.end:
                self._lru.move_to_end(id(rng))
                data = await asyncio.shield(rng.data)
                return memoryview(data)[ref.offset - rng.start : end - rng.start]
        held = self._ranges.get(ref.pack_index, ())
        start, stop = plan_range(ref.offset, end, soon, [(r.start, r.end) for r in held])
        rng = _Range(ref.pack_index, start, stop, _new_future())
        self._add(rng)
        try:
            pack = await self._index.pack(ref.pack_index)
            try:  # this chunk and those it joins: all lie among the blobs
                packs.check_blob_location(ref.offset, ref.blob_len, pack.size)
                packs.check_blob_location(rng.start, rng.end - rng.start, pack.size)
            except FormatError as e:
                raise FormatError(
                    f"chunk {ref.chunk_id.hex()[:16]} in pack {pack.name}: {e.message}"
                ) from None
            if not held and reaches_whole_pack(pack.size, [*soon, (ref.offset, end)]):
                self._regrow(rng, 0, pack.size)
                data = await self._whole_pack(pack)
                self._regrow(rng, 0, len(data))
            else:
                data = await self._store.get_object(
                    self._job, pack.name, rng.start, rng.end - rng.start
                )
            if len(data) != rng.end - rng.start:
                raise IntegrityError(
                    f"pack {pack.name} is shorter than the object list says ({pack.size} bytes)"
                )
        except asyncio.CancelledError:
            self._drop(rng)
            rng.data.cancel()
            raise
        except Exception as exc:
            self._drop(rng)
            rng.data.set_exception(exc)
            rng.data.exception()  # marked retrieved: waiters re-raise it, asyncio warns of none
            raise
        self.bytes_fetched += len(data)
        self.requests += 1
        rng.data.set_result(data)
        return memoryview(data)[ref.offset - rng.start : end - rng.start]

    async def _whole_pack(self, pack: ObjectRef) -> bytes:
        """The whole pack, checked as a verifier checks it (SPEC 13.6); a failure is recorded in
        ``damaged`` (its blobs, each authenticated, are still served)."""
        packs.check_pack_size(pack.size)
        data = await self._store.get_object(self._job, pack.name)
        if len(data) != pack.size:
            self.damaged[pack.name] = (
                f"has {len(data)} bytes, its object list says {pack.size}: it was cut short or "
                "extended"
            )
            return data[: pack.size]  # the blobs lie before the listed end
        try:  # a sender's own fault, under a valid name: the checks of a verifier all the same
            packs.check_prefix(data)
            packs.header_length(data, len(data))
        except FormatError as e:
            self.damaged[pack.name] = e.message
        # hashed beside the work on its blobs, not before it: off the restore's critical path
        self._hashing.append(asyncio.create_task(self._hash(pack, data)))
        return data

    async def _hash(self, pack: ObjectRef, data: bytes) -> None:
        digest = await asyncio.to_thread(lambda: hashlib.sha256(data).digest())
        if digest != pack.sha256:
            # reported before a bad magic or trailer found first: SPEC 13.6 checks the name first
            self.damaged[pack.name] = "does not hash to its name in the object list"

    async def check_damage(self) -> None:
        """IntegrityError naming the packs read whole that failed their checks, if any; waits
        for the hashes still running."""
        hashing, self._hashing = self._hashing, []
        await asyncio.gather(*hashing)
        if self.damaged:
            name, what = next(iter(self.damaged.items()))
            more = f" (and {len(self.damaged) - 1} other packs)" if len(self.damaged) > 1 else ""
            raise IntegrityError(
                f"pack {name} {what}{more}: the copy is damaged outside the chunks read, which "
                "all opened and were checked",
                hint="transferd verify reports every damaged object of the job",
            )

    async def close(self) -> None:
        """Stop the hashes still running (a read that ends early does not wait for them)."""
        for task in self._hashing:
            task.cancel()
        await asyncio.gather(*self._hashing, return_exceptions=True)
        self._hashing = []

    def _regrow(self, rng: _Range, start: int, end: int) -> None:
        """Widen a range just added (still the newest in the cache) to [start, end)."""
        self._held += (end - start) - (rng.end - rng.start)
        rng.start, rng.end = start, end

    def _add(self, rng: _Range) -> None:
        self._ranges.setdefault(rng.pack, []).append(rng)
        self._lru[id(rng)] = rng
        self._held += rng.end - rng.start
        while self._held > self._capacity and len(self._lru) > 1:
            _, old = self._lru.popitem(last=False)
            self._forget(old)

    def _drop(self, rng: _Range) -> None:
        if self._lru.pop(id(rng), None) is not None:
            self._forget(rng)

    def _forget(self, rng: _Range) -> None:
        """Evict: chunks already waiting on the range keep it alive until they have their bytes."""
        self._held -= rng.end - rng.start
        ranges = self._ranges[rng.pack]
        ranges.remove(rng)
        if not ranges:
            del self._ranges[rng.pack]


def plan_range(
    start: int, end: int, soon: Sequence[tuple[int, int]], held: Sequence[tuple[int, int]] = ()
) -> tuple[int, int]:
    """Grow [start, end) over the chunks in ``soon`` on either side of it, while the gap between
    two is at most GAP and the range at most MAX_RANGE, and never into a range ``held`` already
    (cached or being fetched). Backwards too: when packs do not follow the reading order, the
    first chunk asked of a pack may lie in its middle, and the chunks before it, asked next,
    would otherwise be fetched again with the rest of the range."""

    def taken(lo: int, hi: int) -> bool:
        return any(a < hi and lo < b for a, b in held)

    i = bisect.bisect_left(soon, (start, 0))
    for offset, stop in soon[i:]:
        if offset - end > GAP or stop - start > MAX_RANGE or taken(end, max(end, stop)):
            break
        end = max(end, stop)
    for offset, stop in reversed(soon[:i]):
        if start - stop > GAP or end - offset > MAX_RANGE or taken(min(start, offset), start):
            break
        start = min(start, offset)
    return start, end


def reaches_whole_pack(pack_size: int, spans: Sequence[tuple[int, int]]) -> bool:
    """True when the (offset, end) spans of the chunks to be read from a pack reach from its
    first blob to its last, each end and every gap between them within GAP: then the whole pack
    costs at most 2 GAP more than its chunks, and is fetched and checked whole (SPEC 13.7)."""
    if not spans or pack_size > WHOLE_PACK_MAX:
        return False
    ordered = sorted(spans)
    if ordered[0][0] - PACK_PREFIX_SIZE > GAP:
        return False
    end = ordered[0][1]
    for offset, stop in ordered[1:]:
        if offset - end > GAP:
            return False
        end = max(end, stop)
    return pack_size - end <= GAP


def _new_future() -> asyncio.Future[bytes]:
    return asyncio.get_running_loop().create_future()
