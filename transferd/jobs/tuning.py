"""Process-wide settings the send pipeline runs best with: malloc arenas and the GIL's time slice.

Both are measured on the benchmark's data (perf/README.md, "Where the time goes"):

- **One malloc arena.** glibc gives each thread that allocates under contention an arena of its
  own, up to eight per core, and returns an arena's free memory to the system only from its top.
  The pipeline's threads each allocate and free many buffers of 0.1 to 16 MiB (blocks read,
  compressed chunks, packs), freed by other threads than the one that allocated them, so the
  arenas fragment: in process, 293 MiB peak RSS for 123 MiB of Python allocations at their
  peak; end to end the sender peaked at 361 MiB, and at 275 MiB with one arena, for the same CPU
  time. The one lock is taken a few thousand times a second, not millions (Python's small
  objects have an allocator of their own). Called before the
  pipeline starts its threads, it limits the arenas they create; those that exist stay.
- **A shorter GIL time slice.** A thread that comes back from a system call or a C function
  waits for the GIL until the holder lets it go, at most ``sys.getswitchinterval()`` (5 ms by
  default). The listing thread makes six system calls per small file, and the event loop many
  short Python steps, so each waited behind the other: 20,000 small files took 1.66 s in process
  with 5 ms, 1.33 s with 0.2 ms. Big files, whose threads spend milliseconds inside zstd and
  libsodium between two GIL acquisitions, are unaffected either way.

Neither changes a byte of output. Both are skipped where they do not apply (another libc).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

SWITCH_INTERVAL = 0.0002
"""Seconds; CPython's default is 0.005."""
_M_ARENA_MAX = -8  # from glibc's malloc.h
_done = False


def tune_process() -> None:
    """Apply both settings once per process (the daemon runs many pipelines)."""
    global _done
    if _done:
        return
    _done = True
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
    _limit_malloc_arenas(1)


def _limit_malloc_arenas(arenas: int) -> None:
    if not sys.platform.startswith("linux"):  # pragma: no cover - transferd runs on Linux
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # pragma: no cover - musl and others: nothing to tune
        log.debug("no mallopt in this libc: malloc arenas left as they are")
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(_M_ARENA_MAX, arenas) != 1:  # pragma: no cover - glibc accepts it
        log.debug("mallopt(M_ARENA_MAX) refused: malloc arenas left as they are")
