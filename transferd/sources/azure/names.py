"""Blob names to catalog paths: reversible, and never a path the catalog or a restore refuses.

A blob name is any string of up to 1,024 characters; ``/`` only suggests directories. A catalog
path (protocol/SPEC.md §10.3) is relative, with no empty, ``.`` or ``..`` component, and a
restore turns it into files and directories. The name relative to the source's prefix becomes
the path unchanged when it is *safe*:

- not empty, not starting with ``/``, no empty component (so no ``//``, no trailing ``/``), no
  ``.`` or ``..`` component, no NUL, each component at most 255 bytes of UTF-8 (a file name's
  limit on Linux), and a first component other than ``.transferd-blob-names``;
- and no blob listed before it is a file at one of its parent directories (blob ``a`` and blob
  ``a/b`` cannot both be restored; the one listed first, ``a``, keeps its name).

Any other name is stored under ``.transferd-blob-names/<hex SHA-256 of the relative name's UTF-8>``
and its full blob name is recorded in the entry (``blob_name``), so the mapping is reversible:
a reader that wants blob names back renames those entries; one that restores files gets every
blob, safely, including the ones a file system could not have held under their own name.

Listing order: Azure lists blobs in name order, so a name's possible parent files were all listed
before it. Only names that may still turn out to be a later blob's parent are remembered (a stack
that pops once the listing has moved past ``name/``), so memory stays small whatever the
container's size. The order assumed is that of Python's string comparison, which Azure's agrees
with for every character of the Basic Multilingual Plane.
"""

from __future__ import annotations

import hashlib

RESERVED = ".transferd-blob-names"
NAME_MAX = 255


def is_safe(name: str) -> bool:
    if not name or name.startswith("/") or "\x00" in name:
        return False
    parts = name.split("/")
    if parts[0] == RESERVED:
        return False
    try:
        return all(p not in ("", ".", "..") and len(p.encode()) <= NAME_MAX for p in parts)
    except UnicodeEncodeError:  # a lone surrogate: not UTF-8
        return False


def mapped_path(name: str) -> str:
    return f"{RESERVED}/{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()}"


class PathMapper:
    """Feed relative blob names in listing order; each gets its catalog path once."""

    def __init__(self) -> None:
        self._files: list[str] = []
        """Safe names already given as files that a later name could still have as a parent."""

    def path(self, name: str) -> tuple[str, bool]:
        """(catalog path, True when the name had to be mapped)."""
        if not self._fits(name):
            return mapped_path(name), True
        self._files.append(name)
        return name, False

    def directory(self, name: str) -> str | None:
        """The catalog path of a directory placeholder (an ADLS Gen2 directory, or the marker
        hadoop and AzCopy leave), or None when it cannot be one: an unsafe name, or under a
        file. A directory is no parent that makes later names unsafe, so it is not kept."""
        return name if self._fits(name) else None

    def _fits(self, name: str) -> bool:
        stack = self._files
        # Names under "T/" sort between "T/" and "T0" ("0" follows "/"): once past, pop T.
        while stack and name >= stack[-1] + "0":
            stack.pop()
        return is_safe(name) and not any(name.startswith(t + "/") for t in stack)
