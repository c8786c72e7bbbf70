"""Profile one end-to-end run with py-spy: the sender and the storage host, every thread.

Writes, under perf/profiles/, for each process, ``<date>-<commit>-<command>.folded`` (py-spy's
collapsed stacks, one line per stack with its sample count: open it with speedscope, or
flamegraph.pl) and a ``.txt`` summary: per thread, the functions holding the most samples, and the
inclusive share of the pipeline's stages. py-spy samples from outside the process, 200 times a
second, and sees threads waiting for the GIL as busy: read shares, not seconds.

    profiles.py FOLDED   print the summary of a saved profile
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from measure import drop_tree
from methods import Context, run_send, send_command, start_server, transferd_keys

PY_SPY = Path(sys.executable).parent / "py-spy"
RATE = 200
STAGES = {
    "read (source)": ("DirectorySource", "FileItem.blocks"),
    "chunk + content hash": ("_cut_and_hash", "Chunker.feed", "chunking.py"),
    "compress (zstd)": ("encode_payload", "_zstd_body"),
    "seal (AEAD)": ("seal (", "crypto_aead", "_encrypt_in_place"),
    "chunk id (BLAKE3)": ("chunk_id",),
    "journal (SQLite)": ("Journal.",),
    "pack + SHA-256": ("_finish_pack", "PackBuilder", "packs.py"),
    "HTTP client": ("HttpStore", "aiohttp/client", "http_writer", "_BufferPayload"),
    "HTTP server": ("_read_body", "aiohttp/web_protocol", "_put_object", "body_parts"),
    "store write + fsync": ("LocalStore", "_StreamWriter"),
    "publish (catalog)": ("publish (",),
    "imports": ("_find_and_load",),
}


def summary(folded: Path, top: int = 12) -> str:
    per_thread: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    stages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        thread = frames[0].split(": ")[-1] if ": " in frames[0] else frames[0]
        per_thread[thread][frames[-1]] += n
        for stage, marks in STAGES.items():
            if any(mark in stack for mark in marks):
                stages[stage] += n
    out = [f"{folded.name}: {total} samples at {RATE} Hz"]
    out.append("inclusive share by stage (a sample can count in two stages):")
    out += [f"  {100 * n / total:5.1f}%  {stage}" for stage, n in stages.most_common()]
    threads = sorted(per_thread.items(), key=lambda kv: -sum(kv[1].values()))
    for thread, leaves in threads:
        n = sum(leaves.values())
        out.append(f"thread {thread}: {n} samples ({100 * n / total:.1f}%)")
        out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in leaves.most_common(top)]
    return "\n".join(out) + "\n"


def record(ctx: Context, directory: Path, stamp: str, rev: str) -> dict[str, Any]:
    if not PY_SPY.exists() and shutil.which("py-spy") is None:
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    spy = str(PY_SPY) if PY_SPY.exists() else "py-spy"
    directory.mkdir(parents=True, exist_ok=True)
    keys = transferd_keys(ctx.work)
    store, state = ctx.work / "p-store", ctx.work / "p-state"
    drop_tree(store)
    drop_tree(state)
    base = f"{stamp}-{rev}"
    send_out = directory / f"{base}-send.folded"
    serve_out = directory / f"{base}-serve.folded"
    server, url = start_server(ctx.work, store, keys["sender"])
    try:
        watcher = subprocess.Popen(
            [spy, "record", "--pid", str(server.proc.pid), "--format", "raw", "--threads",
             "--rate", str(RATE), "--nonblocking", "-o", str(serve_out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1)  # py-spy attaches
        cmd = send_command(ctx, url, state, keys)
        run_send(
            [spy, "record", "--format", "raw", "--threads", "--rate", str(RATE), "--nonblocking",
             "-o", str(send_out), "--", *cmd],
            ctx.work / "profile.json",
        )  # fmt: skip
        watcher.send_signal(2)  # SIGINT: py-spy writes its output and exits
        watcher.wait(60)
    finally:
        server.stop()
    written: dict[str, Any] = {}
    for role, folded in (("send", send_out), ("serve", serve_out)):
        if folded.exists():
            text = folded.with_suffix(".txt")
            text.write_text(f"command: {' '.join(cmd) if role == 'send' else 'transferd serve'}\n"
                            + summary(folded))  # fmt: skip
            written[role] = {"folded": folded.name, "summary": text.name}
    return written


if __name__ == "__main__":
    print(summary(Path(sys.argv[1])), end="")
