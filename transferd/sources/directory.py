"""A directory tree of exported files, read as a source.

Regular files, directories and symlinks (recorded as links, never followed); files of any size,
sparse or not; names that are not UTF-8 (paths are bytes throughout). Other kinds (sockets, FIFOs,
devices) are skipped with a warning. Files up to INLINE_MAX are read whole while listing, in
batches on one thread, so 20,000 small files cost 20,000 reads and not 20,000 event-loop hops.

Items come in walk order (depth first, bytewise name order), except that the listing runs up to
LOOKAHEAD entries ahead of the small files being read, and a large file met on the way is handed
out at once: the pipeline reads and seals large files on a lane of their own, so the small files,
whose cost is Python on one core, overlap with the large files, whose cost is zstd on every core.
The order is still stable (the same tree gives the same order), and nothing downstream depends
on walk order: the catalog is written sorted by path from the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from transferd.core.source_entry import SourceEntry
from transferd.errors import SourceChangedError, SourceError
from transferd.sources.base import FailedItem, InlineItem, Item, MetaItem
from transferd.util.pathfilter import PathFilter

log = logging.getLogger(__name__)

INLINE_MAX = 256 * 1024
"""Files up to this size are read while listing (one read each, no separate stream)."""
BLOCK_SIZE = 4 * 1024 * 1024
"""Read size of large files: big enough that a thread hop per block costs nothing (250 per GB),
small enough that the blocks queued between reader and packer stay few MiB (8 MiB blocks cost
the sender about 70 MiB more peak RSS end to end: perf/README.md, item 8)."""
BATCH_ITEMS = 512
BATCH_BYTES = 8 * 1024 * 1024
"""A listing batch ends at this many items or inline bytes: bounds the memory of one batch."""
LOOKAHEAD = 32768
"""Entries listed (path and lstat, ~300 bytes each: 10 MiB at most) but not yet read: how far
ahead of the small files the listing looks for large files to start early. With 20,000 small
files before the large ones (perf/'s dataset) the large files start about a batch after the
small ones instead of after all of them."""
LIST_STEP = 4096
"""Entries listed per batch handed out, at most: the first batch comes out after 4,096 lstat
calls (about 20 ms), not after the whole look-ahead is listed."""
_REREADS = 3
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def fingerprint(st: os.stat_result) -> str:
    """Size, mtime, ctime, inode and mode: any write or replacement changes one of them."""
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_mode}"


class FileItem:
    """A large regular file, read in blocks on worker threads."""

    def __init__(self, root: bytes, entry: SourceEntry) -> None:
        self.entry = entry
        self._full = os.path.join(root, entry.path)

    async def blocks(self) -> AsyncIterator[bytes | memoryview]:
        try:
            fd = await asyncio.to_thread(os.open, self._full, _OPEN_FLAGS)
        except OSError as e:
            raise SourceError(f"cannot read {_show(self.entry.path)}: {e.strerror}") from None
        try:
            while True:
                block = await asyncio.to_thread(os.read, fd, BLOCK_SIZE)
                if not block:
                    break
                yield block
        except OSError as e:
            raise SourceError(f"cannot read {_show(self.entry.path)}: {e.strerror}") from None
        finally:
            os.close(fd)

    async def finish(self, size: int, blake3: str) -> SourceEntry:
        try:
            st = await asyncio.to_thread(os.lstat, self._full)
        except OSError as err:
            raise SourceError(f"cannot stat {_show(self.entry.path)}: {err.strerror}") from None
        e = self.entry
        if fingerprint(st) != e.fingerprint or size != st.st_size:
            raise SourceChangedError(f"{_show(e.path)} changed while it was read")
        return SourceEntry(
            e.path, e.kind, e.mode, e.mtime_ns, size, None, blake3, None, e.fingerprint
        )


class DirectorySource:
    kind = "directory"
    independent_streams = True
    """A FileItem opens its own file: it can be read while the listing goes on (the pipeline
    reads large files on a lane of their own, beside the small files)."""

    def __init__(
        self,
        root: str | Path,
        select: PathFilter | None = None,
        on_left_out: Callable[[bytes, os.stat_result], None] | None = None,
    ) -> None:
        """``select``: the filter rules (``send --exclude/--include``); what they leave out is
        neither listed nor read, a directory left out is not even walked, and each is passed to
        ``on_left_out`` (``send --dry-run`` lists them), from the listing thread."""
        self.root = os.fsencode(os.path.abspath(root))
        self.select = select if select is not None and select.active else None
        self._on_left_out = on_left_out
        self.description = os.fsdecode(self.root)
        try:
            st = os.stat(self.root)
        except OSError as e:
            raise SourceError(
                f"cannot read source {self.description}: {e.strerror}", path=self.description
            ) from None
        if not stat.S_ISDIR(st.st_mode):
            raise SourceError(
                f"source {self.description} is not a directory", path=self.description
            )
        self._walk_failures: list[FailedItem] = []
        """Failures of the listing thread's walk, handed on with the next batch."""

    def identity(self) -> dict[str, Any]:
        ident: dict[str, Any] = {
            "kind": self.kind, "root": self.description, "host": socket.gethostname()
        }  # fmt: skip
        if self.select is not None:  # what was left out, for verify --against (SPEC §10.2)
            ident["selection"] = self.select.selection()
        return ident

    async def size_hint(self) -> int | None:
        return await asyncio.to_thread(self._total_size)

    def _total_size(self) -> int:
        total = 0
        for _rel, st in self._walk(b"", report=False):
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
        return total

    async def items(self) -> AsyncIterator[Item]:
        async with contextlib.aclosing(self.batches()) as batches:
            async for batch in batches:
                for item in batch:
                    yield item

    async def batches(self) -> AsyncGenerator[Sequence[Item], None]:
        """The items in lists of up to BATCH_ITEMS: the pipeline takes a list per event-loop
        step rather than an item (20,000 small files: 40 steps, not 20,000)."""
        walker = self._batches()
        ahead = asyncio.ensure_future(asyncio.to_thread(next, walker, None))
        try:
            while True:
                batch = await ahead
                if batch is None:
                    return
                # The next batch is listed and read while this one is consumed: with 20,000
                # small files, listing and packing in turn left each waiting on the other.
                ahead = asyncio.ensure_future(asyncio.to_thread(next, walker, None))
                yield batch
        finally:
            if ahead.done():
                if not ahead.cancelled():
                    ahead.exception()  # retrieved: an early stop is not an unhandled error
            else:
                ahead.cancel()  # its thread finishes the batch it is reading; nobody reads it

    async def close(self) -> None:
        pass

    # --- the listing thread ---------------------------------------------------------------

    def _batches(self) -> Iterator[list[Item]]:
        """Batches of items: large files as soon as listed, the rest in walk order."""
        walk = self._walk(b"")
        listed: deque[tuple[bytes, os.stat_result]] = deque()
        walked = False
        while True:
            batch: list[Item] = []
            step = 0
            while not walked and len(listed) < LOOKAHEAD and step < LIST_STEP:
                nxt = next(walk, None)
                if nxt is None:
                    walked = True
                    break
                step += 1
                st = nxt[1]
                if stat.S_ISREG(st.st_mode) and st.st_size > INLINE_MAX:
                    item = self._item(*nxt)  # a FileItem: handed out ahead of its place
                    if item is not None:
                        batch.append(item)
                else:
                    listed.append(nxt)
            size = 0
            while listed and len(batch) < BATCH_ITEMS and size < BATCH_BYTES:
                item = self._item(*listed.popleft())
                if item is None:
                    continue
                batch.append(item)
                if isinstance(item, InlineItem):
                    size += len(item.data)
            batch += self._walk_failures
            self._walk_failures = []
            if batch:
                yield batch
            elif walked and not listed:
                return

    def _walk(self, rel: bytes, report: bool = True) -> Iterator[tuple[bytes, os.stat_result]]:
        """(relative path, lstat) of everything below ``rel``, depth first, bytewise name order."""
        full = os.path.join(self.root, rel) if rel else self.root
        try:
            with os.scandir(full) as it:
                names = sorted(e.name for e in it)
        except OSError as e:
            self._walk_failures.append(FailedItem(rel or b".", f"cannot list: {e.strerror}"))
            return
        for name in names:
            child = rel + b"/" + name if rel else name
            try:
                st = os.lstat(os.path.join(self.root, child))
            except OSError as e:
                self._walk_failures.append(FailedItem(child, f"cannot stat: {e.strerror}"))
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if self.select is not None and not self.select.includes(child, is_dir=is_dir):
                if report and self._on_left_out is not None:
                    self._on_left_out(child, st)
                continue
            yield child, st
            if is_dir:
                yield from self._walk(child, report)

    def _item(self, rel: bytes, st: os.stat_result) -> Item | None:
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            return MetaItem(SourceEntry(rel, "dir", mode, st.st_mtime_ns))
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(os.path.join(self.root, rel))
            except OSError as e:
                return FailedItem(rel, f"cannot read link: {e.strerror}")
            return MetaItem(SourceEntry(rel, "symlink", None, st.st_mtime_ns, target=target))
        if not stat.S_ISREG(st.st_mode):
            log.warning("skipping %s: not a regular file, directory or symlink", _show(rel))
            return None
        entry = SourceEntry(
            rel, "file", mode, st.st_mtime_ns, st.st_size, fingerprint=fingerprint(st)
        )
        if st.st_size > INLINE_MAX:
            return FileItem(self.root, entry)
        return self._read_small(rel, entry)

    def _read_small(self, rel: bytes, entry: SourceEntry) -> Item:
        full = os.path.join(self.root, rel)
        for _ in range(_REREADS):
            try:
                fd = os.open(full, _OPEN_FLAGS)
                try:
                    # One read of one byte more than the size listed: a regular file gives less
                    # than asked only at its end, and a file that grew, shrank or was cut short
                    # by a signal fails the checks below and is read again. A second read to
                    # see the end cost a system call, and a wait for the GIL, per small file.
                    data = os.read(fd, (entry.size or 0) + 1)
                    st = os.fstat(fd)
                finally:
                    os.close(fd)
            except OSError as e:
                return FailedItem(rel, f"cannot read: {e.strerror}")
            if fingerprint(st) == entry.fingerprint and len(data) == st.st_size:
                return InlineItem(entry, data)
            entry = SourceEntry(rel, "file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_size,
                          fingerprint=fingerprint(st))  # fmt: skip
        return FailedItem(rel, f"changed {_REREADS} times while being read")


def _show(path: bytes) -> str:
    """A path for messages: undecodable bytes escaped, never raising."""
    return path.decode("utf-8", "backslashreplace")
