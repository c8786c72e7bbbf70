"""Process-wide settings the send pipeline runs best with: how malloc serves its buffers, and
the GIL's time slice. Each was measured on the benchmark's data before it was kept; the figures
are in perf/README.md ("Process tuning").

- **One malloc arena.** glibc gives each thread that allocates under contention an arena of its
  own, up to eight per core, and returns an arena's free memory to the system only from its top.
  The pipeline's threads allocate buffers of 0.1 to 16 MiB (blocks read, compressed chunks,
  packs) that other threads free, so the arenas fragment and the sender's peak RSS grows by a
  third. The one lock is taken a few thousand times a second, not millions (Python's small
  objects have an allocator of their own). Set before the pipeline starts its threads, it
  limits the arenas they create.
- **Packs from the heap, like everything else.** glibc serves a request from ``mmap`` only above
  a threshold that it raises to the size of every mapped buffer freed. A mapped pack costs 4,096
  page faults (the join) and an unmap each time; with free heap kept (next item) a pack from the
  heap costs neither, so the threshold is fixed above any pack of the default target.
- **Free heap kept, not trimmed.** Setting the mmap threshold also fixes glibc's trim threshold
  at 128 KiB: each 4 MiB block freed at the top of the heap was given back to the system and the
  next one faulted in afresh, 1,024 page faults a block. Up to 256 MiB of free heap is kept
  (never more than the peak it came from).
- **A shorter GIL time slice.** A thread that comes back from a system call or a C function
  waits for the GIL until the holder lets it go, at most ``sys.getswitchinterval()`` (5 ms by
  default). The listing thread makes six system calls per small file and the event loop many
  short Python steps, so each waited behind the other; 0.2 ms lets them take turns.

None changes a byte of output. The malloc settings are skipped where they do not apply.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

SWITCH_INTERVAL = 0.0002
"""Seconds; CPython's default is 0.005."""
MMAP_THRESHOLD = 32 << 20
"""Bytes from which malloc maps a buffer of its own: fixed rather than glibc's sliding one, and
above the packs of the default target (16 MiB and a chunk), which come from the kept heap."""
TRIM_THRESHOLD = 256 << 20
"""Free bytes at the top of the heap that malloc keeps for the next blocks."""
_M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_done = False


def tune_process() -> None:
    """Apply these settings, once per process (the daemon runs many pipelines)."""
    global _done
    if _done:
        return
    _done = True
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
    _mallopt(_M_ARENA_MAX, 1)
    _mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    _mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)


def _mallopt(param: int, value: int) -> None:
    if not sys.platform.startswith("linux"):  # pragma: no cover - transferd runs on Linux
        return
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # pragma: no cover - musl and others: nothing to tune
        log.debug("no mallopt in this libc: malloc left as it is")
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(param, value) != 1:  # pragma: no cover - glibc accepts both
        log.debug("mallopt(%d, %d) refused: malloc left as it is", param, value)
