"""Run processes and measure them: wall time, CPU seconds and peak RSS of each process.

A command line or a pipe of them runs to its end; each process is reaped with ``os.wait4``, whose
CPU times are that process's alone (plus any children it reaped), so a pipe reports tar, zstd
and age separately. Peak RSS is not taken from ``wait4``: Linux starts a process's ``ru_maxrss``
at its parent's high-water mark when it execs after vfork (what subprocess does), so every child
of a 300 MiB harness "peaked" at 300 MiB. A thread reads each process's own ``VmHWM`` from /proc
every 5 ms until it exits instead (a rise in its last 5 ms would be missed). A long-lived process
(the storage host) is measured over a window, from /proc: CPU ticks at the start and the end,
and its VmHWM at the end.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class ProcStat:
    name: str
    cpu_s: float
    """User plus system CPU seconds."""
    user_s: float
    sys_s: float
    peak_rss_mib: float


@dataclass
class Sample:
    """One timed run of one method."""

    wall_s: float
    procs: list[ProcStat] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_s(self) -> float:
        return sum(p.cpu_s for p in self.procs)

    @property
    def peak_rss_mib(self) -> float:
        return max((p.peak_rss_mib for p in self.procs), default=0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "wall_s": round(self.wall_s, 4),
            "cpu_s": round(self.cpu_s, 3),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "procs": [asdict(p) for p in self.procs],
            **self.extra,
        }


class CommandFailedError(RuntimeError):
    pass


def _reap(proc: subprocess.Popen[bytes], name: str, peaks: dict[int, float]) -> ProcStat:
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ProcStat(
        name,
        round(usage.ru_utime + usage.ru_stime, 3),
        round(usage.ru_utime, 3),
        round(usage.ru_stime, 3),
        round(peaks.get(proc.pid, 0.0), 1),
    )


def _watch_peaks(pids: list[int], peaks: dict[int, float], done: threading.Event) -> None:
    """Until ``done``: the highest VmHWM seen of each process (exited ones drop out)."""
    live = list(pids)
    while live and not done.is_set():
        for pid in list(live):
            try:
                peaks[pid] = max(peaks.get(pid, 0.0), peak_rss_mib(pid))
            except (FileNotFoundError, ProcessLookupError, ValueError):
                live.remove(pid)
        time.sleep(0.005)


def run_pipe(
    commands: Sequence[Sequence[str | os.PathLike[str]]],
    *,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | int | None = subprocess.DEVNULL,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    names: Sequence[str] | None = None,
) -> Sample:
    """Run ``a | b | c`` (or one command) to its end; raise CommandFailed if any stage fails."""
    procs: list[subprocess.Popen[bytes]] = []
    errs: list[Path] = []
    started = time.perf_counter()
    upstream: Any = stdin
    for i, cmd in enumerate(commands):
        last = i == len(commands) - 1
        err = Path(tempfile.gettempdir()) / f"bench-stderr-{os.getpid()}-{i}"
        errs.append(err)
        with open(err, "wb") as errf:
            proc = subprocess.Popen(
                [str(c) for c in cmd],
                stdin=upstream,
                stdout=stdout if last else subprocess.PIPE,
                stderr=errf,
                env=None if env is None else {**os.environ, **env},
                cwd=cwd,
            )
        if upstream is not None and upstream is not stdin:
            upstream.close()  # the next stage holds it now: EOF reaches it when we let go
        upstream = proc.stdout
        procs.append(proc)
    peaks: dict[int, float] = {}
    done = threading.Event()
    watcher = threading.Thread(
        target=_watch_peaks, args=([p.pid for p in procs], peaks, done), daemon=True
    )
    watcher.start()
    try:
        stats = [
            _reap(p, names[i] if names else Path(str(commands[i][0])).name, peaks)
            for i, p in enumerate(procs)
        ]
    finally:
        done.set()
        watcher.join()
    wall = time.perf_counter() - started
    failed = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode != 0]
    messages = []
    for i, code in failed:
        tail = errs[i].read_text(errors="replace")[-2000:]
        messages.append(f"{' '.join(map(str, commands[i]))} exited {code}: {tail}")
    for err in errs:
        err.unlink(missing_ok=True)
    if messages:
        raise CommandFailedError("\n".join(messages))
    return Sample(wall, stats)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a live process, from /proc (10 ms resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Background:
    """A long-lived process (a server) that prints a line saying it is ready."""

    def __init__(
        self,
        cmd: Sequence[str | os.PathLike[str]],
        ready: str,
        log: Path,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> None:
        self.log = log
        self._logf = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(c) for c in cmd],
            stdout=subprocess.PIPE,
            stderr=self._logf,
            env=None if env is None else {**os.environ, **env},
        )
        assert self.proc.stdout is not None  # noqa: S101
        self.line = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([self.proc.stdout], [], [], 0.5)[0]:
                line = self.proc.stdout.readline().decode()
                if ready in line:
                    self.line = line.strip()
                    break
                if not line:
                    break
        if not self.line:
            self.stop()
            raise CommandFailedError(f"{cmd[0]} did not start; see {log}")
        self._mark = cpu_seconds(self.proc.pid)

    def mark(self) -> None:
        """Start a measuring window now."""
        self._mark = cpu_seconds(self.proc.pid)

    def window(self, name: str) -> ProcStat:
        """CPU since the last mark and the peak RSS so far."""
        user, system = cpu_seconds(self.proc.pid)
        u, s = user - self._mark[0], system - self._mark[1]
        rss = peak_rss_mib(self.proc.pid)
        return ProcStat(name, round(u + s, 3), round(u, 3), round(s, 3), rss)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._logf.close()


def tree_bytes(path: Path) -> int:
    """Bytes of every regular file under ``path`` (apparent sizes, as ``du -sb``)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            total += st.st_size
    return total


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cache_tree(path: Path) -> int:
    """Read every regular file under ``path`` once, so that the next run finds it all in the
    page cache; returns the bytes read. borg drops the files it read from the cache
    (``posix_fadvise(DONTNEED)``): the method after it read most of the source from disk."""
    buf = bytearray(1 << 20)
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                while n := os.readv(fd, [buf]):
                    total += n
            finally:
                os.close(fd)
    return total


def drop_tree(path: Path) -> None:
    """Remove a directory tree (a store or repository between runs), as fast as rm -rf."""
    if path.exists():
        subprocess.run(["rm", "-rf", "--", str(path)], check=True)
