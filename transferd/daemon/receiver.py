"""The daemon's receiving role: the storage host of ``transferd serve``, inside the daemon.

Built by the same builder from the same settings (host/build.py, host/settings.py), so the two
cannot disagree: a directory or an S3 store, the same grants, TLS, timeouts and caps, the same
graceful shutdown (stop listening, finish requests in flight up to ``shutdown_timeout``, close the
store). ``start`` returns once the socket listens, or raises what kept it from listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from transferd.daemon.config import ServeSettings
from transferd.errors import ConfigError

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("transferd.daemon.serve")


class Receiver:
    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.url = ""
        self.app: web.Application | None = None
        """The host's application once started: its counters are the metrics endpoint's."""
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from transferd.host.build import open_host, serve  # aiohttp only for this role

        s = self.settings
        host = open_host(s)
        self.app = host.app
        listening = asyncio.Event()

        def on_listening(url: str) -> None:
            self.url = url
            listening.set()

        self._task = asyncio.create_task(
            serve(
                host,
                s.listen,
                on_listening=on_listening,
                stop=self._stop,
                shutdown_timeout=s.shutdown_timeout,
            )
        )
        waiter = asyncio.create_task(listening.wait())
        await asyncio.wait([waiter, self._task], return_when=asyncio.FIRST_COMPLETED)
        if not listening.is_set():
            waiter.cancel()
            await self._task  # raises what kept it from listening
            raise ConfigError("the receiving role stopped before it listened")
        log.info("receiving role listening", extra={"url": self.url, "store": s.store})

    async def close(self) -> None:
        if self._task is None:
            return
        self._stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
