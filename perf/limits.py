"""This machine's limits on the benchmark's data: each building block of the pipeline on all cores.

    limits.py SOURCE_DIR [--level 1] [--threads N] [--runs 3]

The whole source is read into memory first (so no disk is timed) and cut into the pipeline's own
chunks (FastCDC, 1 MiB average). Then each block runs over every chunk on ``--threads`` threads
(default: every core), each thread taking a contiguous share, and once on one thread:

- ``chunker``   pyfastcdc cutting the files (the threads split the bytes, not the chunks);
- ``blake3``    keyed BLAKE3 of every chunk (the chunk id);
- ``zstd``      one zstd frame per chunk at ``--level`` (the ratio is reported too);
- ``aead``      XChaCha20-Poly1305 of every chunk through ``nacl.bindings`` (plaintext sizes);
- ``sha256``    hashlib SHA-256 (the pack names; run over the plaintext, an upper bound);
- ``sealloop``  chunk id, zstd, AEAD of the compressed payload and the content BLAKE3 in one
  loop per thread: what the pipeline computes, with no I/O, queue or event loop around it.

Rates are source bytes per second (MB = 10^6 bytes), the median of ``--runs``. Prints one JSON
object. Every block releases the GIL, so N threads should give about N times one thread.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import blake3
import nacl.bindings
import zstandard

from transferd.core.chunking import new_fastcdc

KEY = bytes(range(32))
NONCE = bytes(24)
AD = b"transferd v1 chunk\x01" + bytes(32)


def load(root: Path) -> list[bytes]:
    files: list[bytes] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            with open(os.path.join(dirpath, name), "rb") as f:
                files.append(f.read())
    return files


def cut_all(files: list[bytes]) -> list[memoryview]:
    chunks: list[memoryview] = []
    cdc = new_fastcdc()
    for data in files:
        view = memoryview(data)
        chunks += [view[c.offset : c.offset + c.length] for c in cdc.cut_buf(view)]
    return chunks


def shares(items: list[memoryview], n: int) -> list[list[memoryview]]:
    """``n`` contiguous shares of about equal bytes."""
    total = sum(len(c) for c in items)
    out: list[list[memoryview]] = [[] for _ in range(n)]
    done, i = 0, 0
    for c in items:
        if done >= (i + 1) * total / n and i < n - 1:
            i += 1
        out[i].append(c)
        done += len(c)
    return out


def op_chunker(part: list[memoryview], level: int) -> int:
    cdc = new_fastcdc()
    n = 0
    for data in part:
        for c in cdc.cut_buf(data):
            n += c.length
    return n


def op_blake3(part: list[memoryview], level: int) -> int:
    for c in part:
        blake3.blake3(c, key=KEY).digest()
    return 0


def op_sha256(part: list[memoryview], level: int) -> int:
    for c in part:
        hashlib.sha256(c).digest()
    return 0


def op_zstd(part: list[memoryview], level: int) -> int:
    comp = zstandard.ZstdCompressor(level=level, write_content_size=True)
    out = 0
    for c in part:
        frame = comp.compress(c)
        out += min(len(frame), len(c)) + 1
    return out


def op_aead(part: list[memoryview], level: int) -> int:
    enc = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt
    for c in part:
        enc(bytes(c), AD, NONCE, KEY)
    return 0


def op_sealloop(part: list[memoryview], level: int) -> int:
    comp = zstandard.ZstdCompressor(level=level, write_content_size=True)
    enc = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt
    content = blake3.blake3()
    out = 0
    for c in part:
        content.update(c)
        cid = blake3.blake3(c, key=KEY).digest()
        frame = comp.compress(c)
        payload = b"\x01" + frame if len(frame) < len(c) else b"\x00" + bytes(c)
        out += len(enc(payload, AD[:-32] + cid, NONCE, KEY)) + 24
    return out


OPS: dict[str, Callable[[list[memoryview], int], int]] = {
    "chunker": op_chunker,
    "blake3": op_blake3,
    "zstd": op_zstd,
    "aead": op_aead,
    "sha256": op_sha256,
    "sealloop": op_sealloop,
}


def timed(
    op: Callable[[list[memoryview], int], int], parts: list[list[memoryview]], level: int
) -> tuple[float, int]:
    with ThreadPoolExecutor(len(parts)) as pool:
        started = time.perf_counter()
        out = sum(pool.map(lambda p: op(p, level), parts))
        return time.perf_counter() - started, out


def measure(
    files: list[bytes], level: int, threads: int, runs: int, only: list[str] | None = None
) -> dict[str, object]:
    total = sum(len(f) for f in files)
    chunks = cut_all(files)
    views = [memoryview(f) for f in files]
    results: dict[str, object] = {"bytes": total, "chunks": len(chunks), "threads": threads}
    for name, op in OPS.items():
        if only and name not in only:
            continue
        items = views if name == "chunker" else chunks
        row: dict[str, object] = {}
        for n in sorted({1, threads}):
            parts = shares(items, n)
            timed(op, parts, level)  # warm-up: allocator, thread start, caches
            samples = [timed(op, parts, level) for _ in range(runs)]
            seconds = statistics.median(s for s, _ in samples)
            row[f"mb_s_{n}"] = round(total / seconds / 1e6, 1)
            if name in ("zstd", "sealloop"):
                row["ratio"] = round(samples[0][1] / total, 4)
        results[name] = row
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", type=Path)
    p.add_argument("--level", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--only", action="append", choices=list(OPS), help="run only these blocks")
    args = p.parse_args()
    files = load(args.source)
    result = measure(files, args.level, args.threads, args.runs, args.only)
    result["level"] = args.level
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
