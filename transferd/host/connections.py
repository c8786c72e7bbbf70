"""Connections to the storage host: how many, from whom, and for how long they may say nothing.

aiohttp parses HTTP but bounds neither the connections it accepts nor the time a client takes to
send its headers: 200 connections dripping header bytes one at a time were held open for good.
``ConnectionGuard`` sits between the event loop's server and aiohttp's protocol, one
``_Guarded`` wrapper per connection that passes every call through, and adds:

- a cap on connections in total and per peer address: a connection over either is answered
  ``503 too_many_connections`` with ``Retry-After`` and closed before a byte of it is parsed;
- ``header_timeout``: from the first byte of a request until its handler starts (its headers
  complete), else ``408`` and the connection is closed;
- ``idle_timeout``: a connection with no request for that long (after it opened or after its
  last answer) is closed.

The body and whole-request timeouts are the application's (server.py, context.py): they need
to know where a request's body is. The middleware tells the guard when a request starts and
ends through ``request_started`` / ``request_finished``, keyed by the request's transport. An
application served without the guard (the tests' own sites) simply has no connection limits.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, cast

from transferd.host.limits import HostLimits

log = logging.getLogger("transferd.serve")


def _answer(status: str, code: str, message: str, retry_after: int | None = None) -> bytes:
    body = json.dumps({"error": message, "code": code}).encode()
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json; charset=utf-8",
            f"Content-Length: {len(body)}", "Connection: close"]  # fmt: skip
    if retry_after is not None:
        head.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class ConnectionGuard:
    """Counts the host's connections and arms their header and idle timers."""

    def __init__(self, limits: HostLimits) -> None:
        self.limits = limits
        self.total = 0
        self.peak = 0
        self.per_peer: dict[str, int] = {}
        """Open connections per address; an address with none has no entry."""
        self.refused = 0
        self.timed_out = {"header": 0, "idle": 0}
        self._open: dict[asyncio.BaseTransport, _Guarded] = {}

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` wrapping aiohttp's (``runner.server``)."""
        return lambda: _Guarded(self, inner())

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        conn = self._open.get(transport) if transport is not None else None
        if conn is not None:
            conn.request_started()

    def request_finished(self, transport: asyncio.BaseTransport | None) -> None:
        conn = self._open.get(transport) if transport is not None else None
        if conn is not None:
            conn.request_finished()

    def _admit(self, peer: str) -> str | None:
        """Count a new connection from ``peer``; the reason it is refused, or None."""
        limits = self.limits
        if self.total >= limits.max_connections:
            return f"the host has {limits.max_connections} connections open"
        if self.per_peer.get(peer, 0) >= limits.max_connections_per_peer:
            return f"{peer} has {limits.max_connections_per_peer} connections open"
        self.total += 1
        self.peak = max(self.peak, self.total)
        self.per_peer[peer] = self.per_peer.get(peer, 0) + 1
        return None

    def _release(self, peer: str, transport: asyncio.BaseTransport) -> None:
        self.total -= 1
        left = self.per_peer[peer] - 1
        if left:
            self.per_peer[peer] = left
        else:
            del self.per_peer[peer]
        self._open.pop(transport, None)


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the guard's counting and timers around it."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self.guard, self.inner = guard, inner
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.admitted = False
        self.in_request = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_kind = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream server's transport (uvloop's are not asyncio.Transport subclasses)
        self.transport = cast(asyncio.Transport, transport)
        self.peer = _peer_address(transport.get_extra_info("peername"))
        refusal = self.guard._admit(self.peer)
        if refusal is not None:
            self.guard.refused += 1
            message = f"{refusal}; retry shortly"
            self.transport.write(
                _answer("503 Service Unavailable", "too_many_connections", message, retry_after=1)
            )
            transport.close()
            return
        self.admitted = True
        self.guard._open[transport] = self
        self.inner.connection_made(transport)
        self._arm("idle")

    def data_received(self, data: bytes) -> None:
        if not self.admitted:
            return
        if not self.in_request and self._timer_kind != "header":
            self._arm("header")  # the first byte of a request: its headers must follow soon
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.admitted else None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.admitted:
            return
        self.admitted = False
        self._cancel()
        assert self.transport is not None  # noqa: S101 - set by connection_made
        self.guard._release(self.peer, self.transport)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def request_started(self) -> None:
        self.in_request = True
        self._cancel()

    def request_finished(self) -> None:
        self.in_request = False
        self._arm("idle")

    def _arm(self, kind: str) -> None:
        self._cancel()
        limits = self.guard.limits
        delay = limits.header_timeout if kind == "header" else limits.idle_timeout
        self._timer_kind = kind
        self._timer = asyncio.get_running_loop().call_later(delay, self._expired, kind)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_kind = None, ""

    def _expired(self, kind: str) -> None:
        self._timer, self._timer_kind = None, ""
        if self.transport is None or self.in_request or self.transport.is_closing():
            return
        self.guard.timed_out[kind] += 1
        if kind == "header":
            limit = self.guard.limits.header_timeout
            message = f"the request's headers took over {limit:g} s"
            self.transport.write(_answer("408 Request Timeout", "header_timeout", message))
        self.transport.close()


def _peer_address(peername: Any) -> str:
    if isinstance(peername, tuple) and peername:
        return str(peername[0])
    return "local"
