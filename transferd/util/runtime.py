"""Run a coroutine on uvloop, and configure logging for a command-line process.

uvloop is installed here and in the daemon only: the library code is plain asyncio and runs on
any loop (tests use the default one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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
        return f"transferd: {_level(record)}: {record.getMessage()}"


class _JSONFormatter(logging.Formatter):
    """With ``--json``, a log line is an object like the CLI's own warnings: a script reading
    stderr finds nothing but JSON there (``{"warning": …, "hint": null}``, ``{"info": …}``)."""

    def format(self, record: logging.LogRecord) -> str:
        level = _level(record)
        obj: dict[str, object] = {level: record.getMessage()}
        if level != "info":
            obj["hint"] = None
        return json.dumps(obj, ensure_ascii=False)


def _level(record: logging.LogRecord) -> str:
    return {"WARNING": "warning", "ERROR": "error", "CRITICAL": "error"}.get(
        record.levelname, "info"
    )


def setup_logging(verbose: int = 0, quiet: bool = False, json_mode: bool = False) -> None:
    """Log lines on stderr, shaped like the CLI's own (``transferd: warning: …``), or as JSON
    objects with ``json_mode``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JSONFormatter() if json_mode else _Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO)
    for noisy in ("aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
