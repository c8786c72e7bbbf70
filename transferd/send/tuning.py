"""Process-wide settings the send pipeline runs best with: how malloc serves its buffers, and
the GIL's time slice.

Each is measured on the benchmark's data (perf/README.md, "Where the time goes"):

- **One malloc arena.** glibc gives each thread that allocates under contention an arena of its
  own, up to eight per core, and returns an arena's free memory to the system only from its top.
  The pipeline's threads allocate buffers of 0.1 to 16 MiB (blocks read, compressed chunks,
  packs) that other threads free, so the arenas fragment: end to end the sender peaked at
  361 MiB, and at 275 MiB with one arena, for the same CPU time. The one lock is taken a few
  thousand times a second, not millions (Python's small objects have an allocator of their own).
  Set before the pipeline starts its threads, it limits the arenas they create.
- **Packs from the heap, like everything else.** glibc serves a request from ``mmap`` only above
  a threshold that it raises to the size of every mapped buffer freed. Packs were first mapped
  each (a fixed 12 MiB threshold): with glibc's default trimming, packs from the heap fragmented
  it and the sender peaked at 293 MiB instead of 249 on 1 GB of large files. Once free heap was
  kept (next item), a mapped pack only cost 4,096 page faults (the join) and an unmap: with the
  threshold at 32 MiB (above any pack of the default target), 1 GiB end to end took 4.40 and
  4.57 s instead of 4.69 and 4.61 (medians of two sets of 4 alternating pairs), sender CPU 6.05
  and 6.16 s instead of 6.43 and 6.21, for the same peak (201-206 MiB against 198-213); 10 GiB
  took 27.3 s instead of 28.9, system CPU 2.8 s instead of 3.9, peak 203 MiB instead of 210.
- **Free heap kept, not trimmed.** Setting the mmap threshold also fixes glibc's trim threshold
  at 128 KiB: each 4 MiB block freed at the top of the heap was given back to the system and the
  next one faulted in afresh, 1,024 page faults a block. Keeping up to 256 MiB of free heap (never
  more than the peak it came from) took the 1 GiB run in process from 220,000 to 130,000 page
  faults (the rest were the packs' own mappings, previous item) and system CPU from 1.0 to
  0.8 s, for a peak RSS within 5 MiB of before.
- **A shorter GIL time slice.** A thread that comes back from a system call or a C function
  waits for the GIL until the holder lets it go, at most ``sys.getswitchinterval()`` (5 ms by
  default). The listing thread makes six system calls per small file and the event loop many
  short Python steps, so each waited behind the other. With 0.2 ms instead of 5 ms (medians of
  4 or 5 runs in process): 20,000 small files in 1.36 s instead of 1.55 s, the 1 GiB dataset in
  3.42 s instead of 4.07 s, for the same CPU time.

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
