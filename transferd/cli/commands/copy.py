"""``transferd copy``: the copy secret every agent of a copy shares, and where a copy stands.

``copy secret -o FILE --copy NAME`` draws K_copy (core/copy.py) into a new 0600 file: every job
key of the copy derives from it, so it is handed, like the sender key, to each agent's host and
to no one else. ``copy status --plan FILE`` reads the store: the newest copy manifest, and for
each job whether it is recorded, who holds its lease and since when that lease last moved.
``copy extend-lock`` retains every stored object of a copy on S3 for DAYS more days
(copies/extendlock.py); it needs S3 credentials that may set retention, and no key.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from transferd.cli.lockargs import add_lock_arguments, lock_policy
from transferd.cli.output import Output, add_json_flag
from transferd.copies.leases import Leases
from transferd.copies.manifests import newest_copy_manifest
from transferd.copies.plan import load_plan
from transferd.copies.setup import load_material, open_copy_store
from transferd.core.constants import KEY_SIZE
from transferd.core.copy import CopySecret, render_copy_secret_file
from transferd.core.manifest import check_job_name
from transferd.errors import ConfigError, FormatError, PermanentStoreError, TransferdError
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
    p = sub.add_parser(
        "extend-lock",
        help="retain every object of a copy on S3 for DAYS more days (only ever longer)",
        description="Set the retention of every object and manifest of every job of the copy, and "
        "of every copy manifest, to now + DAYS where that is later than it is; never shorter, "
        "never from compliance to governance. Lease records are left alone.",
        epilog="Example: transferd copy extend-lock --store s3://snds-copy/v1 --copy snds-2026 "
        "--object-lock 3650 --lock-mode compliance",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--plan", type=Path, metavar="FILE", help="the copy plan (store, jobs)")
    where.add_argument("--store", metavar="S3URL", help="s3://BUCKET/PREFIX of the copy")
    p.add_argument("--copy", metavar="NAME", help="with --store: the copy's name")
    p.add_argument(
        "--job",
        action="append",
        default=[],
        metavar="NAME",
        help="with --store: a job sent on its own (repeat), instead of or beside --copy",
    )
    add_lock_arguments(p, "retain for DAYS days from now", required=True)
    add_json_flag(p)
    p.set_defaults(run=_extend_lock)


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
                        "epoch": record.epoch, "time": record.time,
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
        held = (
            f"lease {lease['state']} by {lease['agent']} (epoch {lease['epoch']}) at "
            f"{lease['time']}"
            if lease
            else "-"
        )
        state = f"manifest {j['manifest']}" if j["manifest"] else "not finished"
        lines.append(f"  {j['job']:<24} {state:<16} {held} (assigned to {j['assigned_to']})")
    out.result(status, lines)
    return 0


def _extend_lock(args: argparse.Namespace, out: Output) -> int:
    from transferd.copies.extendlock import extend, keys_of_copy
    from transferd.core.copy import parse as parse_copy_manifest
    from transferd.stores.open import open_store
    from transferd.stores.s3config import read_table
    from transferd.verify.retention import s3_of

    policy = lock_policy(args)
    assert policy is not None  # noqa: S101 - --object-lock is required
    if args.plan is not None:
        plan = load_plan(args.plan)
        location, copy, planned = plan.store, plan.name, [j.name for j in plan.jobs]
        config: Path | None = args.plan if read_table(args.plan) else None
    elif args.copy is None and not args.job:
        raise ConfigError("--store needs --copy NAME or --job NAME", hint="or give --plan FILE")
    else:
        location, copy, planned, config = args.store, args.copy, list(args.job), None
    s3 = s3_of(open_store(location, s3_config=config, read_only=True))

    async def main() -> tuple[list[str], Any]:
        try:
            jobs = planned
            if copy is not None and not jobs:
                # The jobs the newest copy manifest names: parsed, not trusted (no key is
                # needed to lengthen a retention, and a forged name only lengthens more).
                numbers = await s3.list_copy_records(copy, "manifests")
                if not numbers:
                    raise ConfigError(f"copy {copy} has no copy manifest at {s3.description}")
                newest = await s3.get_copy_record(copy, "manifests", numbers[-1])
                try:
                    jobs = [j.job for j in parse_copy_manifest(newest).body.jobs]
                except TransferdError as e:
                    raise ConfigError(
                        f"copy manifest {numbers[-1]} of {copy}: {e.message}"
                    ) from None
            keys = await keys_of_copy(s3, copy, jobs)
            return jobs, await extend(s3, keys, policy)
        finally:
            await s3.close()

    jobs, done = run_async(main())
    summary = {
        "copy": copy, "store": s3.description, "jobs": jobs,
        "object_lock": {"days": policy.days, "mode": policy.mode}, **done.to_json(),
    }  # fmt: skip
    lines = [
        f"{f'copy {copy}' if copy else 'jobs'} at {s3.description}: {len(jobs)} jobs, retention "
        f"{policy.describe()} from now",
        f"  {done.extended:,} extended, {done.kept:,} already retained as long, "
        f"{done.missing:,} gone since listed, {len(done.refused):,} refused",
    ] + [f"  refused {key}: {error}" for key, error in done.refused[:50]]
    out.result(summary, lines)
    if done.refused:
        key, error = done.refused[0]
        raise PermanentStoreError(
            f"{len(done.refused):,} objects of copy {copy} could not be retained longer; "
            f"first: {key}: {error}",
            hint="the credentials need s3:PutObjectRetention (and s3:GetObjectRetention)",
        )
    return 0
