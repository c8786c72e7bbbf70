"""``transferd plan``: how many agents, and how long, for a copy of a given size over a link.

Size: ``--size`` (``450TB``), or ``--source SPEC`` listed (a directory, ``az://…``). Per-agent
rate: ``--agent-rate``, else the newest perf/results/*-bench.json, else measured here by running
the send pipeline over a short sample (of ``--source`` when given). The arithmetic is
copies/capacity.py's; README.md ("A copy at national scale") shows a worked layout.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from transferd.cli.azureargs import add_azure_arguments, azure_options
from transferd.cli.output import Output, add_json_flag
from transferd.copies.capacity import Measured, estimate, from_perf_results, parse_quantity
from transferd.copies.measure import SAMPLE_BYTES, measure
from transferd.errors import ConfigError
from transferd.send.compose import SendOptions
from transferd.sources.open import open_source
from transferd.util.runtime import run as run_async

DAY = 86400.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "plan",
        help="estimate the agents and time a copy needs over a given link",
        description="Estimate, from the source's size and one agent's measured rate, how many "
        "agents fill a link and how long the copy takes (or how many agents meet a deadline).",
        epilog="Example: transferd plan --size 450TB --link 10Gbit/s --deadline-days 30",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--size", metavar="SIZE", help="bytes to copy: 450TB, 12TiB, …")
    what.add_argument("--source", metavar="SPEC", help="list this source to learn its size")
    p.add_argument("--link", default="10Gbit/s", metavar="RATE", help="default 10Gbit/s")
    p.add_argument(
        "--link-efficiency",
        type=float,
        default=0.85,
        metavar="F",
        help="share of the link that carries data (TCP, TLS, HTTP, retries; default 0.85)",
    )
    p.add_argument("--agent-rate", metavar="RATE", help="one agent's rate, e.g. 250MB/s")
    p.add_argument(
        "--ratio",
        type=float,
        metavar="R",
        help="stored bytes / source bytes (default: measured, or 1.0 with --agent-rate)",
    )
    p.add_argument("--agents", type=int, metavar="N", help="estimate for N agents")
    p.add_argument(
        "--deadline-days", type=float, metavar="D", help="agents needed to end in D days"
    )
    p.add_argument(
        "--perf-results",
        type=Path,
        default=Path("perf/results"),
        metavar="DIR",
        help="where bench results are looked for (default perf/results)",
    )
    p.add_argument(
        "--measure",
        action="store_true",
        help="measure the rate here even when perf results exist",
    )
    p.add_argument(
        "--sample", default="128MiB", metavar="SIZE", help="sample to measure (default 128MiB)"
    )
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="agent threads")
    p.add_argument(
        "--job-hours",
        type=float,
        default=1.0,
        metavar="H",
        help="how long one agent should take per job (default 1): sets the job layout",
    )
    add_azure_arguments(p)
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Output) -> int:
    source = open_source(args.source, azure=azure_options(args)) if args.source else None

    async def size_and_rate() -> tuple[float, Measured]:
        try:
            size = parse_quantity(args.size, "b") if args.size else await _listed(source)
            if args.agent_rate:
                rate = Measured(parse_quantity(args.agent_rate, "b"), args.ratio or 1.0, "given")
            else:
                found = None if args.measure else from_perf_results(args.perf_results)
                options = SendOptions(workers=args.workers)
                limit = int(parse_quantity(args.sample, "b")) if args.sample else SAMPLE_BYTES
                rate = found or await measure(source, options, limit)
            return size, rate
        finally:
            if source is not None:
                await source.close()

    size, measured = run_async(size_and_rate())
    ratio = args.ratio or measured.ratio
    e = estimate(
        size, measured.rate, ratio=ratio, link_bits=parse_quantity(args.link, "bit"),
        efficiency=args.link_efficiency, agents=args.agents,
        deadline_seconds=args.deadline_days * DAY if args.deadline_days else None,
    )  # fmt: skip
    job_size = measured.rate * args.job_hours * 3600
    jobs = max(e.agents * 2, math.ceil(size / job_size))
    lines = [
        f"source: {_tb(size)} ({'listed' if args.source else 'given'})",
        f"one agent: {measured.rate / 1e6:,.0f} MB/s of source data, stored/source {ratio:.2f} "
        f"({measured.source})",
        f"link: {e.link_bits / 1e9:g} Gbit/s at {e.efficiency:.0%} = "
        f"{e.link_plain / 1e9:,.2f} GB/s of source data at that ratio",
        f"agents to fill the link: {e.to_fill}",
        f"with {e.agents} agents: {e.throughput / 1e9:,.2f} GB/s, {_duration(e.seconds)}",
        f"layout: {jobs} jobs of about {_tb(size / jobs)}, about {args.job_hours:g} h of one agent "
        "each: an agent that takes over a job reads its source again (it resends only what is "
        "missing), so a job is no longer than one is willing to redo",
    ]
    if e.deadline_agents is not None:
        days = args.deadline_days
        lines.append(
            f"to finish in {days:g} days: {e.deadline_agents} agent"
            + ("s" if e.deadline_agents != 1 else "")
            if e.deadline_possible
            else f"{days:g} days is not possible on this link: it needs "
            f"{math.ceil(size / (days * DAY) * 8 * ratio / e.efficiency / 1e9)} Gbit/s"
        )
    if size <= 0:
        raise ConfigError("the source is empty")
    out.result({**e.to_json(), "rate_source": measured.source, "jobs": jobs}, lines)
    return 0


async def _listed(source: object) -> float:
    size = await source.size_hint() if source is not None else None  # type: ignore[attr-defined]
    if not size:
        raise ConfigError("the source's size could not be listed: give --size")
    return float(size)


def _tb(n: float) -> str:
    return f"{n / 1e12:,.1f} TB" if n >= 1e11 else f"{n / 1e9:,.2f} GB"


def _duration(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:,.1f} hours" if hours < 72 else f"{hours / 24:,.1f} days"
