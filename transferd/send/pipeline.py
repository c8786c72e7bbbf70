"""The send pipeline: read → chunk → hash → compress → seal → pack → upload → journal.

A chain of stages, each in a module of its own, each knowing only what it is handed:

- the **producer** (send/produce.py) reads the source's items in order and turns them into typed
  work (send/work.py): a directory or symlink listed, an entry reused unchanged, a batch of small
  files, a block of a stream, a stream read to its end or abandoned;
- the **sealing threads** (send/seal.py) cut, hash, compress and encrypt; before sealing a
  chunk they ask the **chunk index** (send/index.py), the one place that knows whether a chunk is
  already held by the host or on its way in this run;
- the **packers** (send/packer.py) put sealed blobs into packs in order, on the event loop, and
  ship full packs, ``uploads`` at a time;
- the **recorder** (send/recorder.py) writes acknowledged packs and read entries into the
  journal, in order, on a thread of its own.

Where each runs: the source lists and reads on its own threads; chunking and the whole-stream
BLAKE3 on a thread per block; chunk ids, the index, compression and sealing on ``workers``
threads; journal writes on one thread. The event loop only moves work between them and puts
blobs into packs: it never touches a byte of content except to join a pack, and never waits for
the journal.

Memory is bounded whatever the source's size: at most ``queue_blocks`` blocks are between the
reader and the packers, one pack is being filled and at most ``uploads`` packs are in flight.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from transferd.core.jobkey import JobKey
from transferd.send import tuning
from transferd.send.config import Counters, PipelineConfig
from transferd.send.index import ChunkIndex
from transferd.send.journal import Journal
from transferd.send.packer import Packer
from transferd.send.produce import REREADS, Producer
from transferd.send.recorder import Recorder
from transferd.send.seal import Sealer
from transferd.send.work import Work
from transferd.sources.base import Source
from transferd.stores.base import Store

log = logging.getLogger(__name__)


class Pipeline:
    """One run of a job's send pipeline; ``run(source)`` returns when every pack is acknowledged
    and every entry read is in the journal."""

    def __init__(
        self,
        job: str,
        job_key: JobKey,
        store: Store,
        journal: Journal,
        run_number: int,
        config: PipelineConfig,
        counters: Counters | None = None,
        rng: Callable[[int], bytes] = os.urandom,
        rereads: int = REREADS,
    ) -> None:
        self.job = job
        self.config = config
        self.counters = counters or Counters()
        self.failures: list[tuple[bytes, str]] = []
        tuning.tune_process()  # before the first worker thread exists
        self.index = ChunkIndex(journal)
        self._executor = ThreadPoolExecutor(config.workers, thread_name_prefix="seal")
        self._recorder = Recorder(journal, self.index, run_number)
        sealer = Sealer(job_key, self.index, config.level, rng)
        self._producer = Producer(journal, sealer, self._executor, self.counters, self._fail,
                                  rereads)  # fmt: skip
        self._packer = Packer(job, job_key, store, self._recorder, config, self.counters, rng)
        self._queues: tuple[asyncio.Queue[Work | None], ...] = ()
        self._running = False

    def _fail(self, path: bytes, message: str) -> None:
        log.warning("skipping %s: %s", path.decode("utf-8", "backslashreplace"), message)
        self.failures.append((path, message))
        self.counters.failures += 1

    async def run(self, source: Source) -> None:
        # Small files and other items: a few batches ahead (each up to 8 MiB, most far less);
        # blocks of large files: as many as the config says (PipelineConfig.queue_blocks).
        items: asyncio.Queue[Work | None] = asyncio.Queue(self.config.workers + 2)
        blocks: asyncio.Queue[Work | None] = asyncio.Queue(self.config.blocks_in_queue())
        self._queues = (items, blocks)
        self._running = True
        try:
            async with asyncio.TaskGroup() as tg:
                self._packer.start(tg)
                tg.create_task(self._producer.run(source, items, blocks))
                tg.create_task(self._pack(items, blocks))
        except BaseExceptionGroup as group:
            raise _first(group) from None
        finally:
            self._running = False
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._recorder.close()

    async def _pack(self, *queues: asyncio.Queue[Work | None]) -> None:
        """A packer per queue, filling the same packs; then the last pack, and the entries."""
        async with asyncio.TaskGroup() as packers:
            for queue in queues:
                packers.create_task(self._packer.take(queue))
        await self._packer.finish()
        await self._recorder.checkpoint()

    # --- control -------------------------------------------------------------------------------

    def pause(self) -> None:
        """Start no new read and ship no new pack; uploads in flight finish."""
        self._producer.running.clear()
        self._packer.hold()

    def resume(self) -> None:
        self._producer.running.set()
        self._packer.release()

    async def drain(self, deadline: float) -> bool:
        """What a stopping daemon calls before it cancels the run: no new read and no new pack,
        the uploads in flight finish (up to ``deadline`` seconds; the rest are cancelled, never
        acknowledged, and sent again by the next run), and the entries read so far are written
        to the journal, so that the next run reuses them instead of reading them again. True if
        every upload in flight finished in time."""
        self.pause()
        if not self._running:
            return True
        finished = True
        try:
            async with asyncio.timeout(deadline):  # not wait_for: stores/ratelimit.py
                await self._packer.idle()
        except TimeoutError:
            finished = False
            cancelled = self._packer.cancel_uploads()
            log.warning(
                "%d uploads still in flight after %.0f s: cancelled, they will be sent again",
                cancelled,
                deadline,
            )
        await self._recorder.checkpoint()
        return finished

    def queue_depth(self) -> int:
        """Blocks and batches read and waiting for the packers (the metrics show it)."""
        return sum(q.qsize() for q in self._queues)


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report from a failed run: the first that is not a cancellation."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]
