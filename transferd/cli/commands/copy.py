"""``transferd copy``: the copy secret every agent of a copy shares, and where a copy stands.

``copy secret -o FILE --copy NAME`` draws K_copy (core/copy.py) into a new 0600 file: every job
key of the copy derives from it, so it is handed, like the sender key, to each agent's host and
to no one else. ``copy status --plan FILE`` reads the store: the newest copy manifest, and for
each job whether it is recorded, who holds its lease and since when that lease last moved.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from transferd.cli.output import Output, add_json_flag
from transferd.copies.leases import Leases
from transferd.copies.manifests import newest_copy_manifest
from transferd.copies.plan import load_plan
from transferd.copies.setup import load_material, open_copy_store
from transferd.core.constants import KEY_SIZE
from transferd.core.copy import CopySecret, render_copy_secret_file
from transferd.core.manifest import check_job_name
from transferd.errors import ConfigError, FormatError
from transferd.util.runtime import run as run_async
from transferd.util.secretfiles import write_secret_file


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "copy",
        help="a copy run by many agents: its shared secret, and where it stands",
        description="Create the secret every agent of a copy shares (copy secret), or show "
        "which jobs of a copy plan are recorded and who runs the others (copy status).",
    )
    sub = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("secret", help="create a copy secret in a new 0600 file")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="FILE")
    p.add_argument("--copy", required=True, metavar="NAME", help="the copy it is for (a label)")
    add_json_flag(p)
    p.set_defaults(run=_secret)
    p = sub.add_parser("status", help="jobs recorded, leases held, for a copy plan")
    p.add_argument("--plan", required=True, type=Path, metavar="FILE")
    add_json_flag(p)
    p.set_defaults(run=_status)


def _secret(args: argparse.Namespace, out: Output) -> int:
    try:
        copy = check_job_name(args.copy)
    except FormatError as e:
        raise ConfigError(e.message.replace("job name", "copy name")) from None
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    secret = CopySecret(os.urandom(KEY_SIZE))
    write_secret_file(args.output, render_copy_secret_file(secret, copy, created).encode())
    out.result(
        {"copy": copy, "file": str(args.output), "copy_id": secret.copy_id(copy)},
        [f"copy secret of {copy} written to {args.output} (copy id {secret.copy_id(copy)})"],
    )
    return 0


def _status(args: argparse.Namespace, out: Output) -> int:
    plan = load_plan(args.plan)
    material = load_material(plan, out)
    store = open_copy_store(plan, material.sender, retries=3)
    leases = Leases(store, plan.name, "status", lease_seconds=plan.lease_seconds, settle_seconds=0)

    async def main() -> dict[str, Any]:
        try:
            newest = await newest_copy_manifest(
                store, plan.name, material.sender.public(), material.secret.copy_id(plan.name)
            )
            jobs: list[dict[str, Any]] = []
            for job in plan.jobs:
                ref = newest.body.job(job.name) if newest else None
                number, record = await leases.newest(job.name)
                jobs.append({
                    "job": job.name,
                    "assigned_to": plan.owner(job.name),
                    "manifest": ref.sequence if ref else None,
                    "lease": None if record is None else {
                        "record": number, "agent": record.agent, "state": record.state,
                        "time": record.time,
                    },
                })  # fmt: skip
            return {
                "copy": plan.name,
                "copy_manifest": newest.body.sequence if newest else None,
                "jobs": jobs,
            }
        finally:
            await store.close()

    status = run_async(main())
    done = sum(1 for j in status["jobs"] if j["manifest"] is not None)
    lines = [
        f"copy {plan.name}: {done} of {len(plan.jobs)} jobs recorded in copy manifest "
        f"{status['copy_manifest']}"
    ]
    for j in status["jobs"]:
        lease = j["lease"]
        held = f"lease {lease['state']} by {lease['agent']} at {lease['time']}" if lease else "-"
        state = f"manifest {j['manifest']}" if j["manifest"] else "not finished"
        lines.append(f"  {j['job']:<24} {state:<16} {held} (assigned to {j['assigned_to']})")
    out.result(status, lines)
    return 0
