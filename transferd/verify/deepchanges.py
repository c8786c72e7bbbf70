"""Verify with the key, for a follow copy: open every change segment its newest manifest lists.

``verify --deep`` opens every chunk the catalog names (verify/deep.py); a follow copy's changes
live in change segments (SPEC §11.5) whose chunks the catalog does not name. Each segment is
opened under the catalog key, its change stream (and the cut-over's sequences, in the last one)
read chunk by chunk, every chunk under its AEAD tag and chunk id, the stream against its size and
BLAKE3, and the pgoutput messages against the segment's WAL range and counts (POSTGRESQL.md §8),
as a restore would read them, but writing nothing and going on after a failure: each damaged
segment is one failure naming it, and the next segment is read. Before them, the changes are
checked to continue the snapshot: the catalog's source record is a slot's, and the first segment
starts at its consistent point (SPEC §11.5, R-CG-ORIGIN, R-CG-FROM-SNAPSHOT); the cut-over's
sequences stream is checked against its cutover record's count (R-CG-SEQUENCES).
"""

from __future__ import annotations

from typing import Any

from transferd.core.changes import ChangeRef, check_follows_snapshot
from transferd.core.jobkey import JobKey
from transferd.core.manifest import SignedManifest
from transferd.core.pgoutput import lsn_text
from transferd.errors import IntegrityError, TransferdError
from transferd.read.changes import ChangeReader, change_refs
from transferd.report.model import Failure, Report
from transferd.stores.base import Store


async def open_changes(store: Store, newest: SignedManifest, key: JobKey, report: Report) -> None:
    """Every change segment of ``newest``, opened and read; failures go to ``report``."""
    try:
        refs = await change_refs(store, newest)
    except TransferdError as e:  # the lists were checked without the key: reported there
        report.fail(Failure("chunk", f"the change lists could not be read: {e.message}"))
        return
    changes = 0
    reader = ChangeReader(store, newest, key)
    try:
        source: dict[str, Any] | None = await reader.source_record()
    except TransferdError:  # the catalog's own failure, reported by its walk (verify/deep.py)
        source = None
    if source is not None:
        _check_follows_snapshot(source, refs, report)
    for ref in refs:
        wal = f"WAL {lsn_text(ref.start_lsn)} to {lsn_text(ref.end_lsn)}"
        where = f"change segment {ref.name} ({wal})"
        try:
            segment = await reader.segment(ref)
            async for _event in reader.events(ref, segment):
                changes += 1
            if segment.cutover is not None:
                await reader.text(segment.cutover)
        except IntegrityError as e:
            report.fail(Failure("stream", f"{where}: {e.message}", object=ref.name))
        except TransferdError as e:
            report.fail(Failure("chunk", f"{where}: {e.message}", object=ref.name))
    report.count("change_events_opened", changes)


def _check_follows_snapshot(source: dict[str, Any], refs: list[ChangeRef], report: Report) -> None:
    """The changes continue the snapshot (SPEC 11.5: R-CG-ORIGIN, R-CG-FROM-SNAPSHOT)."""
    try:
        check_follows_snapshot(source, refs[0] if refs else None)
    except IntegrityError as e:
        report.fail(Failure("stream", f"the changes do not follow the snapshot: {e.message}"))
    except TransferdError as e:
        report.fail(Failure("chunk", f"the changes do not follow the snapshot: {e.message}"))
