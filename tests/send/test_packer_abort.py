"""A packer whose run is already failing: the pack it finishes ends as a cancellation.

When an upload fails, the run's task group shuts down and cancels every task; a packer that had
a pack sealing on a worker thread resumes into that group and can no longer start the pack's
upload. Before, that was a RuntimeError ("TaskGroup … is shutting down") which the run reported
as a bug in place of the failed upload's error (seen under load in tests/daemon).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from transferd.core.jobkey import JobKey
from transferd.errors import PermanentStoreError
from transferd.send.config import Counters, PipelineConfig
from transferd.send.index import ChunkIndex
from transferd.send.packer import Packer
from transferd.send.recorder import Recorder
from transferd.send.state import open_job_state
from transferd.send.work import Sealed
from transferd.stores.memory import MemoryStore


def test_a_pack_finished_after_the_run_failed_ends_cancelled_and_frees_its_slot(
    tmp_path: Path,
) -> None:
    state = open_job_state(tmp_path, "aborted")
    try:
        config = PipelineConfig(workers=1, uploads=1)
        store = MemoryStore()
        key = JobKey(bytes(32))
        recorder = Recorder(state.journal, ChunkIndex(state.journal), 1)
        packer = Packer("aborted", key, store, recorder, config, Counters(), os.urandom)
        packer.release()
        # one chunk in the pack being filled (its bytes are not opened here)
        packer._place(Sealed(chunk_id=bytes(32), plain_len=100, blob=bytearray(120)))

        async def upload_fails() -> None:
            raise PermanentStoreError("the store refused the upload")

        async def main() -> None:
            group = asyncio.TaskGroup()

            async def run() -> None:
                async with group:
                    packer.start(group)
                    group.create_task(upload_fails())
                    await asyncio.Event().wait()  # cancelled when the group aborts

            with pytest.raises(ExceptionGroup) as failed:
                await run()
            assert failed.group_contains(PermanentStoreError)
            with pytest.raises(asyncio.CancelledError):
                await packer._ship()  # the group has ended: no RuntimeError
            assert not packer._slots.locked()  # the upload slot was given back

        asyncio.run(main())
    finally:
        state.close()
