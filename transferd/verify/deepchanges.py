"""Verify with the key, for a follow copy: open every change segment its newest manifest lists.

``verify --deep`` opens every chunk the catalog names (verify/deep.py); a follow copy's changes
live in change segments (SPEC §11.5) whose chunks the catalog does not name. Each segment is
opened under the catalog key, its change stream (and the cut-over's sequences, in the last one)
read chunk by chunk, every chunk under its AEAD tag and chunk id, the stream against its size and
BLAKE3, and the pgoutput messages against the segment's WAL range and counts (POSTGRESQL.md §8),
as a restore would read them, but writing nothing and going on after a failure: each damaged
segment is one failure naming it, and the next segment is read.
"""

from __future__ import annotations

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
