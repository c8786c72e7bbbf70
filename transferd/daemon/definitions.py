"""Job definitions the daemon keeps in its state directory, so jobs outlive the process.

<state>/daemon/jobs/<name>.json      0600, one per job, replaced atomically

A definition says what to copy (source and, for a database, its options; store, recipients,
bandwidth limit) and what the operator last asked for (``desired``: run, pause, cancel) and how
the job ended (``outcome``). It never holds a key: the sender key comes from the daemon's
configuration, the job key lives beside the journal (send/state.py). What was acknowledged lives
in the journal, not here, so losing a definition loses no progress: ``transferd jobs start``
with the same arguments continues.

Each write goes to a temporary file, is fsynced and renamed over the old one, then the directory is
fsynced (util/durable.py): a crash leaves the old definition or the new one. A directory or file
that cannot be written is a StateError naming it (exit 9).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from transferd.util import statedir
from transferd.util.durable import fsync_directory, replace_file

log = logging.getLogger("transferd.daemon")

RUN, PAUSE, CANCEL = "run", "pause", "cancel"
DONE, FAILED = "done", "failed"


@dataclass
class JobDefinition:
    name: str
    source: str
    store: str
    recipients: list[str] = field(default_factory=list)
    limit: int | None = None
    """Bytes per second for this job; None: the configured ``job_bandwidth``; 0: no limit."""
    desired: str = RUN
    """What the operator last asked: run, pause or cancel."""
    outcome: str | None = None
    """done or failed once the job ended (None while it should run)."""
    created: str = ""
    finished: str | None = None
    last_error: str | None = None
    sequence: int | None = None
    """The newest manifest this daemon published for the job."""
    postgres: dict[str, Any] | None = None
    """A PostgreSQL source's options (``PgOptions``, sources/postgres/source.py): ``jobs`` and the
    ``selection`` (pg_dump's patterns, --no-owner, …); None for other sources or the defaults."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobDefinition:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class Definitions:
    """The directory of definitions: load all at start, save one at each change."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / "daemon" / "jobs"
        for d in (state_dir, state_dir / "daemon", self.directory):
            try:
                d.mkdir(mode=0o700, exist_ok=True, parents=True)
            except OSError as e:
                raise statedir.os_error("create the state directory", d, e) from None

    def load_all(self) -> list[JobDefinition]:
        out = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                out.append(JobDefinition.from_json(json.loads(path.read_text())))
            except (OSError, ValueError, TypeError) as e:
                # One damaged file must not keep every other job from running.
                log.error("ignoring damaged job definition %s: %s", path, e)
        return out

    def save(self, definition: JobDefinition) -> None:
        path = self.directory / f"{definition.name}.json"
        data = json.dumps(definition.to_json(), indent=2, sort_keys=True).encode() + b"\n"
        try:
            replace_file(path, data, mode=0o600)
        except OSError as e:
            raise statedir.os_error(
                f"save the definition of job {definition.name}", path, e
            ) from None

    def remove(self, name: str) -> None:
        path = self.directory / f"{name}.json"
        try:
            path.unlink(missing_ok=True)
            fsync_directory(self.directory)
        except OSError as e:
            raise statedir.os_error(f"remove the definition of job {name}", path, e) from None
