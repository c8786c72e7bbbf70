"""S3 Object Lock: the retention a store sets on what it writes, and what a stored object has.

With a ``LockPolicy`` (``--object-lock DAYS --lock-mode governance|compliance``, or
``object_lock_days`` and ``lock_mode`` in ``[s3]``) every object, job manifest and copy manifest
is written with ``x-amz-object-lock-mode`` and ``x-amz-object-lock-retain-until-date`` = now +
DAYS: until then no one can delete or overwrite that version (COMPLIANCE: not even the bucket's
owner; GOVERNANCE: only with s3:BypassGovernanceRetention). Lease records are never locked: they
are coordination, pruned as agents renew, and a locked one could not be.

Servers differ (researched on ministack, Ceph radosgw, moto, rclone): some drop the lock headers
of CreateMultipartUpload, so after a multipart upload the object's retention is read back and set
with PutObjectRetention when it is missing or short; some store the headers as plain metadata and
echo them, enforcing nothing, which is why the store probes enforcement before trusting a bucket
(stores/s3probe.py) rather than believing what HEAD echoes.

A retention is only ever lengthened here (``extended``): S3 refuses to shorten COMPLIANCE, and a
GOVERNANCE one could be shortened only with a bypass, which nothing in transferd asks for.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from transferd.errors import ConfigError, ObjectNotFoundError, StoreError

if TYPE_CHECKING:
    from transferd.stores.s3 import S3Store

MODES = ("GOVERNANCE", "COMPLIANCE")
MAX_DAYS = 36500
"""A hundred years: S3 takes more, but a longer figure is a typo, not a policy."""
SKEW = timedelta(seconds=900)
"""What a retention may fall short of the asked period before it counts as short: S3 refuses a
request signed more than 15 minutes off its clock, so no honest write lands later than that."""


@dataclass(frozen=True)
class LockPolicy:
    days: int
    mode: str = "GOVERNANCE"

    def __post_init__(self) -> None:
        if not isinstance(self.days, int) or isinstance(self.days, bool):
            raise ConfigError(
                f"the Object Lock period is a whole number of days, not {self.days!r}"
            )
        if not 1 <= self.days <= MAX_DAYS:
            raise ConfigError(f"the Object Lock period is 1 to {MAX_DAYS} days, not {self.days}")
        if self.mode not in MODES:
            raise ConfigError(
                f"the lock mode is governance or compliance, not {self.mode.lower()!r}"
            )

    @classmethod
    def parse(cls, days: object, mode: object = None) -> LockPolicy:
        """From a flag or a TOML value: ``mode`` in any case, governance when not given."""
        text = "governance" if mode is None else str(mode)
        if not isinstance(days, int) or isinstance(days, bool):
            raise ConfigError(f"the Object Lock period is a whole number of days, not {days!r}")
        return cls(days, text.upper())

    @property
    def period(self) -> timedelta:
        return timedelta(days=self.days)

    def until(self, now: datetime) -> datetime:
        """The retain-until date of a write at ``now``: now + the period, rounded up to the
        second (S3 keeps seconds; rounding down would make it a fraction short)."""
        end = now.astimezone(UTC) + self.period
        return datetime.fromtimestamp(math.ceil(end.timestamp()), UTC)

    def headers(self, now: datetime) -> dict[str, Any]:
        """The PutObject / CreateMultipartUpload parameters that lock what is written."""
        return {"ObjectLockMode": self.mode, "ObjectLockRetainUntilDate": self.until(now)}

    def describe(self) -> str:
        return f"{self.mode.lower()} for {self.days} day{'s' if self.days != 1 else ''}"


@dataclass(frozen=True)
class Retention:
    """What S3 says of one stored object's current version."""

    key: str
    mode: str | None
    until: datetime | None
    written: datetime | None
    """LastModified: when this version was written."""
    version_id: str | None

    def shortfall(self, policy: LockPolicy) -> str | None:
        """Why this retention is short of ``policy`` (None when it is not): none at all, a
        weaker mode, or an end earlier than the write plus the period (less ``SKEW``)."""
        if self.mode is None or self.until is None:
            return "no retention"
        rank = MODES.index(self.mode) if self.mode in MODES else -1
        if rank < MODES.index(policy.mode):
            return f"mode {self.mode.lower()}, {policy.mode.lower()} asked"
        if self.written is not None and self.until < self.written + policy.period - SKEW:
            kept = self.until - self.written
            return f"retained {_days(kept)} after it was written, {policy.days} days asked"
        return None

    def extended(self, policy: LockPolicy, now: datetime) -> tuple[str, datetime] | None:
        """(mode, until) to set so that this object is retained by ``policy`` from ``now`` on,
        never shorter nor weaker than it is; None when it already is."""
        want = policy.until(now)
        mode = policy.mode
        if self.mode == "COMPLIANCE":
            mode = "COMPLIANCE"  # never downgraded
        until = want if self.until is None else max(self.until, want)
        if self.mode == mode and self.until is not None and self.until >= want:
            return None
        return mode, until


def from_head(key: str, head: dict[str, Any]) -> Retention:
    """A Retention from a HeadObject answer (aiobotocore's dict)."""
    until = head.get("ObjectLockRetainUntilDate")
    written = head.get("LastModified")
    return Retention(
        key=key,
        mode=head.get("ObjectLockMode"),
        until=until.astimezone(UTC) if isinstance(until, datetime) else None,
        written=written.astimezone(UTC) if isinstance(written, datetime) else None,
        version_id=head.get("VersionId"),
    )


async def read_retention(store: S3Store, keys: Sequence[str], concurrency: int) -> list[Retention]:
    """Each key's current retention by HEAD, ``concurrency`` at once, in the keys' order;
    ObjectNotFoundError for a key that is not there. HEAD answers with the lock headers when the
    caller may read retention (s3:GetObjectRetention), which is all a verifier needs."""
    slots = asyncio.Semaphore(concurrency)

    async def one(key: str) -> Retention:
        async with slots:
            try:
                return from_head(key, await store.head_key(key, f"reading the retention of {key}"))
            except StoreError as e:
                if store.not_found(e):
                    raise ObjectNotFoundError(f"{key} is not in the store") from None
                raise

    return list(await asyncio.gather(*(one(k) for k in keys)))


async def put_retention(
    store: S3Store, held: Retention, mode: str, until: datetime, what: str
) -> None:
    """Retain the version ``held`` names in ``mode`` until ``until``. Only ever called to
    lengthen (``Retention.extended``): S3 refuses to shorten COMPLIANCE, and nothing here asks
    for the governance bypass that shortening GOVERNANCE would need."""
    bucket = store.settings.bucket
    version = {"VersionId": held.version_id} if held.version_id else {}
    await store.call(
        f"setting the retention of {held.key} ({what})",
        lambda c: c.put_object_retention(
            Bucket=bucket, Key=held.key, Retention={"Mode": mode, "RetainUntilDate": until},
            **version,
        ),
    )  # fmt: skip


def _days(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:.2f} days" if days < 10 else f"{days:.0f} days"
