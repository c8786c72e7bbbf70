"""Verify, beside the proof: how long the store must keep each stored object of a copy.

On an S3 store with Object Lock, every object and manifest of a job (and every copy manifest of a
copy) is a retained version (stores/s3lock.py). ``verify --object-lock DAYS [--lock-mode M]``
reads each one's retention (a HEAD each, many at once: the lock headers come with it), reports
it, and fails when one has none, a weaker mode than asked (GOVERNANCE when COMPLIANCE was), or an
end earlier than its write plus DAYS (less S3's 15 minutes of clock skew). The lease records of a
copy are not looked at: they are never locked.

This is apart from the signed report (protocol/REPORT.md): retention is a property of the store's
configuration, not of the copy's bytes, and it changes (``transferd copy extend-lock``) while the
copy does not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from transferd.errors import ConfigError, ObjectNotFoundError, RetentionShortError
from transferd.stores.base import Store
from transferd.stores.s3lock import LockPolicy, Retention
from transferd.stores.s3probe import unwrap_s3

if TYPE_CHECKING:
    from transferd.stores.s3 import S3Store

BATCH = 1000
SHOWN = 50
"""Short objects named on the terminal; ``--json`` lists every object."""


@dataclass
class ModeSummary:
    count: int = 0
    earliest: datetime | None = None
    latest: datetime | None = None

    def add(self, until: datetime | None) -> None:
        self.count += 1
        if until is not None:
            self.earliest = until if self.earliest is None else min(self.earliest, until)
            self.latest = until if self.latest is None else max(self.latest, until)


@dataclass
class RetentionCheck:
    """What the retention of a job's (or a copy's) stored objects is."""

    asked: LockPolicy
    objects: list[dict[str, Any]] = field(default_factory=list)
    modes: dict[str, ModeSummary] = field(default_factory=dict)
    short: list[tuple[str, str]] = field(default_factory=list)

    def add(self, kind: str, retention: Retention) -> None:
        why = retention.shortfall(self.asked)
        until = retention.until.strftime("%Y-%m-%dT%H:%M:%SZ") if retention.until else None
        self.objects.append({"key": retention.key, "kind": kind, "mode": retention.mode,
                             "until": until, "short": why})  # fmt: skip
        self.modes.setdefault(retention.mode or "none", ModeSummary()).add(retention.until)
        if why is not None:
            self.short.append((retention.key, why))

    @property
    def holds(self) -> bool:
        return not self.short

    def lines(self) -> list[str]:
        out = [f"  retention ({self.asked.describe()} asked): {len(self.objects):,} objects and "
               "manifests"]  # fmt: skip
        for mode, summary in sorted(self.modes.items()):
            span = ""
            if summary.earliest is not None and summary.latest is not None:
                span = f", until {_day(summary.earliest)} to {_day(summary.latest)}"
            out.append(f"    {mode.lower()}: {summary.count:,}{span}")
        out += [f"    SHORT {key}: {why}" for key, why in self.short[:SHOWN]]
        if len(self.short) > SHOWN:
            out.append(f"    … and {len(self.short) - SHOWN:,} more short (--json lists them)")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "asked": {"days": self.asked.days, "mode": self.asked.mode},
            "holds": self.holds,
            "short": len(self.short),
            "modes": {m: {"count": s.count, "earliest": _text(s.earliest),
                          "latest": _text(s.latest)} for m, s in sorted(self.modes.items())},
            "objects": self.objects,
        }  # fmt: skip


class RetentionRun:
    """The retention check of one verify run: jobs and copy manifests added as verified."""

    def __init__(self, s3: S3Store, policy: LockPolicy) -> None:
        self.s3, self.check = s3, RetentionCheck(policy)

    async def job(self, job: str) -> None:
        await check_job(self.s3, job, self.check)

    async def copy(self, copy: str) -> None:
        await check_copy_manifests(self.s3, copy, self.check)

    def raise_if_short(self) -> None:
        short = self.check.short
        if short:
            key, why = short[0]
            more = f" and {len(short) - 1:,} more" if len(short) > 1 else ""
            raise RetentionShortError(
                f"retention shorter than asked ({self.check.asked.describe()}): {key}: {why}{more}",
                hint="transferd copy extend-lock lengthens it; the lines above name each one",
                short=len(short),
            )


def retention_check(store: Store, policy: LockPolicy | None) -> RetentionRun | None:
    """The check ``--object-lock`` asks for; None without it."""
    return None if policy is None else RetentionRun(s3_of(store), policy)


def s3_of(store: Store) -> S3Store:
    """The S3 store whose retention is asked for; ConfigError for any other store."""
    s3 = unwrap_s3(store)
    if s3 is None:
        raise ConfigError(
            f"--object-lock checks an S3 store's retention; {store.description} has none",
            hint="give --store s3://BUCKET/PREFIX",
        )
    return s3


async def check_job(s3: S3Store, job: str, check: RetentionCheck) -> None:
    """Every object and manifest of ``job`` in the store."""
    objects = [s3.object_key(job, name) async for name, _ in s3.list_objects(job)]
    manifests = [s3.manifest_key(job, *n) for n in await s3.list_manifests(job)]
    await _check(s3, [("manifest", k) for k in manifests] + [("object", k) for k in objects], check)


async def check_copy_manifests(s3: S3Store, copy: str, check: RetentionCheck) -> None:
    keys = [s3.copy_record_key(copy, "manifests", n)
            for n in await s3.list_copy_records(copy, "manifests")]  # fmt: skip
    await _check(s3, [("copy-manifest", k) for k in keys], check)


async def _check(s3: S3Store, keyed: list[tuple[str, str]], check: RetentionCheck) -> None:
    for start in range(0, len(keyed), BATCH):
        batch = keyed[start : start + BATCH]
        try:
            found = await s3.retention([k for _, k in batch])
        except ObjectNotFoundError:  # deleted since it was listed: one at a time, to say which
            found = list(await _one_by_one(s3, (k for _, k in batch)))
        kinds = {k: kind for kind, k in batch}
        for retention in found:
            check.add(kinds[retention.key], retention)


async def _one_by_one(s3: S3Store, keys: Iterable[str]) -> list[Retention]:
    found = []
    for key in keys:
        try:
            found.extend(await s3.retention([key]))
        except ObjectNotFoundError:
            found.append(Retention(key, None, None, None, None))
    return found


def _day(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%SZ")


def _text(when: datetime | None) -> str | None:
    return None if when is None else when.strftime("%Y-%m-%dT%H:%M:%SZ")
