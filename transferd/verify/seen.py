"""What this verifier has seen before: the newest manifest per store and job, kept across runs.

A store that serves manifests 1..N with valid signatures and an intact chain may still be lying
by omission: if it deletes manifest N+1 (or puts N's bytes back under N+1's name) the rest still
verifies. Only a reader who remembers having seen N+1 can tell, so every verify records the
newest manifest it trusted, and the next one refuses to go below it (DESIGN-BRIEF "Manifest": a
verifier MUST check sequence >= the newest it has seen). It also remembers that manifest's
SHA-256, so a different manifest under a number already seen (a fork) is caught too.

File: ``<state dir>/verify-seen.json`` (``--seen-state`` overrides), mode 0600::

    {"version": 1, "seen": [{"store": "/srv/store", "job": "snds-2026", "job_id": "<32 hex>",
                             "sequence": 7, "sha256": "<hex of manifest 7>",
                             "updated": "2026-11-22T21:00:00Z"}, ...]}

Entries are keyed by store (its path or URL) and job_id. Updates hold an ``flock`` on a sibling
lock file, re-read the file, keep the larger sequence, and replace the file atomically
(util/durable.py: temp file, fsync, rename, fsync of the directory), so two verifiers running at
once never lose a record and a crash never leaves half a file. A file that cannot be read or written
is a StateError naming it (exit 9).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferd.errors import ConfigError
from transferd.send.state import default_state_dir
from transferd.util import statedir
from transferd.util.durable import replace_file

SEEN_FILE = "verify-seen.json"
SEEN_VERSION = 1
_HEX = re.compile(r"[0-9a-f]+")


def default_seen_path() -> Path:
    return default_state_dir() / SEEN_FILE


@dataclass(frozen=True)
class Seen:
    """The newest manifest a verifier trusted for one job at one store."""

    store: str
    job: str
    job_id: str
    sequence: int
    sha256: str
    updated: str

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "job": self.job,
            "job_id": self.job_id,
            "sequence": self.sequence,
            "sha256": self.sha256,
            "updated": self.updated,
        }


class SeenState:
    """The records of one seen-state file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries = _load(path)

    def for_job_id(self, store: str, job_id: str) -> Seen | None:
        return next((e for e in self.entries if e.store == store and e.job_id == job_id), None)

    def for_job_name(self, store: str, job: str) -> Seen | None:
        """The newest record for a job name at a store, whatever its job id (used when the store
        holds no manifest at all, so there is no job id to look up)."""
        found = [e for e in self.entries if e.store == store and e.job == job]
        return max(found, key=lambda e: e.sequence, default=None)

    def record(self, seen: Seen) -> None:
        """Remember ``seen`` unless a record of a newer manifest is already there."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise statedir.os_error("write the seen state", lock_path, e) from None
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
            except OSError as e:
                raise statedir.os_error("lock the seen state", lock_path, e) from None
            entries = _load(self.path)
            old = next(
                (e for e in entries if (e.store, e.job_id) == (seen.store, seen.job_id)), None
            )
            if old is not None and old.sequence > seen.sequence:
                self.entries = entries
                return
            entries = [e for e in entries if e is not old] + [seen]
            entries.sort(key=lambda e: (e.store, e.job, e.job_id))
            _write(self.path, entries)
            self.entries = entries
        finally:
            os.close(lock_fd)


def _load(path: Path) -> list[Seen]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as e:
        raise statedir.os_error("read the seen state", path, e) from None
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != SEEN_VERSION:
            raise ValueError("unknown version")
        return [_entry(item) for item in data["seen"]]
    except (ValueError, KeyError, TypeError) as e:
        # Refuse rather than start afresh: forgetting what was seen is exactly what a rollback
        # needs, so a damaged file must be looked at, not silently replaced.
        raise ConfigError(
            f"seen state {path} is damaged: {e}",
            hint="restore it from a backup; deleting it forgets which manifests were seen",
        ) from None


def _entry(item: Any) -> Seen:
    if not isinstance(item, dict):
        raise ValueError("entry is not an object")
    seq = item["sequence"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise ValueError("sequence must be a positive integer")
    for name in ("store", "job", "job_id", "sha256", "updated"):
        if not isinstance(item[name], str):
            raise ValueError(f"{name} must be a string")
    if not _HEX.fullmatch(item["job_id"]) or not _HEX.fullmatch(item["sha256"]):
        raise ValueError("job_id and sha256 must be hex")
    return Seen(item["store"], item["job"], item["job_id"], seq, item["sha256"], item["updated"])


def _write(path: Path, entries: list[Seen]) -> None:
    data = json.dumps(
        {"version": SEEN_VERSION, "seen": [e.to_json() for e in entries]}, indent=1, sort_keys=True
    ).encode()
    try:
        replace_file(path, data + b"\n", mode=0o600)
    except OSError as e:
        raise statedir.os_error("write the seen state", path, e) from None
