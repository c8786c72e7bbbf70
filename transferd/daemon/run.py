"""Run the daemon: install uvloop, handle signals, start and stop its parts in a fixed order.

Start, in this order, each part only if configured: the metrics endpoint, the receiving role, the
jobs (those that were running continue from their checkpoints), the control socket. Then
``READY=1``. Anything that fails before READY ends the process with its exit code (2 for a
configuration error, which the unit's ``RestartPreventExitStatus=2`` keeps systemd from retrying
in a loop).

Stop, on SIGTERM or SIGINT (restic's cleanup.go: one handler, one stop event): ``STOPPING=1`` at
once, then close in reverse order: the control socket (no new requests), the jobs (no new chunk is
read or uploaded, uploads in flight finish within ``drain_timeout``, the entries read so far are
recorded, the journals closed), the receiving role (requests in flight finish, its store is
closed), the metrics endpoint. Exit 0. The watchdog keeps being answered while draining, since
the loop is alive; ``TimeoutStopSec=`` in the unit is above ``drain_timeout`` so systemd never
has to kill a drain that keeps its deadline.

A second signal aborts: exit 130 at once, without waiting for uploads. Nothing is lost: the
journal commits each acknowledgement durably when it happens (send/journal.py), so the next start
resumes from the last one; the entries read since the last record are read again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from transferd.core.keys import SenderSecretKey, parse_key_file
from transferd.daemon.config import Config
from transferd.daemon.logs import JobLogFiles
from transferd.daemon.notify import Notifier
from transferd.errors import CancelledByUserError, ConfigError, KeyFormatError
from transferd.util.units import human_bytes

if TYPE_CHECKING:
    from transferd.daemon.manager import Manager

log = logging.getLogger("transferd.daemon")

STATUS_INTERVAL = 5.0


def load_sender(config: Config) -> SenderSecretKey | None:
    """The sender key of the sending role, or None when the role is off."""
    s = config.send
    if not s.enabled:
        return None
    if s.sender_key is None:
        raise ConfigError(
            "the sending role needs a sender key, and none is configured",
            hint="set sender_key = PATH in [send], or pass it as a systemd credential "
            "(LoadCredential=sender.key:/etc/transferd/sender.key)",
        )
    text = s.sender_key.read()
    try:
        key = parse_key_file(text)
    except KeyFormatError as e:
        raise KeyFormatError(f"{s.sender_key.path}: {e.message}", hint=e.hint) from None
    if not isinstance(key, SenderSecretKey):
        raise ConfigError(f"{s.sender_key.path} holds a recipient identity, not a sender key")
    return key


def run_daemon(config: Config, logs: JobLogFiles | None) -> int:
    import uvloop  # the daemon and the storage host run on uvloop; the library on any loop

    sender = load_sender(config)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(Daemon(config, sender, logs).main())


class Daemon:
    def __init__(
        self, config: Config, sender: SenderSecretKey | None, logs: JobLogFiles | None
    ) -> None:
        self.config = config
        self.sender = sender
        self.logs = logs
        self.notifier = Notifier()
        self.stop_event = asyncio.Event()
        self.signals = 0
        self.manager: Manager | None = None

    def _on_signal(self, signum: int) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals == 1:
            log.info("%s received: stopping; a second signal aborts", name)
            self.stop_event.set()
            return
        log.warning("%s received again: aborting without waiting for uploads", name)
        self.notifier.status("aborted")
        sys.stdout.flush()
        os._exit(CancelledByUserError.exit_code)

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        async with contextlib.AsyncExitStack() as parts:
            status = await self._start(parts)
            self.notifier.ready(status)
            log.info("ready: %s", status, extra={"pid": os.getpid()})
            helpers = [asyncio.create_task(self._report_status())]
            if self.notifier.watchdog_interval:
                helpers.append(asyncio.create_task(self._watchdog()))
            parts.push_async_callback(_cancel, helpers)  # closed last: pings go on while draining
            await self.stop_event.wait()
            self.notifier.stopping("stopping: finishing uploads in flight")
            log.info("stopping", extra={"drain_timeout": self.config.daemon.drain_timeout})
        log.info("stopped")
        self.notifier.close()
        return 0

    async def _start(self, parts: contextlib.AsyncExitStack) -> str:
        from transferd.daemon.control import ControlServer
        from transferd.daemon.manager import Manager
        from transferd.daemon.metrics import MetricsServer
        from transferd.daemon.receiver import Receiver

        c = self.config
        roles: list[str] = []
        manager = Manager(c, self.sender, self.logs) if self.sender is not None else None
        metrics = None
        if c.metrics.listen is not None:
            metrics = MetricsServer(c.metrics.listen, manager)
            await metrics.start()
            parts.push_async_callback(_closing, "metrics endpoint", metrics.close)
        if c.serve.enabled:
            receiver = Receiver(c.serve)
            await receiver.start()
            parts.push_async_callback(_closing, "receiving role", receiver.close)
            roles.append(f"receiving on {receiver.url}")
            if metrics is not None and receiver.app is not None:
                metrics.add_host(receiver.app)
        if manager is not None:
            self.manager = manager
            await manager.start()
            parts.push_async_callback(_closing, "jobs", manager.stop)
            control = ControlServer(c.daemon.control_socket, manager)
            await control.start()
            parts.push_async_callback(_closing, "control socket", control.close)
            roles.append(f"sending ({len(manager.jobs)} jobs)")
        if not roles:
            raise ConfigError(
                "nothing to do: the sending role is off and [serve] is not enabled",
                hint="set enabled = true in [serve], or enabled = true in [send]",
            )
        return "; ".join(roles)

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval or 0
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval / 2)

    async def _report_status(self) -> None:
        while True:
            await asyncio.sleep(STATUS_INTERVAL)
            if self.manager is not None:
                jobs = self.manager.jobs.values()
                phases = [j.phase for j in jobs]
                sent = sum(j.totals().bytes_sent for j in jobs)
                self.notifier.status(
                    f"{phases.count('sending')} jobs sending, {phases.count('paused')} paused, "
                    f"{phases.count('waiting')} waiting to retry; {human_bytes(sent)} sent"
                )


async def _closing(what: str, close: Callable[[], Awaitable[None]]) -> None:
    log.info("closing %s", what)
    await close()


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
