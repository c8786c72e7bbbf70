"""Run PostgreSQL's own tools: ``pg_dump`` for the schema, ``psql`` to replay it.

The schema is pg_dump's job, not ours: it knows every kind of object of every server version, and
its output is the format a reader of the copy will know in thirty years. The tools are found in
``$TRANSFERD_PG_BINDIR`` when set, else on ``PATH`` (Debian's wrapper there picks the newest
installed version, which can dump any older server). They get the password through their
environment only (see conninfo.py), and ``--no-password`` so that a missing one is an error,
never a prompt that hangs an unattended job.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from transferd.errors import TransferdError
from transferd.sources.postgres.conninfo import ConnInfo

BLOCK = 1024 * 1024
_STDERR_KEEP = 64 * 1024
"""Bytes of a tool's stderr kept for the error message: its last lines say what failed."""
_MISSING_ROLE = re.compile(r'role ".*" does not exist')
"""An owner or grantee of the source's schema the target cluster lacks (cloud admin roles)."""


def tool(name: str, error: type[TransferdError]) -> str:
    bindir = os.environ.get("TRANSFERD_PG_BINDIR")
    if bindir:
        path = Path(bindir) / name
        if os.access(path, os.X_OK):
            return str(path)
        raise error(f"{name} not found in TRANSFERD_PG_BINDIR={bindir}")
    found = shutil.which(name)
    if found is None:
        raise error(
            f"{name} not found on PATH",
            hint="install the PostgreSQL client tools (Debian: apt-get install postgresql-client)"
            " or set TRANSFERD_PG_BINDIR",
        )
    return found


async def pg_dump(
    info: ConnInfo, args: list[str], error: type[TransferdError]
) -> AsyncIterator[bytes]:
    """pg_dump's standard output, in blocks; ``error`` if it fails, with its own message."""
    proc = await asyncio.create_subprocess_exec(
        tool("pg_dump", error), f"--dbname={info.libpq_string()}", "--no-password", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=info.tool_env(),
    )  # fmt: skip
    assert proc.stdout is not None  # noqa: S101 - asked for PIPE
    assert proc.stderr is not None  # noqa: S101
    stderr = asyncio.create_task(_tail(proc.stderr))
    try:
        while block := await proc.stdout.read(BLOCK):
            yield block
        code = await proc.wait()
        # the tool has exited, but its stderr may not be read to the end yet: wait for it
        message = await stderr
    finally:
        await _stop(proc, stderr)
    if code != 0:
        raise error(f"pg_dump failed: {_last_line(message)}")


async def psql(
    info: ConnInfo, script: AsyncIterator[bytes], error: type[TransferdError], *, what: str
) -> None:
    """Run a SQL script (pg_dump's plain output) with psql, stopping at its first error."""
    proc = await asyncio.create_subprocess_exec(
        tool("psql", error), f"--dbname={info.libpq_string()}", "--no-password", "--no-psqlrc",
        "--quiet", "--set=ON_ERROR_STOP=1", "--single-transaction", "--file=-",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env=info.tool_env(),
    )  # fmt: skip
    assert proc.stdin is not None  # noqa: S101 - asked for PIPE
    assert proc.stderr is not None  # noqa: S101
    stderr = asyncio.create_task(_tail(proc.stderr))
    try:
        try:
            async for block in script:
                proc.stdin.write(block)
                await proc.stdin.drain()
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # psql stopped early: its exit status and stderr say why
        code = await proc.wait()
        message = await stderr
    finally:
        await _stop(proc, stderr)
    if code != 0:
        line = _last_line(message)
        hint = None
        if _MISSING_ROLE.search(line):
            hint = (
                "create the roles the schema names in the target cluster (pg_dumpall --roles-only"
                " on the source), or make the copy with send --no-owner --no-privileges"
            )
        raise error(f"psql failed while restoring {what}: {line}", hint=hint)


async def _stop(proc: asyncio.subprocess.Process, stderr: asyncio.Task[bytes]) -> None:
    """After an early stop (an error, a cancellation): kill the tool, stop reading its stderr."""
    if proc.returncode is None:
        proc.kill()
        await proc.wait()
    if not stderr.done():
        stderr.cancel()
        await asyncio.gather(stderr, return_exceptions=True)


async def _tail(stream: asyncio.StreamReader) -> bytes:
    kept = b""
    while block := await stream.read(BLOCK):
        kept = (kept + block)[-_STDERR_KEEP:]
    return kept


def _last_line(stderr: bytes) -> str:
    lines = [ln for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or "fatal" in ln.lower()]
    chosen = errors[0] if errors else lines[-1] if lines else "no message"
    return chosen.strip()
