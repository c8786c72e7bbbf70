"""Run a coroutine on uvloop, and configure logging for a command-line process.

uvloop is installed here and in the daemon only: the library code is plain asyncio and runs on
any loop (tests use the default one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end. SIGTERM, like Ctrl-C, cancels it (its ``finally`` blocks run:
    sources and stores are closed) and ends with KeyboardInterrupt, which the CLI reports as
    "interrupted" (130) with how to resume: a ``kill`` or a stopping unit is no crash."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_terminable(coro))


async def _terminable(coro: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    terminated = False

    def on_sigterm() -> None:
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (ValueError, RuntimeError):  # not the main thread: leave SIGTERM as it is
        return await coro
    try:
        return await coro
    except asyncio.CancelledError:
        if terminated:
            raise KeyboardInterrupt from None
        raise
    finally:
        with contextlib.suppress(ValueError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = {"WARNING": "warning", "ERROR": "error", "CRITICAL": "error"}.get(
            record.levelname, "info"
        )
        return f"transferd: {level}: {record.getMessage()}"


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Log lines on stderr, shaped like the CLI's own (``transferd: warning: …``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO)
    for noisy in ("aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
