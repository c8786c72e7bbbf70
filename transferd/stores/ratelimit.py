"""A token-bucket bandwidth limit whose rate can change while uploads wait on it.

One bucket per job and one for the whole process: an upload takes its size from both, so a
job's limit and the global limit hold at once. The rate is read at every wake-up, so
``transferd jobs limit NAME 20M`` takes effect on a running job at its next upload, and
waiters sleeping on the old rate are woken to wait on the new one.

An upload larger than the bucket may go into debt: a 16 MiB pack under a 1 MiB/s limit leaves
at once, and the uploads after it wait until the debt is paid (16 s). The average rate is the
limit; the instantaneous rate is the link's. Pacing inside one upload would need a streaming
store API; a smaller pack size gives smoother pacing when that matters.

Waiters are served in arrival order (an ``asyncio.Lock`` is FIFO), so a large upload cannot be
starved by a stream of small ones. The clock and the sleep are injectable for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable


class TokenBucket:
    """At most ``rate`` bytes per second on average, bursts of at most ``burst`` bytes."""

    def __init__(
        self,
        rate: int = 0,
        *,
        burst_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._burst_seconds = burst_seconds
        self._rate = max(0, rate)
        self._tokens = float(self.burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self.waited = 0.0
        """Seconds callers spent waiting on this bucket (the metrics show it)."""

    @property
    def rate(self) -> int:
        """Bytes per second; 0 means no limit."""
        return self._rate

    @property
    def burst(self) -> int:
        return int(self._rate * self._burst_seconds)

    def set_rate(self, rate: int) -> None:
        """Change the limit now; waiters re-plan with the new rate."""
        self._refill()
        self._rate = max(0, rate)
        if self._rate == 0:
            self._tokens = 0.0
        else:
            self._tokens = min(self._tokens, float(self.burst))
        self._changed.set()

    def _refill(self) -> None:
        now = self._clock()
        if self._rate:
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def delay(self) -> float:
        """Seconds until an upload may start (0 when it may start now)."""
        self._refill()
        if not self._rate or self._tokens >= 0:
            return 0.0
        return -self._tokens / self._rate

    async def acquire(self, size: int) -> None:
        """Wait until ``size`` bytes may be sent, then take them from the bucket."""
        started = self._clock()
        async with self._lock:
            while (wait := self.delay()) > 0:
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    # asyncio.timeout, not wait_for: 3.11's wait_for can turn a cancellation
                    # (Ctrl-C, a pause) that lands as the timeout fires into a TimeoutError
                    async with asyncio.timeout(wait):
                        await self._changed.wait()
            if self._rate:
                self._tokens -= size
        self.waited += self._clock() - started
