"""``transferd agent``: run one agent of a copy plan until the copy (or its share) is done.

Every agent of a copy reads the same plan (copies/plan.py) and shares its sender key and copy
secret; each has a state directory of its own. An agent runs the jobs the plan gives it, then
takes over the jobs of agents that stopped renewing their leases (copies/leases.py), and exits
once every job of the copy is recorded in the signed copy manifest. Exit 0 when the copy is
complete; 15 when jobs were given up (each named); other codes as for ``send``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from transferd.cli.output import Output, add_json_flag
from transferd.copies.agent import Agent, AgentResult
from transferd.copies.plan import load_plan
from transferd.copies.setup import load_material, open_copy_store, open_plan_source, send_options
from transferd.errors import EXIT_JOBS_GIVEN_UP, EXIT_OK, ConfigError
from transferd.send.state import default_state_dir
from transferd.util.runtime import run as run_async
from transferd.util.runtime import setup_logging


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "agent",
        help="run one agent of a copy plan: its jobs, then those of dead agents",
        description="Run the jobs the copy plan FILE gives agent NAME, into the plan's store, "
        "then take over jobs whose agent stopped renewing its lease, until every job of the copy "
        "is recorded in the signed copy manifest. Run the same command again after any stop: "
        "jobs resume where they were.",
        epilog="Example: transferd agent --plan snds-2026.toml --agent agent-1 --state "
        "/var/lib/transferd/agent-1",
    )
    p.add_argument("--plan", required=True, type=Path, metavar="FILE", help="the copy plan (TOML)")
    p.add_argument("--agent", required=True, metavar="NAME", help="this agent's name in the plan")
    p.add_argument(
        "--state",
        type=Path,
        metavar="DIR",
        help=f"this agent's own state directory (default {default_state_dir()})",
    )
    p.add_argument(
        "--no-takeover",
        dest="takeover",
        action="store_false",
        help="run only this agent's own jobs, then exit",
    )
    p.add_argument(
        "--parallel", type=int, default=1, metavar="N", help="jobs run at once (default 1)"
    )
    p.add_argument("--retries", type=int, default=8, help="attempts per store request")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Output) -> int:
    setup_logging(quiet=args.quiet, json_mode=out.json_mode)
    plan = load_plan(args.plan)
    if args.agent not in plan.agents:
        raise ConfigError(
            f"agent {args.agent} is not in the plan {args.plan}",
            hint=f"agents: {', '.join(sorted(plan.agents))}",
        )
    material = load_material(plan, out)
    store = open_copy_store(plan, material.sender, max(1, args.retries))
    agent = Agent(
        plan=plan,
        name=args.agent,
        state_dir=args.state or default_state_dir(),
        store=store,
        sender=material.sender,
        secret=material.secret,
        recipients=material.recipients,
        options=send_options(plan, max(1, args.retries)),
        open_source=lambda spec: open_plan_source(plan, spec),
        takeover=args.takeover,
        parallel=max(1, args.parallel),
    )

    async def main() -> AgentResult:
        try:
            return await agent.run()
        finally:
            await store.close()

    result = run_async(main())
    summary = {
        "agent": result.agent,
        "copy": result.copy,
        "pid": os.getpid(),
        "copy_manifest": result.copy_manifest,
        "copy_complete": result.copy_complete,
        "jobs": [j.to_json() for j in result.jobs],
        "given_up": result.given_up,
    }
    lines = [
        f"agent {result.agent} of copy {result.copy}: ran {len(result.jobs)} jobs; copy "
        f"manifest {result.copy_manifest}, copy "
        + ("complete" if result.copy_complete else "not complete yet")
    ]
    for j in result.jobs:
        taken = f", taken over from {j.taken_over_from}" if j.taken_over_from else ""
        lines.append(
            f"  job {j.job}: manifest {j.sequence}, {j.packs_adopted} packs adopted, "
            f"{j.bytes_sent:,} bytes sent, {j.seconds:.1f} s{taken}"
        )
    for job, why in result.given_up.items():
        out.warning(f"gave up on job {job}: {why}")
    out.result(summary, lines)  # type: ignore[arg-type]
    return EXIT_JOBS_GIVEN_UP if result.given_up else EXIT_OK
