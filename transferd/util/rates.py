"""Rate and ETA of a running copy, from what the store acknowledged, over a sliding window.

Bytes *read* are the wrong measure: the pipeline reads ahead of the uploads by its memory window
(queued blocks, a pack being filled, packs in flight: tens of MiB), so under a bandwidth limit a
short copy showed 69.8 MiB/s and "ETA 2 s" while 8 MiB/s were sent and 26 s remained. What a
rate and an ETA must follow is what the store acknowledged:

- the rate is pack bytes acknowledged per second, over the last ``window`` seconds (an average
  since the start hides a link that slowed down an hour ago, or a limit changed since);
- the ETA divides the source bytes left by the source bytes *settled* per second, where settled
  means acknowledged: what was reused unchanged or deduplicated, plus the new plaintext in the
  proportion of its sealed bytes that the store holds (``settled``).

Pure: the caller samples ``(time, sent, settled)``; the clock is the caller's.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

WINDOW = 20.0
"""Seconds of samples behind a rate: long enough to span a few 16 MiB packs at 8 MiB/s (one is
acknowledged every 2 s, so a shorter window jumps between 0 and twice the rate), short enough
to follow a limit changed while the job runs."""

MIN_SPAN = 5.0
"""Seconds of samples before any rate is given: over one or two seconds, a pack leaving at once
on a bucket's burst reads as twice the limit. "-" is better than a figure that is wrong."""


def settled(*, reused: int, deduplicated: int, new: int, sealed: int, sent: int) -> int:
    """Source bytes the store holds for this run so far (an estimate within one pack).

    ``reused``: of unchanged entries, not read; ``deduplicated``: read, but held by the store
    already; ``new``: plaintext placed in packs; ``sealed``: those packs' bytes; ``sent``: pack
    bytes acknowledged. New plaintext counts in the proportion of its sealed bytes acknowledged.
    What was read and not yet packed does not count: it is the read-ahead that lied."""
    acknowledged = 0
    if new and sealed:
        acknowledged = int(new * min(1.0, sent / sealed))
    return reused + deduplicated + acknowledged


@dataclass(frozen=True)
class Estimate:
    rate: float | None
    """Pack bytes acknowledged per second over the window; None before ``MIN_SPAN``."""
    eta_seconds: float | None
    """Seconds left at the settled rate; None when unknown (no total, nothing settled yet)."""


class RateWindow:
    """Samples of (time, sent, settled); the rate and ETA they give over the last ``window``."""

    def __init__(self, window: float = WINDOW, min_span: float = MIN_SPAN) -> None:
        self.window = window
        self.min_span = max(min_span, 1e-9)
        self._samples: collections.deque[tuple[float, int, int]] = collections.deque()

    def clear(self) -> None:
        self._samples.clear()

    def add(self, now: float, sent: int, settled_bytes: int) -> None:
        self._samples.append((now, sent, settled_bytes))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    def estimate(self, total: int | None) -> Estimate:
        if len(self._samples) < 2:
            return Estimate(None, None)
        (t0, s0, d0), (t1, s1, d1) = self._samples[0], self._samples[-1]
        if t1 - t0 < self.min_span:
            return Estimate(None, None)
        rate = max(0.0, (s1 - s0) / (t1 - t0))
        pace = (d1 - d0) / (t1 - t0)
        eta = None
        if total is not None and pace > 0:
            eta = max(0.0, (total - d1) / pace)
        return Estimate(rate, eta)
