"""Verify a whole copy: its chain of copy manifests, then every job as ``transferd verify`` does.

With the sender's public key only, in order:

1. every copy manifest 1..N is signed by the sender, stored under its own number, of this copy,
   and follows the one before it (same copy id, next number, ``previous`` = SHA-256 of it);
2. the newest is not older than (nor different from) the newest this verifier saw before at this
   store (verify/seen.py, keyed by the copy id);
3. every job the newest copy manifest lists has a recorded manifest (else the copy is
   incomplete), and each job verifies as a job (verify/run.py: its own chain, rollback, every
   object present, whole and untouched, nothing extra), and the job manifest the copy manifest
   names is in that job's chain with the SHA-256 it names.

The verdict is the most serious category found (errors.py PRECEDENCE) over the copy's own
findings and every job's; the exit code follows from it as for one job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transferd import __version__
from transferd.core import copy as core_copy
from transferd.core.copy import SignedCopyManifest
from transferd.core.keys import SenderPublicKey
from transferd.errors import (
    PRECEDENCE,
    VERDICT_EXIT_CODES,
    VERDICT_OK,
    VERDICT_TEXT,
    FormatError,
    IntegrityError,
    JobNotFoundError,
    ObjectNotFoundError,
    StoreError,
)
from transferd.report.model import COPY_REPORT_TYPE, SCHEMA_VERSION, Report
from transferd.stores.base import CopyStore
from transferd.verify.manifests import utc
from transferd.verify.run import VerifyOptions, verify_copy
from transferd.verify.seen import Seen

SERIES = "manifests"


@dataclass
class CopyReport:
    copy: str
    store: str
    sender: str
    copy_manifests: int = 0
    newest: dict[str, Any] | None = None
    findings: list[tuple[str, str]] = field(default_factory=list)
    """(category, message) found at the level of the copy."""
    jobs: dict[str, Report | None] = field(default_factory=dict)
    """Every job the newest copy manifest lists; None when it has no manifest recorded."""

    def fail(self, category: str, message: str) -> None:
        self.findings.append((category, message))

    @property
    def verdict(self) -> str:
        found = {c for c, _ in self.findings}
        found |= {r.verdict for r in self.jobs.values() if r is not None}
        return next((c for c in PRECEDENCE if c in found), VERDICT_OK)

    @property
    def exit_code(self) -> int:
        return VERDICT_EXIT_CODES[self.verdict]

    def summary(self) -> str:
        done = sum(1 for r in self.jobs.values() if r is not None)
        return (
            f"copy {self.copy}: {VERDICT_TEXT[self.verdict]} ({done} of {len(self.jobs)} jobs "
            f"recorded, {len(self.findings)} findings on the copy itself)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "type": COPY_REPORT_TYPE,
            "tool": {"name": "transferd", "version": __version__},
            "copy": self.copy,
            "store": self.store,
            "sender": self.sender,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "summary": self.summary(),
            "copy_manifests": self.copy_manifests,
            "newest": self.newest,
            "findings": [{"category": c, "message": m} for c, m in self.findings],
            "jobs": {
                name: None if r is None else {"verdict": r.verdict, "report": r.to_json()}
                for name, r in self.jobs.items()
            },
        }


async def verify_whole_copy(
    store: CopyStore, copy: str, sender: SenderPublicKey, options: VerifyOptions | None = None
) -> CopyReport:
    options = options or VerifyOptions()
    report = CopyReport(copy, store.description, sender.to_text())
    newest = await _check_chain(store, copy, sender, report)
    if newest is None:
        return report
    _check_seen(store, newest, options, report)
    for ref in newest.body.jobs:
        if ref.sequence is None or ref.sha256 is None:
            report.jobs[ref.job] = None
            report.fail("incomplete", f"job {ref.job} has no finished manifest in the copy")
            continue
        job_report = await verify_copy(store, ref.job, sender, options)
        report.jobs[ref.job] = job_report
        named = next((m for m in job_report.manifests if m.get("sequence") == ref.sequence), None)
        if named is None:
            report.fail(
                "untrusted", f"manifest {ref.sequence} of job {ref.job}, named by the copy "
                "manifest, is not in the job's chain"
            )  # fmt: skip
        elif named.get("sha256") != ref.sha256 or not named.get("trusted"):
            report.fail(
                "untrusted", f"manifest {ref.sequence} of job {ref.job} is not the one the copy "
                f"manifest names (sha256 {ref.sha256})"
            )  # fmt: skip
    return report


async def _check_chain(
    store: CopyStore, copy: str, sender: SenderPublicKey, report: CopyReport
) -> SignedCopyManifest | None:
    """The newest trusted copy manifest, every link checked; None after a failure."""
    try:
        numbers = await store.list_copy_records(copy, SERIES)
    except StoreError as e:
        report.fail("unreadable", f"the copy manifests could not be listed: {e.message}")
        return None
    report.copy_manifests = len(numbers)
    if not numbers:
        raise JobNotFoundError(
            f"copy {copy} has no copy manifest at {store.description}",
            hint="check the copy name and the store; agents write it as jobs finish",
            copy=copy,
            store=store.description,
        )
    previous: SignedCopyManifest | None = None
    for expected, number in enumerate(numbers, 1):
        if number != expected:
            report.fail("untrusted", f"copy manifest {expected} is missing from the store")
            return None
        try:
            data = await store.get_copy_record(copy, SERIES, number)
            signed = core_copy.verify(data, sender)
            if signed.body.sequence != number or signed.body.copy != copy:
                raise IntegrityError(
                    f"copy manifest stored as {number} of {copy} is number {signed.body.sequence} "
                    f"of copy {signed.body.copy}"
                )
            core_copy.check_succession(previous, signed)
        except ObjectNotFoundError:
            report.fail("untrusted", f"copy manifest {number} disappeared while being verified")
            return None
        except StoreError as e:
            report.fail("unreadable", f"copy manifest {number} could not be read: {e.message}")
            return None
        except (FormatError, IntegrityError) as e:
            report.fail("untrusted", f"copy manifest {number}: {e.message}")
            return None
        previous = signed
    assert previous is not None  # noqa: S101 - numbers is not empty
    body = previous.body
    report.newest = {"sequence": body.sequence, "sha256": previous.digest, "created": body.created,
                     "copy_id": body.copy_id}  # fmt: skip
    return previous


def _check_seen(
    store: CopyStore, newest: SignedCopyManifest, options: VerifyOptions, report: CopyReport
) -> None:
    if options.seen is None:
        return
    body = newest.body
    seen = options.seen.for_job_id(store.description, body.copy_id)
    if seen is not None and seen.sequence > body.sequence:
        report.fail(
            "untrusted",
            f"copy {body.copy} is at copy manifest {body.sequence} but {seen.sequence} was seen "
            f"on {seen.updated}: the store was rolled back",
        )
        return
    if seen is not None and seen.sequence == body.sequence and seen.sha256 != newest.digest:
        report.fail("untrusted", f"copy manifest {body.sequence} is not the one seen before")
        return
    options.seen.record(
        Seen(
            store.description,
            f"copy:{body.copy}",
            body.copy_id,
            body.sequence,
            newest.digest,
            utc(options.clock()),
        )
    )
