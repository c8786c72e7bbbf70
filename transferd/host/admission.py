"""Who gets served now: a request rate per granted key, slots for uploads, and a log that a flood
cannot turn into a flood of log lines.

Everything here is bounded by what the operator configured, never by what clients send: rates are
kept only for keys holding a grant (a key nobody granted is refused before it reaches this
module), upload slots are a fixed number, and the refusal log keeps one counter per error code.
The clock is injected (monotonic seconds) so tests need not wait.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from transferd.errors import ApiError

log = logging.getLogger("transferd.serve")

REFUSAL_LOG_INTERVAL = 10.0
"""Seconds over which repeated refusals of one code are counted and reported in one line."""


class KeyRates:
    """A token bucket per key: ``rate`` requests a second sustained, ``burst`` at once."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self._clock = rate, float(burst), clock
        self._buckets: dict[bytes, tuple[float, float]] = {}
        """key -> (tokens, when they were counted)."""

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: bytes, key_text: str) -> None:
        """Spend one request of ``key``'s; ApiError 429 with the seconds until the next."""
        now = self._clock()
        tokens, stamp = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
            raise ApiError(
                429,
                "rate_limited",
                f"key {key_text} is over its rate of {self.rate:g} requests a second",
                retry_after=wait,
            )
        self._buckets[key] = (tokens - 1.0, now)

    def forget_idle(self) -> None:
        """Drop the buckets that have refilled: they hold nothing a new bucket would not."""
        now = self._clock()
        full = [k for k, (t, s) in self._buckets.items() if t + (now - s) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]


class UploadSlots:
    """At most ``size`` uploads received at once; the next ones wait up to ``wait`` seconds."""

    def __init__(self, size: int, wait: float) -> None:
        self.size, self.wait = size, wait
        self._free = asyncio.Semaphore(size)
        self.busy = 0
        self.peak = 0
        """The most uploads received at once since the host started."""

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self.wait):
                await self._free.acquire()
        except TimeoutError:
            raise ApiError(
                503,
                "busy",
                f"{self.size} uploads are being received; retry shortly",
                retry_after=max(1.0, self.wait / 2),
            ) from None
        self.busy += 1
        self.peak = max(self.peak, self.busy)
        try:
            yield
        finally:
            self.busy -= 1
            self._free.release()


@dataclass
class _Window:
    started: float
    suppressed: int = 0
    last: str = ""


class RefusalLog:
    """Refusals logged once per interval and code: the first one in full (the caller logs it),
    the others counted, then summed up in one line when the interval is over.

    A stranger sending 850 requests a second with a key nobody granted made 850 log lines a
    second; now it makes two every ``interval``.
    """

    def __init__(
        self, interval: float = REFUSAL_LOG_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval, self._clock = interval, clock
        self._windows: dict[str, _Window] = {}
        self.refused: dict[str, int] = {}
        """Refusals per code since the host started."""

    def note(self, code: str, what: str) -> bool:
        """Count a refusal; True when the caller should log it (the first of its interval)."""
        self.refused[code] = self.refused.get(code, 0) + 1
        now = self._clock()
        window = self._windows.get(code)
        if window is not None and now - window.started < self.interval:
            window.suppressed += 1
            window.last = what
            return False
        if window is not None:
            self._summarize(code, window, now)
        self._windows[code] = _Window(now)
        return True

    def flush(self, *, final: bool = False) -> None:
        """Log the sums of the intervals that are over (the host's housekeeping calls this), or
        of every interval when the host stops (``final``)."""
        now = self._clock()
        for code, window in list(self._windows.items()):
            if final or now - window.started >= self.interval:
                self._summarize(code, window, now)
                del self._windows[code]

    def _summarize(self, code: str, window: _Window, now: float) -> None:
        if window.suppressed:
            seconds = math.ceil(now - window.started)
            log.warning(
                "refused %d more requests (%s) in the last %d s, the last: %s",
                window.suppressed,
                code,
                seconds,
                window.last,
            )
