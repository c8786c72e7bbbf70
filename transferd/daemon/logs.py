"""The daemon's log: structured lines on stdout for journald, and one file per job.

Every line is ``KEY=value`` pairs (logfmt) or one JSON object, always with ``level``, ``logger``
and ``msg``, plus ``job`` when the line concerns a job, and any fields given with ``extra=``::

    level=info logger=transferd.daemon msg="job started" job=claims source=/srv/exports

Under systemd (``$JOURNAL_STREAM`` set) each line starts with its syslog priority (``<6>``),
which journald turns into the entry's PRIORITY, so ``journalctl -p warning`` works.

Which job a line concerns is carried by a context variable that each job's task sets: a warning
raised deep in a store or a source (a retry, an unreadable file) is tagged with its job without
passing the name down. The same lines go to ``<logs>/<job>.log`` (rotated at LOG_FILE_MAX, one
old file kept), which ``transferd jobs logs`` reads, across daemon restarts.

No key or password is ever logged on purpose; as a second line of defence, anything shaped like
a transferd secret key is masked before a line is written anywhere.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from transferd.util.durable import write_all

current_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("job", default=None)

LOG_FILE_MAX = 8 * 1024 * 1024
"""A job's log file is rotated at this size: a job that skips a million unreadable files must not
fill the disk with warnings; the older half stays readable as <job>.log.1."""

_SECRET = re.compile(r"td-secret-[a-z]+-1[02-9ac-hj-np-z]{8,}", re.I)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}
_BARE = re.compile(r"[A-Za-z0-9_./:@+-]+")


def redact(text: str) -> str:
    return _SECRET.sub("td-secret-[redacted]", text)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    job = getattr(record, "job", None) or current_job.get()
    if job:
        out["job"] = job
    for key, value in vars(record).items():
        if key not in _STANDARD and key not in out and not key.startswith("_"):
            out[key] = value
    if record.exc_info:
        out["error"] = logging.Formatter().formatException(record.exc_info)
    return out


def _logfmt_value(value: Any) -> str:
    text = str(value)
    return text if text and _BARE.fullmatch(text) else json.dumps(text, ensure_ascii=False)


class StructuredFormatter(logging.Formatter):
    def __init__(self, fmt: str = "logfmt", *, priority_prefix: bool = False) -> None:
        super().__init__()
        self.fmt = fmt
        self.priority_prefix = priority_prefix

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        if self.fmt == "json":
            line = json.dumps(fields, ensure_ascii=False, default=str)
        else:
            line = " ".join(f"{k}={_logfmt_value(v)}" for k, v in fields.items())
        line = redact(line)
        if self.priority_prefix:
            line = f"<{_PRIORITY.get(record.levelno, 3)}>{line}"
        return line


class JobLogFiles(logging.Handler):
    """Append each line that concerns a job to that job's file."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self.setFormatter(StructuredFormatter("logfmt"))
        self._failing: tuple[Path, int | None] | None = None
        """The file and errno of the write that failed last, until one succeeds."""

    def path(self, job: str) -> Path:
        return self.directory / f"{job}.log"

    def emit(self, record: logging.LogRecord) -> None:
        job = getattr(record, "job", None) or current_job.get()
        if not job:
            return
        try:
            path = self.path(job)
            line = (self.format(record) + "\n").encode()
            try:
                if path.stat().st_size + len(line) > LOG_FILE_MAX:
                    os.replace(path, path.with_suffix(".log.1"))
            except FileNotFoundError:
                pass
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            try:
                write_all(fd, line)
            finally:
                os.close(fd)
        except OSError as e:
            # A full or read-only state directory: the line still reaches the journal (the
            # stderr handler); say once why the job's file lacks it, not a logging traceback
            # per line.
            if self._failing != (path, e.errno):
                self._failing = (path, e.errno)
                reason = (e.strerror or str(e)).lower()
                sys.stderr.write(f"transferd: warning: cannot write job log {path}: {reason}\n")
        else:
            self._failing = None

    def tail(self, job: str, lines: int, offset: int | None) -> tuple[list[str], int]:
        """The last ``lines`` lines (``offset`` None), or the lines after byte ``offset``, and the
        offset to ask from next (for ``--follow``)."""
        path = self.path(job)
        try:
            with path.open("rb") as f:
                size = f.seek(0, os.SEEK_END)
                if offset is None or offset > size:  # first call, or the file was rotated
                    start = max(0, size - 1024 * max(lines, 1))
                else:
                    start = offset
                f.seek(start)
                data = f.read(LOG_FILE_MAX)
        except FileNotFoundError:
            return [], 0
        text = data.decode("utf-8", "replace")
        if offset is None or offset > size:
            if start > 0:
                text = text.partition("\n")[2]
            found = text.splitlines()[-lines:] if lines > 0 else []
        else:
            found = text.splitlines()
        return found, start + len(data)


def setup_logging(
    fmt: str = "logfmt", level: str = "info", logs_dir: Path | None = None
) -> JobLogFiles | None:
    """Structured lines on stdout; per-job files under ``logs_dir`` when given."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        StructuredFormatter(fmt, priority_prefix=bool(os.environ.get("JOURNAL_STREAM")))
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
    for noisy in ("aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    files = None
    if logs_dir is not None:
        # A missing parent is most likely the state directory: private, like send/state.py's.
        logs_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        logs_dir.mkdir(mode=0o750, exist_ok=True)
        files = JobLogFiles(logs_dir)
        root.addHandler(files)
    return files
