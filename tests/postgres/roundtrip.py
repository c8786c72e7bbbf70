"""Send a database with the library and restore it, for the tests (a fresh event loop each)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from transferd.core.keys import RecipientIdentity, SenderSecretKey
from transferd.restore.postgresql import PgRestoreResult, restore_pg
from transferd.send.config import PipelineConfig
from transferd.send.run import SendResult, send
from transferd.sources.postgres import conninfo
from transferd.sources.postgres.source import PgOptions, PostgresSource
from transferd.stores.base import Store


async def send_db(
    store: Store,
    url: str,
    sender: SenderSecretKey,
    owner: RecipientIdentity,
    state: Path,
    options: PgOptions | None = None,
    job: str = "pg",
) -> tuple[SendResult, PostgresSource]:
    source = PostgresSource(url, options or PgOptions(jobs=2))
    try:
        result = await send(
            source=source, store=store, job=job, sender=sender, recipients=[owner.public()],
            state_dir=state, config=PipelineConfig(workers=2), rng=os.urandom,
        )  # fmt: skip
    finally:
        await source.close()
    return result, source


def restore_db(
    store: Store,
    url: str,
    sender: SenderSecretKey,
    owner: RecipientIdentity,
    job: str = "pg",
    **kwargs: Any,
) -> PgRestoreResult:
    return asyncio.run(
        restore_pg(
            store=store, job=job, identity=owner, target=conninfo.parse(url),
            sender=sender.public(), jobs=2, **kwargs,
        )
    )  # fmt: skip
