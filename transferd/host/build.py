"""Build a storage host from its settings, and run it: the one builder of ``transferd serve`` and of
the daemon's receiving role.

``open_host`` opens what the settings name, in an order that fails early and leaves nothing open
on failure: the grants (no key, no host), the TLS key (refused when group or others can read it)
and certificate, then the store (a directory, or an S3 bucket with the ``[s3]`` settings), and
returns the application of host/server.py around them. ``serve`` runs an application until asked
to stop, with the graceful shutdown described there; ``run_host`` is ``transferd serve``'s whole
process: uvloop, SIGTERM and SIGINT, serve, return.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from transferd.errors import ConfigError
from transferd.host.auth import Authorizer
from transferd.host.context import CONNECTIONS, IN_FLIGHT, LIMITS
from transferd.host.server import make_app
from transferd.host.settings import HostSettings, check_usable
from transferd.stores.base import Store
from transferd.util.extras import needs
from transferd.util.secretfiles import read_secret_file

log = logging.getLogger("transferd.serve")


@dataclass
class OpenHost:
    """A host ready to listen: its application (which owns the store) and its TLS context."""

    app: web.Application
    ssl_context: ssl.SSLContext | None
    store: Store

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context else "http"


def open_host(settings: HostSettings) -> OpenHost:
    """The application the settings describe, its store opened; ConfigError for what is wrong."""
    location = check_usable(settings)
    authorizer = Authorizer(settings.writers, settings.readers, hosts=settings.accept_hosts)
    ssl_context = tls_context(settings) if settings.tls_cert is not None else None
    store = _open_store(location, settings)
    return OpenHost(make_app(store, authorizer, limits=settings.limits), ssl_context, store)


def tls_context(settings: HostSettings) -> ssl.SSLContext:
    """The server's TLS context; refuses a key file that group or others can read."""
    cert, key = settings.tls_cert, settings.tls_key
    if cert is None or key is None:
        raise ConfigError("TLS needs both a certificate and its key (--tls-cert, --tls-key)")
    secret = read_secret_file(key)
    if secret.exposed:
        raise ConfigError(
            f"the TLS key {key} can be read by group or others (mode {secret.mode:04o})",
            hint=f"chmod 600 {key}, or pass it as a systemd credential (tls_key_credential)",
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise ConfigError(
            f"cannot load the TLS certificate {cert} and key {key}: {str(reason).lower()}"
        ) from None
    return context


def _open_store(location: str, settings: HostSettings) -> Store:
    if location.startswith("s3://"):
        with needs("s3"):  # aiobotocore only for an s3:// store
            from transferd.stores.s3 import S3Store
        from transferd.stores.s3config import load_settings

        return S3Store(load_settings(location, settings.s3_config))
    from transferd.stores.local import LocalStore

    return LocalStore(location)


async def serve(
    host: OpenHost,
    listen: tuple[str, int],
    *,
    on_listening: Callable[[str], None],
    stop: asyncio.Event,
    shutdown_timeout: float = 30.0,
) -> None:
    """Serve ``host`` until ``stop`` is set, then shut down gracefully (host/server.py).

    The socket is the event loop's own server around aiohttp's protocol factory
    (``runner.server``), each connection wrapped by the application's ConnectionGuard
    (connections.py), which aiohttp's sites have no place for. A TLS handshake gets
    ``header_timeout`` too: a client that opens and never speaks holds nothing for long.
    """
    app = host.app
    limits = app[LIMITS]
    runner = web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        keepalive_timeout=limits.idle_timeout + limits.header_timeout,  # the guard's come first
    )
    await runner.setup()
    try:
        assert runner.server is not None  # noqa: S101 - set by setup()
        address, port = listen
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(
                app[CONNECTIONS].factory(runner.server),
                address,
                port,
                ssl=host.ssl_context,
                ssl_handshake_timeout=limits.header_timeout if host.ssl_context else None,
                backlog=1024,
                reuse_address=True,
            )
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ConfigError(f"cannot listen on {address}:{port}: {reason.lower()}") from None
        bound_port = server.sockets[0].getsockname()[1]
        shown = f"[{address}]" if ":" in address else address
        on_listening(f"{host.scheme}://{shown}:{bound_port}")
        await stop.wait()
        in_flight = app[IN_FLIGHT]
        in_flight.stopping = True
        server.close()
        log.info("stopping: no new connections, finishing %d requests", in_flight.count)
        try:
            async with asyncio.timeout(shutdown_timeout):  # not wait_for: stores/ratelimit.py
                await in_flight.wait_idle()
        except TimeoutError:
            log.warning("%d requests still running after %g s", in_flight.count, shutdown_timeout)
    finally:
        await runner.cleanup()  # closes the store, through the application's cleanup context


def run_host(settings: HostSettings, on_listening: Callable[[str], None] = print) -> None:
    """Open the host and serve it on uvloop until SIGTERM or SIGINT; returns after a graceful
    shutdown."""
    from transferd.util.runtime import run  # installs uvloop: only for a process that serves

    host = open_host(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(
            host,
            settings.listen,
            on_listening=on_listening,
            stop=stop,
            shutdown_timeout=settings.shutdown_timeout,
        )

    run(main())
