"""The client side of the daemon's control socket (daemon/control.py): one JSON line each way.

Blocking and small on purpose: a ``transferd jobs`` command sends a request or a few and exits;
``watch`` keeps one connection and asks again every interval. A refusal from the daemon comes
back with its message, hint and exit code, and is raised here as a TransferdError carrying that
code, so ``transferd jobs status nosuch`` exits 10 like any other missing job.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path
from typing import Any

from transferd.errors import (
    RESERVED_FIELDS,
    DaemonAnswerError,
    DaemonUnavailableError,
    RemoteProtocolError,
)

DEFAULT_SOCKET = Path("/run/transferd/control.sock")
TIMEOUT = 120.0
"""Seconds to wait for an answer: a cancel waits for the job's uploads in flight."""


def default_socket() -> Path:
    """$TRANSFERD_SOCKET, else the socket of the systemd unit (RuntimeDirectory=transferd)."""
    return Path(os.environ.get("TRANSFERD_SOCKET") or DEFAULT_SOCKET)


def _unreadable(peer: str, problem: str) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"the daemon on {peer} sent an answer transferd cannot read: {problem}",
        peer=peer,
        problem=problem,
        hint="check that the socket is a transferd daemon's, of the same version as this command",
    )


def _answer(line: bytes, peer: str) -> dict[str, Any]:
    try:
        answer = json.loads(line)
    except ValueError:
        raise _unreadable(peer, "not JSON") from None
    if not isinstance(answer, dict):
        raise _unreadable(peer, f"a JSON {type(answer).__name__}, not an object")
    return answer


def _refusal(answer: dict[str, Any], peer: str) -> DaemonAnswerError:
    """The daemon's refusal as the error it stands for, its exit code and fields kept."""
    code, fields = answer.get("exit_code"), answer.get("fields") or {}
    if not isinstance(code, int) or isinstance(code, bool) or not isinstance(fields, dict):
        raise _unreadable(peer, "a refusal without an exit code")
    hint = answer.get("hint")
    kept = {k: v for k, v in fields.items() if isinstance(k, str) and k not in RESERVED_FIELDS}
    return DaemonAnswerError(
        str(answer.get("error")), hint if isinstance(hint, str) else None, code, kept
    )


class ControlClient:
    def __init__(self, path: Path | None = None, timeout: float = TIMEOUT) -> None:
        self.path = path or default_socket()
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._file: Any = None

    def _connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except OSError as e:
            sock.close()
            hint = "start it (systemctl start transferd), or give --socket PATH"
            if isinstance(e, PermissionError):
                hint = f"run as a member of the group that owns {self.path}"
            raise DaemonUnavailableError(
                f"no daemon answers on {self.path}: {(e.strerror or str(e)).lower()}", hint=hint
            ) from None
        self._sock = sock
        self._file = sock.makefile("rwb")

    def call(self, op: str, **args: Any) -> Any:
        if self._sock is None:
            self._connect()
        request = {"op": op, **{k: v for k, v in args.items() if v is not None}}
        try:
            self._file.write(json.dumps(request).encode() + b"\n")
            self._file.flush()
            line = self._file.readline()
        except OSError as e:
            self.close()
            raise DaemonUnavailableError(
                f"the daemon on {self.path} stopped answering: {(e.strerror or str(e)).lower()}"
            ) from None
        if not line:
            self.close()
            raise DaemonUnavailableError(f"the daemon on {self.path} closed the connection")
        answer = _answer(line, str(self.path))
        if not answer.get("ok"):
            raise _refusal(answer, str(self.path))
        return answer.get("result")

    def close(self) -> None:
        """Drop the connection. Never raises: closing the buffered file flushes it, and to a
        daemon that is gone that is a BrokenPipeError (which made a traceback of a restart)."""
        if self._sock is not None:
            sock, file, self._sock, self._file = self._sock, self._file, None, None
            with contextlib.suppress(OSError):
                file.close()
            sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
