"""A small tmpfs in a mount namespace of its own, for the failures only a real file system gives.

A sleeping process holds the namespace (``unshare --mount``); commands run in it through
``nsenter``. The mount is never visible to the rest of the machine, and it vanishes with its
holder whatever becomes of the test: nothing to unmount, nothing left behind. Tests run as root
(as tests/integration's full-disk test does), which ``mount`` needs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import TracebackType


class PrivateTmpfs:
    def __init__(self, mountpoint: Path, size: str) -> None:
        self.mountpoint = mountpoint
        self.size = size
        self._holder: subprocess.Popen[str] | None = None

    def __enter__(self) -> PrivateTmpfs:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        script = 'mount -t tmpfs -o size="$1" tmpfs "$2" && echo mounted && exec sleep 3600'
        self._holder = subprocess.Popen(
            ["unshare", "--mount", "sh", "-c", script, "sh", self.size, str(self.mountpoint)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._holder.stdout is not None
        if self._holder.stdout.readline() != "mounted\n":
            self._holder.kill()
            self._holder.wait()
            raise AssertionError(f"could not mount a tmpfs of {self.size} on {self.mountpoint}")
        return self

    @property
    def prefix(self) -> list[str]:
        """Put before a command to run it where the tmpfs is mounted."""
        assert self._holder is not None
        return ["nsenter", f"--target={self._holder.pid}", "--mount", "--"]

    def sh(self, script: str) -> str:
        """Run ``script`` with ``sh`` in the namespace; its stdout."""
        proc = subprocess.run(
            [*self.prefix, "sh", "-c", script], capture_output=True, text=True, check=True
        )
        return proc.stdout

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._holder is not None:
            self._holder.kill()
            self._holder.wait()
            if self._holder.stdout is not None:
                self._holder.stdout.close()
