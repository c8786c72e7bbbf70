"""Sizes, rates and durations as operators write and read them: ``16M``, ``10MiB/s``, ``1:02:03``.

Binary multiples everywhere (1K = 1024 bytes), as every size transferd prints, so that what a
command prints can be given back to another one.
"""

from __future__ import annotations

import argparse
import re

from transferd.errors import ConfigError

_RATE = re.compile(r"(?P<n>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[kmgt]?)(?:i?b)?(?:/s)?", re.I)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_rate(text: str) -> int:
    """``"10M"``, ``"10MiB/s"``, ``"512k"``, ``"0"`` → bytes per second (0: no limit).

    Binary multiples, like every size transferd prints; a bare number is bytes per second.
    """
    m = _RATE.fullmatch(text.strip())
    if m is None:
        raise ConfigError(
            f"not a bandwidth: {text!r}", hint="give bytes per second: 0 (no limit), 512K, 10M, 1G"
        )
    return int(float(m["n"]) * _UNITS[m["unit"].lower()])


def format_rate(rate: int) -> str:
    if rate <= 0:
        return "unlimited"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if rate >= size:
            return f"{rate / size:g} {unit}/s"
    return f"{rate} B/s"


def parse_size(text: str) -> int:
    """``16M``, ``1G``, ``512k`` or plain bytes (powers of 1024), for argparse."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    try:
        if t and t[-1] in units:
            return int(float(t[:-1]) * units[t[-1]])
        return int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 16M, 1G)") from None


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - loop always returns


def human_duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"
