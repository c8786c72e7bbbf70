"""A catalog checked as a whole: each record's members, their order, and the totals.

``check_record`` checks one record against SPEC 10.2 and 10.3: exactly its members (the `source`
record excepted), their types and ranges, its path, its chunk references. ``CatalogChecker`` is
fed every record of every segment in order and checks what no single record shows (SPEC 10.4,
13.3, 13.5)::

    catalog = source *entry totals
    entry   = dir / symlink / stream
    stream  = (file / table) *chunks end

A record out of that order is a format failure. A stream cut short, by another entry, by the
totals or by the end of the catalog, is an integrity failure (SPEC 13.5: every chunk released so
far may have been authentic, the stream is still incomplete), as are an `end` whose size is not
the sum of its chunks, a catalog that stops before its totals, and totals that disagree with the
records. Entries come in strictly increasing bytewise order of their paths (SPEC 10.4), so a
path named twice, or out of order, is a format failure seen by comparing with the previous path.

An entry may not lie *inside* an entry that is not a directory (SPEC 10.3): after a symlink
``a`` → ``/etc`` or a file ``a``, a path ``a/…`` would have a restore write through the link (or
fail on the file). This is the rule restore's target (restore/tree.py) enforces on disk, made a
rule of the catalog, so that ``verify --deep`` reports such a copy as altered before anyone
restores it, and restore refuses it before it writes there.

The checker holds the open stream, seven counters, the previous path and the non-directory
entries that a later path may still lie under: a catalog of any length is checked in one pass,
in memory bounded by the depth of its paths (a set of every path seen would cost ~80 bytes per
entry, 800 MB for a job of ten million files).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from transferd.core.catalog import ChunkRef, name_from, record_chunks, safe_path
from transferd.core.jobkey import b64decode_strict
from transferd.errors import FormatError, IntegrityError

SOURCE_KINDS = frozenset({"directory", "postgresql", "azure-blob"})
TOTALS = ("files", "dirs", "symlinks", "tables", "rows", "chunks", "bytes")
HEAD_KINDS = frozenset({"dir", "symlink", "file", "table"})
STREAM_KINDS = frozenset({"file", "table"})
MODE_MAX = 0o7777
"""A mode is permission bits only (SPEC 10.2: st_mode & 0o7777)."""
MAPPED_NAMES = b".transferd-blob-names"
"""First component of the path of an Azure blob whose name is not a safe path (SPEC 10.3)."""

_NO_MEMBERS: frozenset[str] = frozenset()
_MEMBERS: dict[str, frozenset[str]] = {
    "dir": frozenset({"path", "mode", "mtime_ns"}),
    "symlink": frozenset({"path", "target", "mtime_ns"}),
    "file": frozenset({"path", "mode", "mtime_ns"}),
    "table": frozenset({"path", "schema", "name", "format", "encoding", "columns"}),
    "chunks": frozenset({"c"}),
    "end": frozenset({"size", "blake3"}),
    "totals": frozenset(TOTALS),
}
"""Members besides `t` each record type has (`path`/`target` standing for either form)."""
_AZURE_FILE = frozenset({"etag", "content_md5", "md5_checked"})
_AZURE_FILE_OPTIONAL = frozenset({"version_id", "blob_name"})
_TABLE_STRINGS = ("schema", "name", "format", "encoding")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Head:
    """What a head record (`dir`, `symlink`, `file`, `table`) names, checked."""

    kind: str
    path: bytes
    mode: int | None
    mtime_ns: int | None
    target: bytes | None = None

    @property
    def is_stream(self) -> bool:
        return self.kind in STREAM_KINDS


def show(path: bytes) -> str:
    """A path for messages: undecodable bytes escaped, never raising."""
    return path.decode("utf-8", "backslashreplace")


def check_record(
    record: dict[str, Any], source_kind: str | None = None, refs: list[ChunkRef] | None = None
) -> Head | list[ChunkRef] | None:
    """Check one record on its own: the Head a head record names, the references of a `chunks`
    record (``refs``: already parsed by the caller with ``catalog.record_chunks``), else None.

    ``source_kind`` is the catalog's `source` kind: `file` records of an `azure-blob` source
    carry the blob's members. An `end` may carry `rows`; whether it must is the stream's
    question (``CatalogChecker``)."""
    kind = record.get("t")
    if kind == "source":
        _check_source(record)
        return None
    if kind not in _MEMBERS:
        raise FormatError(f"catalog record of unknown type {kind!r}")
    required, optional = _MEMBERS[kind], _NO_MEMBERS
    if kind == "file" and source_kind == "azure-blob":
        required, optional = required | _AZURE_FILE, _AZURE_FILE_OPTIONAL
    elif kind == "end":
        optional = frozenset({"rows"})
    _check_members(record, kind, required, optional)
    if kind == "chunks":
        return record_chunks(record) if refs is None else refs
    if kind == "end":
        for member in ("size", "rows"):
            if member in record and not _is_count(record[member]):
                raise FormatError(f"catalog end record: {member} is not a non-negative integer")
        if not isinstance(record["blake3"], str) or not _HEX64.fullmatch(record["blake3"]):
            raise FormatError("catalog end record: blake3 is not 64 lower-case hex digits")
        return None
    if kind == "totals":
        for member in TOTALS:
            if not _is_count(record[member]):
                raise FormatError(f"catalog totals: {member} is not a non-negative integer")
        return None
    return _head(record, kind)


def _head(record: dict[str, Any], kind: str) -> Head:
    path = safe_path(record)
    mode, mtime = record.get("mode"), record.get("mtime_ns")
    if mode is not None and not (_is_count(mode) and mode <= MODE_MAX):
        raise FormatError(f"catalog: {show(path)} has mode {mode!r}, not permission bits")
    if mtime is not None and (not isinstance(mtime, int) or isinstance(mtime, bool)):
        raise FormatError(f"catalog: {show(path)} has a modification time that is no integer")
    target = None
    if kind == "symlink":
        target = name_from(record, "target")
        if not target or b"\x00" in target:
            raise FormatError(f"catalog: symlink {show(path)} has an empty target or one with NUL")
    elif kind == "table":
        _check_table(record, path)
    elif "etag" in record:  # a file of an azure-blob source, its members checked present
        _check_azure_file(record, path)
    return Head(kind, path, mode, mtime, target)


def _check_members(
    record: dict[str, Any], kind: str, required: frozenset[str], optional: frozenset[str]
) -> None:
    names = {m[:-4] if m in ("path_b64", "target_b64") else m for m in record}
    if len(names) != len(record):
        raise FormatError(f"catalog {kind} record gives a name both as text and as base64")
    names.discard("t")
    missing, unknown = required - names, names - required - optional
    if missing or unknown:
        raise FormatError(
            f"catalog {kind} record has other members than SPEC 10.2 lists: "
            f"missing {sorted(missing)}, unknown {sorted(unknown)}"
        )


def _check_source(record: dict[str, Any]) -> None:
    if record.get("kind") not in SOURCE_KINDS:
        raise FormatError(f"catalog source record: unknown kind {record.get('kind')!r}")
    for member, value in record.items():
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise FormatError(f"catalog source record: {member} is neither a string nor an integer")


def _check_table(record: dict[str, Any], path: bytes) -> None:
    if not all(isinstance(record[m], str) for m in _TABLE_STRINGS):
        raise FormatError(f"catalog: table {show(path)}: schema, name, format, encoding are text")
    columns = record["columns"]
    if not isinstance(columns, list) or not all(
        isinstance(c, list) and len(c) == 2 and all(isinstance(x, str) for x in c) for c in columns
    ):
        raise FormatError(f"catalog: table {show(path)}: columns are [name, type] string pairs")


def _check_azure_file(record: dict[str, Any], path: bytes) -> None:
    strings = [record["etag"], record.get("version_id", ""), record.get("blob_name", "")]
    if not all(isinstance(s, str) for s in strings) or not isinstance(record["md5_checked"], bool):
        raise FormatError(f"catalog: blob {show(path)} has a member of the wrong type")
    if len(b64decode_strict(record["content_md5"], "content_md5")) != 16:
        raise FormatError(f"catalog: blob {show(path)}: content_md5 is not 16 bytes")
    if ("blob_name" in record) != (path.split(b"/", 1)[0] == MAPPED_NAMES):
        raise FormatError(
            f"catalog: blob {show(path)}: blob_name is given exactly for a mapped name (SPEC 10.3)"
        )


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class CatalogChecker:
    """Feed every record of a catalog in order with ``feed``, then call ``finish``."""

    def __init__(self) -> None:
        self.source: dict[str, Any] | None = None
        self.totals: dict[str, Any] | None = None
        self.counts = dict.fromkeys(TOTALS, 0)
        """What the records hold so far, in the terms of the totals record."""
        self.stream: Head | None = None
        """The file or table open now (its `end` not yet read)."""
        self.stream_size = 0
        """Bytes of the open stream's chunks so far: the offset of its next chunk."""
        self._last_path: bytes | None = None
        self._leaves: list[bytes] = []
        """Non-directory entries a later path may lie under, innermost last (see ``_head``)."""
        self._records = 0

    def feed(
        self, record: dict[str, Any], refs: list[ChunkRef] | None = None
    ) -> Head | list[ChunkRef] | None:
        """Check the next record; returns what ``check_record`` does."""
        n, self._records = self._records, self._records + 1
        kind = record.get("t")
        source_kind = None if self.source is None else self.source["kind"]
        checked = check_record(record, source_kind, refs)
        if self.totals is not None:
            raise FormatError(f"catalog record {n}, a {kind} record, follows the totals")
        if self.source is None:
            if kind != "source":
                raise FormatError(f"catalog starts with a {kind} record, not its source")
            self.source = record
            return None
        if kind == "source":
            raise FormatError(f"catalog record {n} is a second source record")
        if kind == "chunks":
            assert isinstance(checked, list)  # noqa: S101 - check_record returns the references
            self._chunks(checked)
        elif kind == "end":
            self._end(record)
        else:
            if self.stream is not None:
                raise IntegrityError(
                    f"catalog: {show(self.stream.path)} is cut short, a {kind} record comes "
                    "before its end record"
                )
            if kind == "totals":
                self._totals(record)
            else:
                assert isinstance(checked, Head)  # noqa: S101 - a head record gives its Head
                self._head(checked)
        return checked

    def finish(self) -> None:
        """Refuse a catalog that stopped before its totals (inside a stream or not)."""
        if self.stream is not None:
            raise IntegrityError(
                f"catalog ends inside {show(self.stream.path)}: its end record never came"
            )
        if self.totals is None:
            raise IntegrityError("catalog ends without its totals record: it is truncated")

    def _head(self, head: Head) -> None:
        last = self._last_path
        if last is not None and head.path <= last:
            fault = "two records name" if head.path == last else "entries out of path order at"
            raise FormatError(f"catalog: {fault} {show(head.path)}")
        self._last_path = head.path
        self._check_not_inside_a_leaf(head)
        self.counts[head.kind + "s"] += 1
        if head.is_stream:
            self.stream, self.stream_size = head, 0

    def _check_not_inside_a_leaf(self, head: Head) -> None:
        """Refuse a path under an earlier symlink, file or table (SPEC 10.3).

        In byte order, everything under a leaf ``L`` (paths ``L/…``) sorts before ``L0`` (``0``
        is the byte after ``/``), and a later leaf ``M`` still in that range extends ``L`` by a
        byte below ``/`` (``L-x``), so its own range ends first: the leaves still in range form
        a stack, and only the innermost can hold the new path.
        """
        path, leaves = head.path, self._leaves
        while leaves and path >= leaves[-1] + b"0":
            leaves.pop()
        if leaves and path.startswith(leaves[-1] + b"/"):
            raise FormatError(
                f"catalog path {show(leaves[-1])} is not a directory (a symlink or a file), yet "
                f"the catalog places {show(path)} inside it; refusing to write through it"
            )
        if head.kind != "dir":
            leaves.append(path)

    def _chunks(self, refs: list[ChunkRef]) -> None:
        if self.stream is None:
            raise FormatError("catalog has a chunks record outside a file or table")
        self.stream_size += sum(r.plain_len for r in refs)
        self.counts["chunks"] += len(refs)

    def _end(self, record: dict[str, Any]) -> None:
        stream = self.stream
        if stream is None:
            raise FormatError("catalog has an end record outside a file or table")
        if ("rows" in record) != (stream.kind == "table"):
            fault = "lacks its rows" if stream.kind == "table" else "has rows (only a table's has)"
            raise FormatError(f"catalog: the end of {stream.kind} {show(stream.path)} {fault}")
        if record["size"] != self.stream_size:
            raise IntegrityError(
                f"catalog: {show(stream.path)} is {record['size']} bytes by its end record, "
                f"{self.stream_size} by its chunks"
            )
        self.counts["bytes"] += record["size"]
        self.counts["rows"] += record.get("rows", 0)
        self.stream = None

    def _totals(self, record: dict[str, Any]) -> None:
        wrong = [f"{m} {record[m]} (the records hold {self.counts[m]})"
                 for m in TOTALS if record[m] != self.counts[m]]  # fmt: skip
        if wrong:
            raise IntegrityError("catalog totals do not match its records: " + ", ".join(wrong))
        self.totals = record
