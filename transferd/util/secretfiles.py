"""Create and read the small files that hold secret keys.

A secret file is created with mode 0600 in one ``open`` (``O_CREAT | O_EXCL``), so it is
never readable by others even for an instant, and an existing file - perhaps the only copy
of a key that data was encrypted to - is never overwritten, which is why it is written in place
rather than renamed over its name (durable.replace_file). File and directory are fsynced before
the caller reports success: a key whose public half was printed must survive a crash.
The parent directory is not created implicitly: a typo in a path must not invent a tree.

Reading returns the text and the permission bits seen on the open file (``fstat``, not
``stat`` on the path, so the mode checked is the mode of the bytes read). What to do with a
key file that others can read is the caller's choice: the CLI warns, the daemon refuses.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from transferd.errors import ConfigError, KeyFormatError
from transferd.util.durable import fsync_directory, write_all

SECRET_FILE_MODE = 0o600

#: Key files are a few hundred bytes; refusing anything larger keeps a mistaken path (a disk
#: image, a device) from being read into memory whole.
MAX_SECRET_FILE_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class SecretFileText:
    path: Path
    text: str
    #: permission bits (``stat.S_IMODE``) of the file that was read
    mode: int

    @property
    def exposed(self) -> bool:
        """True when group or others have any access (the rule ssh applies to private keys)."""
        return bool(self.mode & 0o077)


def _os_error(action: str, path: Path, exc: OSError) -> ConfigError:
    if isinstance(exc, FileExistsError):
        return ConfigError(
            f"{path} already exists; refusing to overwrite it",
            hint="choose another file name; remove the old file only if nothing needs its key",
            path=str(path),
        )
    if isinstance(exc, FileNotFoundError) and action == "create":
        return ConfigError(
            f"cannot create {path}: directory {path.parent} does not exist", path=str(path)
        )
    reason = (exc.strerror or str(exc)).lower()
    return ConfigError(f"cannot {action} {path}: {reason}", path=str(path))


def write_secret_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 holding ``data``; fail if anything exists there.

    Raises ConfigError (exit 2) naming the path when the file exists, its directory is missing,
    or the write fails; a partly written file is removed, since this call created it.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, SECRET_FILE_MODE)
    except OSError as exc:
        raise _os_error("create", path, exc) from exc
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_directory(path.parent)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise _os_error("write", path, exc) from exc


def read_secret_file(path: Path) -> SecretFileText:
    """Read the UTF-8 text of a key file and the permission bits it had when read."""
    try:
        # O_NONBLOCK: a FIFO at the path must not hang the command; it is refused below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _os_error("read", path, exc) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"cannot read {path}: not a regular file")
        if st.st_size > MAX_SECRET_FILE_SIZE:
            raise KeyFormatError(
                f"{path} is not a key file: it has {st.st_size} bytes, "
                f"a key file has at most {MAX_SECRET_FILE_SIZE}"
            )
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(MAX_SECRET_FILE_SIZE + 1)
    except OSError as exc:
        raise _os_error("read", path, exc) from exc
    finally:
        os.close(fd)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFormatError(f"{path} is not a key file: it is not UTF-8 text") from None
    return SecretFileText(path=path, text=text, mode=stat.S_IMODE(st.st_mode))
