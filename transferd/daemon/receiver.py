"""The daemon's receiving role: the storage host of host/server.py, inside the daemon.

The same application factory and the same graceful shutdown as ``transferd serve``
(``make_app``, ``serve``): stop listening, finish requests in flight up to ``shutdown_timeout``,
close the store. ``start`` returns once the socket listens, or raises what kept it from listening.
The TLS key is a secret: its file is refused if group or others can read it (config.SecretRef).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from transferd.daemon.config import ServeSettings
from transferd.errors import ConfigError
from transferd.host.auth import Authorizer, parse_grant
from transferd.stores.local import LocalStore

log = logging.getLogger("transferd.daemon.serve")


class Receiver:
    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.url = ""
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from transferd.host.server import make_app, serve, tls_context

        s = self.settings
        assert s.store is not None  # noqa: S101 -- daemon/config.py refuses [serve] without a store
        authorizer = Authorizer(
            [parse_grant(g) for g in s.senders],
            [parse_grant(g) for g in s.readers],
            hosts=s.accept_hosts,
        )
        if not authorizer:
            raise ConfigError(
                "[serve] allows no key: nobody could use this host",
                hint='add [serve.senders] "JOBPATTERN" = ["tds1…"]',
            )
        ssl_context = None
        if s.tls_cert is not None and s.tls_key is not None:
            s.tls_key.read()  # refuses a key file others can read
            ssl_context = tls_context(str(s.tls_cert), str(s.tls_key.path))
        app = make_app(LocalStore(s.store), authorizer)
        listening = asyncio.Event()

        def on_listening(url: str) -> None:
            self.url = url
            listening.set()

        self._task = asyncio.create_task(
            serve(
                app,
                *s.listen,
                ssl_context=ssl_context,
                on_listening=on_listening,
                stop=self._stop,
                shutdown_timeout=s.shutdown_timeout,
            )
        )
        waiter = asyncio.create_task(_until(listening))
        await asyncio.wait([waiter, self._task], return_when=asyncio.FIRST_COMPLETED)
        if not listening.is_set():
            waiter.cancel()
            await self._task  # raises what kept it from listening
            raise ConfigError("the receiving role stopped before it listened")
        log.info("receiving role listening", extra={"url": self.url, "store": str(s.store)})

    async def close(self) -> None:
        if self._task is None:
            return
        self._stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None


async def _until(event: asyncio.Event) -> None:
    await event.wait()
