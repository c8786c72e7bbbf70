"""Run a coroutine on uvloop, and configure logging for a command-line process.

uvloop is installed here and in the daemon only: the library code is plain asyncio and runs on
any loop (tests use the default one).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


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
