"""Write a small file so that a crash leaves either the old contents or the new, never a mix.

The order, for every state file, job definition and report transferd writes whole:

1. a new temp file in the same directory (``O_EXCL``, a random name, the mode given): the same
   directory because ``rename`` is atomic only within one file system;
2. every byte written (``os.write`` may write fewer than asked: the rest is written again);
3. ``fsync`` of the file: its bytes are on the disk before any name points at them;
4. ``rename`` over the final name: readers see the old file or the new, whole;
5. ``fsync`` of the directory: the rename itself survives a power cut.

On any failure the temp file is removed and the ``OSError`` raised, for the caller to say what
failed in its own terms (a state directory, a report). Objects in a store and restored files
follow the same order with steps of their own (stores/local.py, restore/tree.py), and share
``write_all`` and ``fsync_directory`` from here.
"""

from __future__ import annotations

import os
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write all of ``data`` to ``fd``, however many calls that takes."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view) :]


def fsync_directory(path: Path) -> None:
    """Make a new, renamed or removed entry in directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, data: bytes | bytearray | memoryview, *, mode: int) -> None:
    """Make ``path`` hold ``data``, atomically and durably (the steps above).

    ``mode`` is the new file's mode before the umask, which may only narrow it. Raises the
    ``OSError`` of the step that failed, after removing the temp file.
    """
    temp = path.with_name(f".{path.name}.{os.urandom(6).hex()}{TEMP_SUFFIX}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
