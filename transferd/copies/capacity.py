"""Capacity planning: how many agents, and how long, to copy SIZE bytes over a link.

An agent moves ``rate`` bytes of source data per second (read, chunk, compress, seal, upload:
what ``transferd send`` measures, bounded by its host's cores); what crosses the link is that
times ``ratio`` (stored bytes / source bytes, below 1 when the data compresses). The link
carries ``link_bits / 8 * efficiency`` bytes per second (TCP, TLS, HTTP and retries take the
rest). So:

    link_plain  = link_bytes_per_s * efficiency / ratio     source bytes per second the link allows
    to_fill     = ceil(link_plain / rate)                    agents that saturate the link
    throughput  = min(agents * rate, link_plain)
    hours       = size / throughput / 3600

More agents than ``to_fill`` make nothing faster; fewer leave the link idle. With a deadline,
the agents needed are ``ceil(size / deadline / rate)``, if the link allows that throughput at all.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferd.errors import ConfigError

_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40, "pi": 2**50}  # fmt: skip


def parse_quantity(text: str, unit: str) -> float:
    """``450TB``, ``12.5 TiB``, ``10Gbit/s``, ``800MB/s`` → a number of bytes or bits (``unit`` is
    the suffix expected after the multiplier: ``b`` for bytes, ``bit`` for bits)."""
    t = text.strip().lower().replace(" ", "").removesuffix("/s").removesuffix("ps")
    m = re.fullmatch(rf"([0-9]*\.?[0-9]+)([kmgtp]i?)?({unit})?", t)
    if m is None:
        raise ConfigError(f"not a quantity: {text!r} (e.g. 450TB, 10Gbit/s, 200MB/s)")
    return float(m.group(1)) * _UNITS[m.group(2) or ""]


@dataclass(frozen=True)
class Estimate:
    size: float
    """Source bytes."""
    rate: float
    """Source bytes per second one agent moves."""
    ratio: float
    link_bits: float
    efficiency: float
    agents: int
    to_fill: int
    link_plain: float
    throughput: float
    seconds: float
    deadline_agents: int | None = None
    deadline_possible: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in vars(self).items()}


def estimate(
    size: float,
    rate: float,
    *,
    ratio: float = 1.0,
    link_bits: float = 10e9,
    efficiency: float = 0.85,
    agents: int | None = None,
    deadline_seconds: float | None = None,
) -> Estimate:
    if size <= 0 or rate <= 0 or link_bits <= 0:
        raise ConfigError("size, per-agent rate and link speed must be positive")
    if not 0 < ratio <= 1.5 or not 0 < efficiency <= 1:
        raise ConfigError("the ratio must be in (0, 1.5] and the link efficiency in (0, 1]")
    link_plain = link_bits / 8 * efficiency / ratio
    to_fill = max(1, math.ceil(link_plain / rate))
    chosen = agents or to_fill
    throughput = min(chosen * rate, link_plain)
    deadline_agents = possible = None
    if deadline_seconds:
        needed = size / deadline_seconds
        deadline_agents = max(1, math.ceil(needed / rate))
        possible = needed <= link_plain
    return Estimate(
        size=size, rate=rate, ratio=ratio, link_bits=link_bits, efficiency=efficiency,
        agents=chosen, to_fill=to_fill, link_plain=link_plain, throughput=throughput,
        seconds=size / throughput, deadline_agents=deadline_agents, deadline_possible=possible,
    )  # fmt: skip


@dataclass(frozen=True)
class Measured:
    rate: float
    ratio: float
    source: str
    """Where the figure comes from, for the printout."""


def from_perf_results(directory: Path) -> Measured | None:
    """The newest ``*-bench.json`` of perf/ (its end-to-end send rate and stored/source ratio)."""
    if not directory.is_dir():
        return None
    for path in sorted(directory.glob("*-bench.json"), reverse=True):
        try:
            doc = json.loads(path.read_text())
            e2e = doc["methods"]["transferd_e2e"]
            rate, ratio = float(e2e["mb_s"]) * 1e6, float(e2e.get("ratio") or 1.0)
            cores = doc.get("machine", {}).get("cores", "?")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if rate > 0:
            return Measured(rate, ratio, f"{path} ({cores} cores, end to end)")
    return None
