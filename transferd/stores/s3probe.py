"""Probe, then trust: what an S3 store honours, found by trying it, and recorded in the store.

S3-compatible servers differ in exactly the features a copy leans on, and several accept a
header they then ignore (researched: rclone serve s3 lets a second ``If-None-Match: *`` PUT
through and echoes lock headers it does not enforce; Ceph 16 refuses ``If-Match`` even with the
right ETag). So nothing is assumed from a server's name or a HEAD's echo. Before the first write
of a process, the store tries each feature on scratch keys under ``PREFIX/.transferd-probe/``:

1. ``If-None-Match: *`` twice on a new key: the second must be refused (412);
2. ``If-Match`` with a wrong ETag (must be refused) and with the right one (must pass), apart
   from 1: a store may honour one and not the other;
3. the bucket's Object Lock configuration (``ObjectLockEnabled``, a default retention rule, which
   would lock lease records too) and its versioning;
4. with a lock policy asked, enforcement itself: a GOVERNANCE version retained for
   ``LOCK_PROBE_SECONDS`` must come back with a version id, and deleting that version must be
   refused. It is then removed with the governance bypass (or, refused that, left to expire).

What it found is kept in ``PREFIX/.transferd-probe/record.json`` (every agent and a later
verifier can read what this store was found to honour, and when)::

    {"endpoint": "https://s3.gra.example", "bucket": "snds-copy", "prefix": "v1/",
     "probed": "2026-12-07T11:00:00Z", "server": "ministack", "if_none_match": true,
     "if_match": true, "versioning": "Enabled", "object_lock": true,
     "default_retention": null, "lock_enforced": true}

Steps 1-3 run again in every process (six small requests); step 4, which waits on nothing but
costs a locked version, runs once per store. A feature the record says was honoured but that is
not any more (a proxy put in front, another bucket under the name) stops the process with an
error naming it, rather than leaving agents to race on a store that no longer refuses the loser.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from transferd.errors import ObjectNotFoundError, PermanentStoreError, StoreError
from transferd.stores.s3errors import status_and_code
from transferd.stores.s3lock import LockPolicy

if TYPE_CHECKING:
    from transferd.stores.base import Store
    from transferd.stores.s3 import S3Store

log = logging.getLogger(__name__)

PROBE_DIR = ".transferd-probe/"
RECORD = PROBE_DIR + "record.json"
LOCK_PROBE_SECONDS = 20
"""How long the probe's locked version is retained: long against the clock skew S3 tolerates
between writer and server (a retention already past on the server's clock locks nothing, and the
probe would wrongly find no enforcement), short enough to expire soon if it cannot be removed."""
FEATURES = ("if_none_match", "if_match", "object_lock", "lock_enforced")


@dataclass
class ProbeRecord:
    endpoint: str
    bucket: str
    prefix: str
    probed: str
    server: str
    if_none_match: bool
    if_match: bool
    versioning: str | None
    object_lock: bool
    default_retention: str | None
    lock_enforced: bool | None
    """None: not probed (no lock policy was asked yet)."""

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> ProbeRecord | None:
        """The record, or None when it does not parse (rewritten by the next probe)."""
        try:
            doc = json.loads(data)
            return cls(**{f.name: doc[f.name] for f in fields(cls)})
        except (ValueError, KeyError, TypeError):
            return None

    def lost(self, now: ProbeRecord) -> list[str]:
        """The features this record found honoured that ``now`` does not."""
        return [f for f in FEATURES if getattr(self, f) is True and getattr(now, f) is False]


def utc_text(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def probe(store: S3Store, lock: LockPolicy | None) -> ProbeRecord:
    """What the store honours now: steps 1 to 3 always, 4 when asked for (module docstring),
    checked against the record kept in the store, which is rewritten when it changes."""
    s = store.settings
    previous = await _read_record(store)
    if_none_match, if_match, server = await _conditional(store)
    object_lock, default_retention = await _lock_configuration(store)
    record = ProbeRecord(
        endpoint=s.endpoint or f"AWS {s.region}",
        bucket=s.bucket,
        prefix=s.prefix,
        probed=utc_text(datetime.now(UTC)),
        server=server,
        if_none_match=if_none_match,
        if_match=if_match,
        versioning=await _versioning(store),
        object_lock=object_lock,
        default_retention=default_retention,
        lock_enforced=None,
    )
    if previous is not None and previous.lock_enforced is not None and object_lock:
        record.lock_enforced = previous.lock_enforced  # probed once per store: trusted since
        record.probed = previous.probed
    if lock is not None and record.lock_enforced is None:
        record.lock_enforced = await _lock_enforced(store) if object_lock else False
    lost = previous.lost(record) if previous is not None else []
    if lost:
        raise PermanentStoreError(
            f"{s.description}: the store no longer honours {_names(lost)}, which it did when "
            f"probed on {previous.probed if previous else '?'}",
            hint="check what answers at the endpoint (a proxy in front?) and the bucket; remove "
            f"{s.prefix}{RECORD} once the store is known good to probe it afresh",
        )
    if previous is None or _changed(previous, record):
        await store.put_plain(s.prefix + RECORD, record.to_bytes(), "recording the store's probe")
    if record.default_retention:
        log.warning(
            "%s: the bucket has a default retention rule (%s): lease records are locked too "
            "and cannot be pruned; transferd sets retention on what it stores itself",
            s.description, record.default_retention,
        )  # fmt: skip
    return record


def check_lock(store: S3Store, record: ProbeRecord, lock: LockPolicy) -> None:
    """Refuse to store a locked copy where the lock would not hold."""
    s = store.settings
    if not record.object_lock:
        raise PermanentStoreError(
            f"{s.description}: Object Lock is not enabled on bucket {s.bucket}, so "
            f"--object-lock {lock.days} cannot hold",
            hint="create the bucket with Object Lock (aws s3api create-bucket "
            "--object-lock-enabled-for-bucket), or store without --object-lock",
        )
    if not record.lock_enforced:
        raise PermanentStoreError(
            f"{s.description}: the bucket says Object Lock is enabled, but a locked version "
            "could be deleted: the store does not enforce it",
            hint="use an S3 service that enforces Object Lock, or store without --object-lock",
        )


async def shared_writes_needed(store: Store, agents: int) -> None:
    """Refuse ``agents`` > 1 on a store whose exclusive writes are not atomic: an S3 store that
    does not honour If-None-Match (another kind of store is exclusive by construction)."""
    if agents <= 1:
        return
    s3 = unwrap_s3(store)
    if s3 is None or s3.settings.conditional_writes == "yes":
        return
    if s3.settings.conditional_writes == "no" or not (await s3.probed()).if_none_match:
        raise PermanentStoreError(
            f"{s3.description}: the store does not honour If-None-Match (conditional writes), "
            f"which {agents} agents sharing it need",
            hint="run one agent, or use a store that honours conditional writes (AWS S3, "
            "MinIO, Ceph, ministack); .transferd-probe/record.json says what was found",
        )


def unwrap_s3(store: Store) -> S3Store | None:
    """The S3Store inside the retry and throttle wrappers, if the store is one."""
    from transferd.stores.s3 import S3Store

    seen: Any = store
    while not isinstance(seen, S3Store) and hasattr(seen, "inner"):
        seen = seen.inner
    return seen if isinstance(seen, S3Store) else None


def _changed(before: ProbeRecord, after: ProbeRecord) -> bool:
    a, b = asdict(before), asdict(after)
    a.pop("probed"), b.pop("probed")
    return a != b


def _names(features: list[str]) -> str:
    text = {"if_none_match": "If-None-Match", "if_match": "If-Match",
            "object_lock": "Object Lock", "lock_enforced": "Object Lock enforcement"}  # fmt: skip
    return ", ".join(text[f] for f in features)


def _refused(exc: StoreError, *codes: str) -> bool:
    status, code, _ = status_and_code(exc.__cause__ or exc)
    return code in codes or str(status) in codes


async def _read_record(store: S3Store) -> ProbeRecord | None:
    try:
        data = await store.read_key(store.settings.prefix + RECORD, "the store's probe record")
    except ObjectNotFoundError:
        return None
    return ProbeRecord.from_bytes(data)


async def _conditional(store: S3Store) -> tuple[bool, bool, str]:
    """(If-None-Match honoured, If-Match honoured, the Server header) from one scratch key."""
    key = f"{store.settings.prefix}{PROBE_DIR}{os.urandom(16).hex()}"
    what = "probing conditional writes"
    try:
        first = await store.put_plain(key, b"1", what, IfNoneMatch="*")
        server = str(first.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("server", ""))
        try:
            await store.put_plain(key, b"2", what, IfNoneMatch="*")
            if_none_match = False  # the second went through: the header is ignored
        except StoreError as e:
            if not _refused(e, "412", "PreconditionFailed", "501", "NotImplemented"):
                raise
            if_none_match = _refused(e, "412", "PreconditionFailed")
        current = await store.head_key(key, what)
        if_match = True
        try:
            await store.put_plain(key, b"3", what, IfMatch='"0123456789abcdef0123456789abcdef"')
            if_match = False  # a wrong ETag was let through
        except StoreError as e:
            if not _refused(e, "412", "PreconditionFailed", "501", "NotImplemented"):
                raise
            if_match = _refused(e, "412", "PreconditionFailed")
        if if_match:
            try:
                await store.put_plain(key, b"4", what, IfMatch=current["ETag"])
            except StoreError as e:
                if not _refused(e, "412", "PreconditionFailed", "501", "NotImplemented"):
                    raise
                if_match = False  # the right ETag was refused (Ceph 16)
    finally:
        await _remove(store, key)
    return if_none_match, if_match, server


async def _lock_configuration(store: S3Store) -> tuple[bool, str | None]:
    """(ObjectLockEnabled, the default retention rule as text or None)."""
    bucket = store.settings.bucket
    try:
        answer = await store.call(
            "reading the bucket's Object Lock configuration",
            lambda c: c.get_object_lock_configuration(Bucket=bucket),
        )
    except StoreError as e:
        if _refused(e, "404", "ObjectLockConfigurationNotFoundError", "501", "NotImplemented"):
            return False, None
        raise
    config = answer.get("ObjectLockConfiguration") or {}
    rule = (config.get("Rule") or {}).get("DefaultRetention")
    default = None
    if rule:
        period = f"{rule['Days']} days" if "Days" in rule else f"{rule.get('Years')} years"
        default = f"{str(rule.get('Mode', '')).lower()} for {period}"
    return config.get("ObjectLockEnabled") == "Enabled", default


async def _versioning(store: S3Store) -> str | None:
    bucket = store.settings.bucket
    try:
        answer = await store.call(
            "reading the bucket's versioning", lambda c: c.get_bucket_versioning(Bucket=bucket)
        )
    except StoreError as e:
        if _refused(e, "501", "NotImplemented", "404"):
            return None
        raise
    status = answer.get("Status")
    return status if isinstance(status, str) else None


async def _lock_enforced(store: S3Store) -> bool:
    """Whether a version retained in GOVERNANCE mode really cannot be deleted (step 4)."""
    s = store.settings
    key = f"{s.prefix}{PROBE_DIR}{os.urandom(16).hex()}"
    what = "probing Object Lock"
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=LOCK_PROBE_SECONDS)
    try:
        answer = await store.put_plain(
            key, b"", what, ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until
        )
    except StoreError as e:
        log.info("%s: a locked write was refused (%s): Object Lock is not usable", s.description,
                 e.message)  # fmt: skip
        return False
    version = answer.get("VersionId")
    if not version:
        await _remove(store, key)
        return False  # retention without versions cannot hold: the headers were only echoed
    bucket = s.bucket
    try:
        await store.call(what, lambda c: c.delete_object(Bucket=bucket, Key=key, VersionId=version))
    except StoreError as e:
        if not _refused(e, "403", "AccessDenied"):
            raise
    else:
        return False  # deleted while retained: not enforced
    try:
        await store.call(
            "removing the Object Lock probe",
            lambda c: c.delete_object(
                Bucket=bucket, Key=key, VersionId=version, BypassGovernanceRetention=True
            ),
        )
    except StoreError:
        log.info("%s: the Object Lock probe %s stays until %s (no governance bypass)",
                 s.description, key, utc_text(until))  # fmt: skip
    return True


async def _remove(store: S3Store, key: str) -> None:
    """Remove a scratch key: each of its versions where the bucket keeps versions (a plain
    delete there only adds a delete marker), else the key."""
    bucket = store.settings.bucket
    what = "removing a probe key"
    try:
        listed = await store.call(what, lambda c: c.list_object_versions(Bucket=bucket, Prefix=key))
        versions = [
            v["VersionId"]
            for group in ("Versions", "DeleteMarkers")
            for v in listed.get(group, [])
            if v.get("Key") == key and v.get("VersionId") not in (None, "null")
        ]
    except StoreError:
        versions = []  # no versioning API (rclone serve s3)
    try:
        if not versions:
            await store.call(what, lambda c: c.delete_object(Bucket=bucket, Key=key))
        for version in versions:

            def delete(c: Any, v: str = version) -> Any:
                return c.delete_object(Bucket=bucket, Key=key, VersionId=v)

            await store.call(what, delete)
    except StoreError as e:
        log.info("could not remove the probe key %s: %s", key, e.message)
