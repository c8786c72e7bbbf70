"""The verify report as a value: checks, failures, counts, and the verdict they add up to.

A verifier fills a :class:`Report`; ``to_json()`` gives the document of protocol/REPORT.md
(``schema_version`` 1) that is hashed, signed, saved and rendered. Every failure has a *kind*
(what was found) that belongs to one *category* (what it means for the copy); the categories
decide the verdict and the exit code, in the order of ``PRECEDENCE`` (both in errors.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transferd.errors import PRECEDENCE, VERDICT_EXIT_CODES, VERDICT_OK, VERDICT_TEXT

SCHEMA_VERSION = 1
REPORT_TYPE = "transferd-verify-report"
COPY_REPORT_TYPE = "transferd-copy-verify-report"
"""``verify --copy``: the copy's own findings and every job's report (protocol/REPORT.md 4.1)."""

# kind -> (category, check id)
KINDS: dict[str, tuple[str, str]] = {
    "signature": ("untrusted", "manifest-signatures"),
    "manifest-format": ("untrusted", "manifest-signatures"),
    "chain": ("untrusted", "manifest-chain"),
    "manifest-missing": ("untrusted", "manifest-chain"),
    "rollback": ("untrusted", "not-rolled-back"),
    "inconsistent": ("untrusted", "manifest-totals"),
    "missing": ("incomplete", "objects-present"),
    "truncated": ("incomplete", "objects-complete"),
    "altered": ("altered", "objects-intact"),
    "extra": ("altered", "no-extra-objects"),
    "unreadable": ("unreadable", "store-readable"),
    "chunk": ("altered", "chunks-open"),
    "stream": ("altered", "streams-intact"),
    "catalog": ("altered", "catalog-totals"),
    "source-only": ("differs", "matches-source"),
    "copy-only": ("differs", "matches-source"),
    "differs": ("differs", "matches-source"),
}

CHECK_TITLES: dict[str, str] = {
    "store-readable": "the store and every object could be read",
    "manifest-signatures": "every manifest is signed by the expected sender",
    "manifest-chain": "manifests 1 to newest form one hash-linked chain of this job",
    "not-rolled-back": "the newest manifest is not older than, nor different from, one seen before",
    "manifest-totals": "each manifest's totals agree with its object lists",
    "objects-present": "every object a manifest names is in the store",
    "objects-complete": "no object is shorter than its signed size",
    "objects-intact": "every object's bytes hash to its signed SHA-256",
    "no-extra-objects": "the store holds no object that no manifest names",
    "chunks-open": "every chunk opens under its AEAD tag and hashes to its chunk id",
    "streams-intact": "every file's and table's size and BLAKE3 match the catalog",
    "catalog-totals": "the catalog's totals match its entries",
    "matches-source": "the copy matches the source: tree, kinds, modes, links, sizes, BLAKE3",
}
OBJECT_CHECKS = (
    "manifest-totals", "objects-present", "objects-complete", "objects-intact", "no-extra-objects",
)  # fmt: skip
BASE_CHECKS = ("store-readable", "manifest-signatures", "manifest-chain", "not-rolled-back",
               *OBJECT_CHECKS)  # fmt: skip
DEEP_CHECKS = ("chunks-open", "streams-intact", "catalog-totals")
AGAINST_CHECKS = ("matches-source",)

FAILURES_PER_KIND = 100_000
"""Failures listed per kind; counts stay exact beyond it. A store that lost everything would
otherwise make a report of millions of identical lines, which helps nobody read it."""


@dataclass(frozen=True)
class Failure:
    kind: str
    message: str
    object: str | None = None
    object_kind: str | None = None
    manifest: int | None = None
    path: str | None = None
    offset: int | None = None
    chunk: str | None = None
    expected: dict[str, Any] | None = None
    actual: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown failure kind {self.kind!r}")

    @property
    def category(self) -> str:
        return KINDS[self.kind][0]

    @property
    def check(self) -> str:
        return KINDS[self.kind][1]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "category": self.category,
            "check": self.check,
            "message": self.message,
        }
        for name in (
            "object", "object_kind", "manifest", "path", "offset", "chunk", "expected", "actual",
        ):  # fmt: skip
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass
class Report:
    """What one verify run found. Fields not known (no key, no source) stay None."""

    job: str
    store: str
    sender: str
    sender_fingerprint: str
    started: str
    tool_version: str
    finished: str = ""
    duration_ms: int = 0
    job_id: str | None = None
    manifests: list[dict[str, Any]] = field(default_factory=list)
    seen_before: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    deep: bool = False
    against: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    throughput: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    """Check id -> why it could not run (it is reported as ``skipped``, never as ``pass``)."""
    notes: dict[str, str] = field(default_factory=dict)
    """Check id -> what was checked, shown beside a pass."""
    failures: list[Failure] = field(default_factory=list)
    failure_counts: dict[str, int] = field(default_factory=dict)

    def fail(self, failure: Failure) -> None:
        n = self.failure_counts.get(failure.kind, 0) + 1
        self.failure_counts[failure.kind] = n
        if n <= FAILURES_PER_KIND:
            self.failures.append(failure)

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def skip(self, check: str, why: str) -> None:
        self.skipped.setdefault(check, why)

    @property
    def verdict(self) -> str:
        found = {KINDS[k][0] for k, n in self.failure_counts.items() if n}
        return next((c for c in PRECEDENCE if c in found), VERDICT_OK)

    @property
    def exit_code(self) -> int:
        return VERDICT_EXIT_CODES[self.verdict]

    def check_ids(self) -> list[str]:
        ids = list(BASE_CHECKS)
        if self.deep:
            ids += DEEP_CHECKS
        elif self.against is not None:
            ids.append("catalog-totals")  # the catalog is walked to compare it, not the chunks
        if self.against is not None:
            ids += AGAINST_CHECKS
        return ids

    def checks(self) -> list[dict[str, Any]]:
        per_check: dict[str, int] = {}
        for kind, n in self.failure_counts.items():
            per_check[KINDS[kind][1]] = per_check.get(KINDS[kind][1], 0) + n
        out = []
        for check in self.check_ids():
            failed = per_check.get(check, 0)
            if failed:
                result, detail = "fail", f"{failed} failure{'s' if failed != 1 else ''}"
            elif check in self.skipped:
                result, detail = "skipped", self.skipped[check]
            else:
                result, detail = "pass", self.notes.get(check, "")
            out.append(
                {
                    "id": check,
                    "title": CHECK_TITLES[check],
                    "result": result,
                    "failures": failed,
                    "detail": detail,
                }
            )
        return out

    def summary(self) -> str:
        if self.verdict == VERDICT_OK:
            return f"job {self.job}: {VERDICT_TEXT[VERDICT_OK]}"
        parts = [
            f"{n} {kind}" for kind, n in sorted(self.failure_counts.items(), key=_kind_order) if n
        ]
        return f"job {self.job}: {VERDICT_TEXT[self.verdict]} ({', '.join(parts)})"

    def to_json(self) -> dict[str, Any]:
        """The report document without its hash and signature (see transferd.report.seal)."""
        omitted = {
            k: n - FAILURES_PER_KIND
            for k, n in sorted(self.failure_counts.items())
            if n > FAILURES_PER_KIND
        }
        return {
            "schema_version": SCHEMA_VERSION,
            "type": REPORT_TYPE,
            "tool": {"name": "transferd", "version": self.tool_version},
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "summary": self.summary(),
            "job": {"name": self.job, "job_id": self.job_id, "store": self.store},
            "sender": {"key": self.sender, "fingerprint": self.sender_fingerprint},
            "source": self.source,
            "mode": {"deep": self.deep, "against": self.against},
            "started": self.started,
            "finished": self.finished,
            "duration_ms": self.duration_ms,
            "manifests": self.manifests,
            "seen_before": self.seen_before,
            "counts": dict(sorted(self.counts.items())),
            "throughput": dict(sorted(self.throughput.items())),
            "checks": self.checks(),
            "failure_counts": dict(sorted(self.failure_counts.items())),
            "failures": [f.to_json() for f in self.failures],
            "failures_omitted": omitted,
        }


def _kind_order(item: tuple[str, int]) -> tuple[int, str]:
    return (PRECEDENCE.index(KINDS[item[0]][0]), item[0])
