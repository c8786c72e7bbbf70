"""The cost of a crash: SIGKILL the sender half-way through, run the same send again, count.

The sender is killed when half the time of a whole run (the median of the timed ones) has
passed, wherever it then is: packs being sent, being written by the host, being sealed. The
storage host logs every request with the bytes it received (``in=``), including the partial
body of an upload cut by the kill. The bytes uploaded twice are every object byte the host
received over both runs, less the bytes it stores at the end; the in-flight window they are
compared with is ``uploads`` packs of PACK_TARGET bytes. A pack the host stored but the killed
sender never heard of is adopted by the resume (``packs_adopted``), not sent again. The extra
time is the killed run plus the resumed run, less a whole run.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from measure import drop_tree, tree_bytes
from methods import JOB, Context, run_send, send_command, start_server, transferd_keys

from transferd.core.constants import PACK_TARGET
from transferd.send.config import PipelineConfig

_PUT = re.compile(r"PUT /v1/jobs/[^/ ]+/objects/[0-9a-f]{64} (\d{3}) in=(\d+)")


def uploaded_bytes(log: Path) -> tuple[int, int]:
    """(object bytes received, PUT requests) in a storage host's log."""
    total = count = 0
    for match in _PUT.finditer(log.read_text(errors="replace")):
        total += int(match[2])
        count += 1
    return total, count


def measure(ctx: Context, full_wall: float | None, fraction: float = 0.5) -> dict[str, Any]:
    keys = transferd_keys(ctx.work)
    store, state = ctx.work / "r-store", ctx.work / "r-state"
    drop_tree(store)
    drop_tree(state)
    objects = store / "jobs" / JOB / "objects"
    expected = ctx.source_bytes * 0.5  # about what the e2e runs store; refined below if known
    server, url = start_server(ctx.work, store, keys["sender"])
    try:
        cmd = send_command(ctx, url, state, keys)
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = None if full_wall is None else started + fraction * full_wall
        while proc.poll() is None and (
            time.perf_counter() < deadline
            if deadline is not None
            else tree_bytes(objects) < fraction * expected
        ):
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_after = time.perf_counter() - started
        stored_at_kill = tree_bytes(objects)
        sample, result = run_send(cmd, ctx.work / "resume.json")
    finally:
        server.stop()
    received, puts = uploaded_bytes(server.log)
    stored = tree_bytes(objects)
    window = PipelineConfig().uploads * PACK_TARGET
    extra = None if full_wall is None else killed_after + sample.wall_s - full_wall
    out: dict[str, Any] = {
        "killed_at_fraction": round(stored_at_kill / stored, 3) if stored else None,
        "killed_after_s": round(killed_after, 3),
        "resume_wall_s": round(sample.wall_s, 3),
        "resume_bytes_read": result.get("bytes_read"),
        "resume_bytes_sent": result.get("bytes_sent"),
        "packs_adopted": result.get("packs_adopted"),
        "object_bytes_received": received,
        "object_puts": puts,
        "stored_object_bytes": stored,
        "wasted_upload_bytes": received - stored,
        "window_bytes": window,
        "extra_s": None if extra is None else round(extra, 3),
    }
    return out
