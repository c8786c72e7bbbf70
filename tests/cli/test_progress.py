"""Progress off a terminal: log lines with the total, and no second walk for a short run."""

from __future__ import annotations

import asyncio
import logging

import pytest

from transferd.cli.progress import report_progress
from transferd.send.config import Counters


def _run_for(seconds: float, interval: float, sized: list[int]) -> None:
    async def size_hint() -> int:
        sized.append(1)
        return 1 << 30

    async def main() -> None:
        task = asyncio.create_task(
            report_progress(Counters(), size_hint, interactive=False, interval=interval)
        )
        await asyncio.sleep(seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


def test_log_lines_carry_the_total_once_measured(caplog: pytest.LogCaptureFixture) -> None:
    sized: list[int] = []
    with caplog.at_level(logging.INFO, logger="transferd.progress"):
        _run_for(0.5, interval=0.1, sized=sized)

    assert sized == [1]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) >= 2
    assert all(line.startswith("progress: 0 B of 1.0 GiB (0%)") for line in lines)


def test_a_run_shorter_than_half_an_interval_never_measures_the_source() -> None:
    sized: list[int] = []
    _run_for(0.05, interval=10.0, sized=sized)

    assert sized == []
