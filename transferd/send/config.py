"""What a send pipeline is configured with, and what it counts as it runs.

``PipelineConfig`` is the pipeline's own part of a send's options (send/compose.py builds it from
``SendOptions``); ``Counters`` is what the progress line, ``--json`` summary and the daemon's
metrics read while it runs. Measurements behind each default are in perf/README.md.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from transferd.core.constants import PACK_TARGET
from transferd.util.rates import settled


def default_workers() -> int:
    """One sealing thread per core: zstd, BLAKE3 and libsodium release the GIL."""
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class PipelineConfig:
    level: int = 1
    """zstd level. On CSV exports level 1 runs about 1.5x faster than 3 for a ratio within 1%:
    the pipeline is compression-bound, so this is the default (perf/README.md, "The zstd
    level")."""
    workers: int = field(default_factory=default_workers)
    uploads: int = 4
    """Packs in flight to the store: hides the round trip; bounds what a crash resends."""
    pack_target: int = PACK_TARGET
    """A pack is closed once its blobs reach this many bytes (``--pack-size``)."""
    queue_blocks: int = 0
    """Blocks between reader and packer; 0 means one per worker plus 6. Each queued block is
    memory (4 MiB), and the queue is what lets the workers seal on while every upload slot waits
    for the host's fsync: about a pack's worth of source beyond one block per worker
    (perf/README.md, item 8)."""

    def blocks_in_queue(self) -> int:
        return self.queue_blocks or self.workers + 6


@dataclass
class Counters:
    """What the pipeline did so far: the progress display and the metrics read these."""

    bytes_read: int = 0
    bytes_new: int = 0
    """Plaintext bytes of chunks sealed and placed into packs in this run."""
    bytes_sealed: int = 0
    bytes_sent: int = 0
    """Pack bytes the store acknowledged in this run."""
    bytes_reused: int = 0
    """Bytes of unchanged entries, reused from the journal without being read."""
    bytes_deduplicated: int = 0
    """Bytes read whose chunks the host already holds (or this run already packed): not sent."""
    entries: int = 0
    entries_reused: int = 0
    chunks_new: int = 0
    chunks_known: int = 0
    packs_sent: int = 0
    failures: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def settled(self) -> int:
        """Source bytes of this run the store holds (util/rates.py ``settled``): what progress,
        rates and ETAs count, so none of them runs ahead of the acknowledgements."""
        return settled(
            reused=self.bytes_reused,
            deduplicated=self.bytes_deduplicated,
            new=self.bytes_new,
            sealed=self.bytes_sealed,
            sent=self.bytes_sent,
        )
