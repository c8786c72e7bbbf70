"""A TCP proxy for the tests: counts the bytes a sender uploads, and cuts the link on demand.

It runs its own event loop on a thread so that the processes under test (a real sender and a real
storage host) talk through it over real sockets. ``cut_after`` makes it reset every connection
once that many upstream bytes have passed through it (a flaky link), until ``heal()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading


class ChaosProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.upstream_bytes = 0
        """Bytes from the sender to the host, over every connection so far."""
        self.cuts = 0
        self._cut_after: int | None = None
        self._since_cut = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.Server
        self.port = 0

    def __enter__(self) -> ChaosProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _shutdown(self) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        await asyncio.sleep(0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut_every(self, nbytes: int | None) -> None:
        """Reset all connections each time ``nbytes`` more upstream bytes have passed."""
        self._cut_after = nbytes
        self._since_cut = 0

    def heal(self) -> None:
        self.cut_every(None)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, sock=sock))
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        self._writers.update((client_w, server_w))
        up = asyncio.ensure_future(self._pipe(client_r, server_w, upstream=True))
        down = asyncio.ensure_future(self._pipe(server_r, client_w, upstream=False))
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        for task in (up, down):
            task.cancel()
        for w in (client_w, server_w):
            self._writers.discard(w)
            with contextlib.suppress(Exception):
                w.close()

    async def _pipe(
        self, r: asyncio.StreamReader, w: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        while data := await r.read(65536):
            if upstream:
                self.upstream_bytes += len(data)
                self._since_cut += len(data)
                if self._cut_after is not None and self._since_cut >= self._cut_after:
                    self._since_cut = 0
                    self.cuts += 1
                    for writer in list(self._writers):
                        _reset(writer)
                    return
            w.write(data)
            await w.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST, as a dropped link looks to both ends."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
    writer.transport.abort()
