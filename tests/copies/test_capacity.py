"""copies/capacity.py and transferd plan: the arithmetic, and a rate measured on a sample."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.integration.harness import cli
from transferd.copies.capacity import estimate, parse_quantity
from transferd.copies.measure import measure
from transferd.errors import ConfigError
from transferd.send.compose import SendOptions
from transferd.sources.directory import DirectorySource


def test_quantities_read_as_operators_write_them() -> None:
    assert parse_quantity("450TB", "b") == 450e12
    assert parse_quantity("1 TiB", "b") == 2**40
    assert parse_quantity("10Gbit/s", "bit") == 10e9
    assert parse_quantity("250MB/s", "b") == 250e6
    with pytest.raises(ConfigError, match="not a quantity"):
        parse_quantity("lots", "b")


def test_agents_fill_the_link_and_no_more_helps() -> None:
    # 10 Gbit/s at 80 % = 1 GB/s on the wire; data that halves = 2 GB/s of source; 250 MB/s each
    e = estimate(450e12, 250e6, ratio=0.5, link_bits=10e9, efficiency=0.8)
    assert e.link_plain == pytest.approx(2e9)
    assert e.to_fill == 8
    assert e.seconds == pytest.approx(450e12 / 2e9)
    more = estimate(450e12, 250e6, ratio=0.5, link_bits=10e9, efficiency=0.8, agents=20)
    assert more.seconds == e.seconds
    fewer = estimate(450e12, 250e6, ratio=0.5, link_bits=10e9, efficiency=0.8, agents=4)
    assert fewer.seconds == pytest.approx(450e12 / 1e9)
    month = estimate(450e12, 250e6, ratio=0.5, deadline_seconds=30 * 86400)
    assert month.deadline_agents == 1 + int(450e12 / (30 * 86400) / 250e6)
    assert month.deadline_possible
    day = estimate(450e12, 250e6, ratio=0.5, deadline_seconds=86400)
    assert day.deadline_possible is False


async def test_a_rate_is_measured_on_a_sample_of_the_source(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(os.urandom(6 * 1024 * 1024))
    (tmp_path / "b.csv").write_text("1;2;3\n" * 300_000)
    measured = await measure(DirectorySource(tmp_path), SendOptions(workers=1), 4 * 1024 * 1024)
    assert measured.rate > 0
    assert 0.9 < measured.ratio < 1.1  # the first 4 MiB are the random file
    generated = await measure(None, SendOptions(workers=1), 8 * 1024 * 1024)
    assert generated.ratio < 0.8


def test_plan_prints_agents_and_time_for_a_size_and_a_link() -> None:
    out = cli("plan", "--size", "450TB", "--link", "10Gbit/s", "--agent-rate", "200MB/s",
              "--ratio", "0.5", "--deadline-days", "30", "--json").stdout  # fmt: skip
    plan = json.loads(out)
    assert plan["to_fill"] == 11  # 10 Gbit/s * 0.85 / 0.5 = 2.125 GB/s over 200 MB/s
    assert plan["agents"] == 11
    assert plan["deadline_agents"] == 1 + int(450e12 / (30 * 86400) / 200e6)
    human = cli("plan", "--size", "450TB", "--agent-rate", "200MB/s", "--ratio", "0.5").stdout
    assert "agents to fill the link: 11" in human
    assert "days" in human or "hours" in human
