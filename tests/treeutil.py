"""Build test trees with every kind of entry, and compare two trees byte for byte."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024

NON_UTF8 = b"caf\xe9-latin1.txt"
"""A name that is not valid UTF-8: the catalog stores it as path_b64."""


@dataclass(frozen=True)
class Node:
    kind: str
    mode: int | None
    mtime_ns: int
    size: int = 0
    digest: str = ""
    target: bytes = b""


def snapshot(root: Path) -> dict[bytes, Node]:
    """Every entry under ``root`` (not ``root`` itself), by relative bytes path."""
    top = os.fsencode(root)
    out: dict[bytes, Node] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, top)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = Node("symlink", None, st.st_mtime_ns, target=os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = Node("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            else:
                h = hashlib.sha256()
                with open(full, "rb") as f:
                    while block := f.read(MiB):
                        h.update(block)
                out[rel] = Node(
                    "file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_size, h.hexdigest()
                )
    return out


def allocated(path: Path) -> int:
    """Bytes the filesystem allocated to a file (st_blocks is in 512-byte units)."""
    return os.lstat(path).st_blocks * 512


def make_tree(root: Path, *, big: int = 6 * MiB, seed: int = 1) -> None:
    """A tree with every kind of entry restore must rebuild."""
    import random

    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "empty.txt").write_bytes(b"")
    (root / "small.csv").write_bytes(b"id,name\n1,alpha\n2,beta\n" * 10)
    # larger than several chunks, half compressible, half random
    data = bytearray()
    while len(data) < big:
        data += rng.randbytes(64 * 1024) + (b"row,%d,some text\n" % len(data)) * 2000
    (root / "big.bin").write_bytes(bytes(data[:big]))
    nested = root / "a" / "b" / "c"
    nested.mkdir(parents=True)
    (nested / "deep.txt").write_bytes(b"deep\n")
    (root / "a" / "mode600.txt").write_bytes(b"secret\n")
    os.chmod(root / "a" / "mode600.txt", 0o600)
    (root / "a" / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "a" / "run.sh", 0o755)  # noqa: S103 - a mode to restore
    (root / "a" / "readonly.txt").write_bytes(b"do not touch\n")
    os.chmod(root / "a" / "readonly.txt", 0o444)
    os.chmod(root / "a" / "b", 0o750)  # noqa: S103 - a mode to restore
    # sparse: 20 MiB with three data islands (one across a chunk boundary region)
    with open(root / "sparse.img", "wb") as f:
        f.truncate(20 * MiB)
        for at in (0, 7 * MiB + 123, 19 * MiB):
            f.seek(at)
            f.write(rng.randbytes(300_000))
    (root / "links").mkdir()
    os.symlink("../small.csv", root / "links" / "relative")
    os.symlink("/etc/hostname", root / "links" / "absolute")
    os.symlink("nowhere/at/all", root / "links" / "dangling")
    os.symlink(b"caf\xe9-target", os.fsencode(root / "links") + b"/" + b"non-utf8-target")
    (Path(os.fsdecode(os.fsencode(root) + b"/" + NON_UTF8))).write_bytes(b"latin-1 name\n")
    # distinctive mtimes with nanoseconds, set last (children first)
    t = 1_600_000_000_123_456_789
    for n, (dirpath, dirnames, filenames) in enumerate(
        sorted(os.walk(os.fsencode(root), topdown=False), reverse=True)
    ):
        for m, name in enumerate(sorted(dirnames + filenames)):
            os.utime(
                os.path.join(dirpath, name),
                ns=(t + n * 1000 + m, t + n * 1_000_000 + m * 7),
                follow_symlinks=False,
            )
