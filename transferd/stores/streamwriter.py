"""An upload being written to its temp file and hashed as it arrives (stores/local.py's
``put_object_stream``): parts written with one ``writev`` per batch, short writes completed, the
file fsynced before it is renamed, and removed on any other end."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from transferd.errors import StoreError
from transferd.util.durable import write_all


class StreamWriter:
    """A temp file being written and hashed; ``fd`` None when the object is already stored."""

    def __init__(
        self,
        fd: int | None,
        temp: Path | None,
        error: Callable[[OSError], StoreError] | None = None,
        done: Callable[[], None] | None = None,
    ) -> None:
        self.fd, self.temp, self._error, self._done = fd, temp, error, done
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, parts: list[bytes | bytearray | memoryview]) -> None:
        for part in parts:
            self.hasher.update(part)
            self.size += len(part)
        if self.fd is None or not parts:
            return
        try:
            written = os.writev(self.fd, parts)
            for part in parts:  # a short write (rare on a regular file): the rest part by part
                n = len(part)
                if written >= n:
                    written -= n
                    continue
                write_all(self.fd, memoryview(part)[written:])
                written = 0
        except OSError as exc:
            raise self._raise(exc) from exc

    def sync(self) -> None:
        assert self.fd is not None  # noqa: S101 - only called when writing
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise self._raise(exc) from exc

    def _raise(self, exc: OSError) -> StoreError:
        assert self._error is not None  # noqa: S101 - set whenever fd is
        return self._error(exc)

    def discard(self) -> None:
        """Close the file, and remove it unless it was renamed to its final name."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)
            self.temp = None
        if self._done is not None:
            self._done()
            self._done = None
