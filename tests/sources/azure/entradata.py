"""The container the Entra ID tests read: small blobs, one read in ranges, an ADLS directory."""

from __future__ import annotations

import os

CONTAINER = "entra"
BLOBS = {"a/one.bin": b"x" * 1000, "a/large.bin": os.urandom(300 * 1024 + 17), "b.csv": b"1;2\n"}
