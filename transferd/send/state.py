"""A job's local state on the sending host: its directory, lock, job key and journal.

<state>/jobs/<job>/          0700
    job.key                  0600  K_job (hex) and the job id: drawn here, or for a job of a
                                   copy derived from the copy secret (provision_job_key)
    journal.sqlite           WAL   what the host acknowledged (send/journal.py)
    lock                           flock held by the process running the job

Every OSError met here (a full disk, a read-only file system, permission denied, a directory
where the lock file belongs) is raised as the StateError naming the path (util/statedir.py), exit 9.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from transferd.core.jobkey import JobKey
from transferd.core.manifest import check_job_name
from transferd.errors import CheckpointCorruptError, ConfigError, FormatError, JobLockedError
from transferd.send.journal import Journal
from transferd.util import statedir
from transferd.util.durable import replace_file


def default_state_dir() -> Path:
    """$TRANSFERD_STATE, else $STATE_DIRECTORY (systemd), else $XDG_STATE_HOME/transferd."""
    for var in ("TRANSFERD_STATE", "STATE_DIRECTORY"):
        if os.environ.get(var):
            return Path(os.environ[var].split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "transferd"


@dataclass
class JobState:
    job: str
    directory: Path
    key: JobKey
    job_id: str
    journal: Journal
    _lock_fd: int

    def close(self) -> None:
        self.journal.close()
        os.close(self._lock_fd)


def _job_directory(state_dir: Path, job: str) -> Path:
    try:
        check_job_name(job)
    except FormatError as e:
        raise ConfigError(e.message) from None
    directory = state_dir / "jobs" / job
    # Each level 0700: the journal names every file copied, which can itself be sensitive.
    for d in (state_dir, state_dir / "jobs", directory):
        try:
            d.mkdir(mode=0o700, parents=d == state_dir, exist_ok=True)
        except OSError as e:
            raise statedir.os_error("create the state directory", d, e) from None
    return directory


def provision_job_key(state_dir: Path, job: str, key: JobKey, job_id: str) -> None:
    """Give a job a key it does not draw itself: a copy's job, whose K_job and id derive from
    the copy secret (core/copy.py) so that any agent of the copy can take it over. A job that
    already has a key file must hold exactly these."""
    path = _job_directory(state_dir, job) / "job.key"
    if not path.exists():
        _write_key(path, key.key, job_id)
        return
    held, held_id = _load_or_create_key(path, os.urandom)
    if held.key != key.key or held_id != job_id:
        raise ConfigError(
            f"job {job} in {state_dir} has a key of its own, not the one of its copy",
            hint="give each copy's agent a state directory of its own",
        )


def open_job_state(state_dir: Path, job: str, rng: Callable[[int], bytes] = os.urandom) -> JobState:
    """Open (creating if new) the job's state, holding its lock until ``close``."""
    directory = _job_directory(state_dir, job)
    lock = directory / "lock"
    try:
        lock_fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise statedir.os_error("open the lock file", lock, e) from None
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        raise JobLockedError(
            f"job {job} is being run by another process (lock {lock})",
            hint="wait for it to finish, or stop it (transferd jobs cancel)",
            job=job,
            path=str(lock),
        ) from None
    except OSError as e:
        os.close(lock_fd)
        raise statedir.os_error("lock", lock, e) from None
    try:
        key, job_id = _load_or_create_key(directory / "job.key", rng)
        journal_path = directory / "journal.sqlite"
        try:
            os.close(os.open(journal_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        except OSError as e:
            raise statedir.os_error("open the journal", journal_path, e) from None
        journal = Journal(journal_path)
    except BaseException:
        os.close(lock_fd)
        raise
    return JobState(job, directory, key, job_id, journal, lock_fd)


def _write_key(path: Path, key_bytes: bytes, job_id: str) -> None:
    try:
        replace_file(path, f"{key_bytes.hex()} {job_id}\n".encode(), mode=0o600)
    except OSError as e:
        raise statedir.os_error("write the job key", path, e) from None


def _load_or_create_key(path: Path, rng: Callable[[int], bytes]) -> tuple[JobKey, str]:
    try:
        text = path.read_text()
        mode = path.stat().st_mode
    except FileNotFoundError:
        key_bytes, job_id = rng(32), rng(16).hex()
        _write_key(path, key_bytes, job_id)
        return JobKey(key_bytes), job_id
    except OSError as e:
        raise statedir.os_error("read the job key", path, e) from None
    if mode & 0o077:
        raise ConfigError(
            f"job key {path} is readable by group or others; chmod 600 it", path=str(path)
        )
    m = re.fullmatch(r"([0-9a-f]{64}) ([0-9a-f]{32})\n", text)
    if m is None:
        raise CheckpointCorruptError(f"job key file {path} is damaged", path=str(path))
    return JobKey(bytes.fromhex(m.group(1))), m.group(2)
