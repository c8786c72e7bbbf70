"""The control socket: a unix stream socket (0660) that ``transferd jobs`` talks to.

The protocol is JSON lines, one request and one answer per line, several on one connection
(``transferd jobs watch`` keeps one open)::

    → {"op": "pause", "name": "claims"}
    ← {"ok": true, "result": {"name": "claims", "phase": "paused", …}}
    ← {"ok": false, "error": "no job nosuch in this daemon", "hint": "…", "exit_code": 10,
       "fields": {"job": "nosuch"}}

Who may talk is who may open the socket: its owner and group (mode 0660), which the unit's
``RuntimeDirectoryMode=`` and the service's group decide. The socket is created under a
temporary name, given its mode, and renamed into place, so it is never reachable at its final
path with the mode of the umask. A second daemon refuses to start while one answers on the path;
a stale socket left by a killed daemon is replaced.

A request line is at most MAX_REQUEST bytes: a client cannot make the daemon buffer without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from transferd.daemon.manager import Manager
from transferd.errors import EXIT_BUG, ConfigError, TransferdError
from transferd.util.units import parse_rate

log = logging.getLogger("transferd.daemon.control")

MAX_REQUEST = 64 * 1024
SOCKET_MODE = 0o660
CLOSE_TIMEOUT = 5.0
"""Seconds a request being answered gets to finish when the daemon stops, before it is cut."""

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


def _postgres(args: dict[str, Any]) -> dict[str, Any] | None:
    value = args.get("postgres")
    if value is not None and not isinstance(value, dict):
        raise ConfigError("postgres must be an object of PostgreSQL options")
    return value


def _str(args: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = args.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"request needs {key} (a string)")
    return value


def _rate(args: dict[str, Any]) -> int | None:
    value = args.get("limit")
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        return parse_rate(value)
    raise ConfigError("limit must be bytes per second or a rate such as 10M")


class ControlServer:
    def __init__(self, path: Path, manager: Manager) -> None:
        self.path = path
        self.manager = manager
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ops: dict[str, Handler] = {
            "ping": self._ping,
            "list": self._list,
            "status": self._status,
            "start": self._start,
            "pause": self._pause,
            "resume": self._resume,
            "cancel": self._cancel,
            "limit": self._limit,
            "logs": self._logs,
            "cutover": self._cutover,
        }

    async def start(self) -> None:
        self._claim_path()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        try:
            self._server = await asyncio.start_unix_server(
                self._client, path=str(tmp), limit=MAX_REQUEST
            )
            os.chmod(tmp, SOCKET_MODE)
            os.replace(tmp, self.path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise ConfigError(
                f"cannot create the control socket {self.path}: {e.strerror}"
            ) from None
        log.info("control socket ready", extra={"socket": str(self.path)})

    def _claim_path(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create {self.path.parent}: {e.strerror}") from None
        if not self.path.exists():
            return
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.path))
        except OSError:
            self.path.unlink()  # stale: its daemon died without removing it
            return
        finally:
            probe.close()
        raise ConfigError(
            f"another daemon answers on {self.path}",
            hint="stop it first, or give this one another control_socket in [daemon]",
        )

    async def close(self) -> None:
        """Stop listening, then end every connection (``jobs watch`` keeps one open): each
        handler sees its connection closed and returns, so none is left for the loop's
        shutdown to cancel (asyncio logged that as a CancelledError traceback, at error)."""
        if self._server is None:
            return
        self._server.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = None
        for writer in self._writers:
            writer.close()
        if self._handlers:
            _, late = await asyncio.wait(self._handlers, timeout=CLOSE_TIMEOUT)
            for task in late:  # a request still being answered (a cancel waiting on uploads)
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self._writers.add(writer)
        try:
            while line := await reader.readline():
                answer = await self._answer(line)
                writer.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError):  # reset, or a line over MAX_REQUEST
            pass
        except asyncio.CancelledError:
            # Cancelled only by close(), at the daemon's stop: this task is a connection's
            # leaf, and ending it cancelled made asyncio's stream callback log a traceback.
            pass
        finally:
            writer.close()
            self._writers.discard(writer)
            if task is not None:
                self._handlers.discard(task)

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("op"), str):
                raise ConfigError("a request is a JSON object with an op")
            handler = self._ops.get(request["op"])
            if handler is None:
                raise ConfigError(f"unknown request {request['op']!r}")
            return {"ok": True, "result": await handler(request)}
        except json.JSONDecodeError:
            e: TransferdError = ConfigError("a request is one line of JSON")
        except TransferdError as exc:
            e = exc
        except Exception as exc:
            log.exception("control request failed: a bug, please report it")
            error = f"internal error: {exc!r}"
            return {"ok": False, "error": error, "hint": None, "exit_code": EXIT_BUG}
        return {
            "ok": False, "error": e.message, "hint": e.hint, "exit_code": e.exit_code,
            "fields": e.fields,
        }  # fmt: skip

    # --- requests -----------------------------------------------------------------------------

    async def _ping(self, args: dict[str, Any]) -> Any:
        return {"pid": os.getpid()}

    async def _list(self, args: dict[str, Any]) -> Any:
        return self.manager.list()

    async def _status(self, args: dict[str, Any]) -> Any:
        return self.manager.describe(self.manager.get(str(_str(args, "name"))))

    async def _start(self, args: dict[str, Any]) -> Any:
        recipients = args.get("recipients") or []
        if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
            raise ConfigError("recipients must be a list of keys tdr1…")
        return await self.manager.start_job(
            str(_str(args, "name")),
            _str(args, "source", required=False),
            _str(args, "store", required=False),
            recipients,
            _rate(args),
            _postgres(args),
        )

    async def _cutover(self, args: dict[str, Any]) -> Any:
        return self.manager.cutover(str(_str(args, "name")))

    async def _pause(self, args: dict[str, Any]) -> Any:
        return self.manager.pause(str(_str(args, "name")))

    async def _resume(self, args: dict[str, Any]) -> Any:
        return self.manager.resume(str(_str(args, "name")))

    async def _cancel(self, args: dict[str, Any]) -> Any:
        return await self.manager.cancel(str(_str(args, "name")), bool(args.get("purge")))

    async def _limit(self, args: dict[str, Any]) -> Any:
        return self.manager.set_limit(_str(args, "name", required=False), _rate(args))

    async def _logs(self, args: dict[str, Any]) -> Any:
        lines, offset = args.get("lines", 50), args.get("offset")
        if not isinstance(lines, int) or not (offset is None or isinstance(offset, int)):
            raise ConfigError("lines and offset must be integers")
        return self.manager.logs_of(str(_str(args, "name")), lines, offset)
