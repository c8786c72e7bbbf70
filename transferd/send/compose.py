"""A send composed once: the options every caller gives, and the store, flow control, pipeline
configuration and source they make.

The CLI (``transferd send``), the daemon's jobs, a copy's agents and ``transferd plan`` each used
to open the store, wrap it in retries, limit its bandwidth and build the pipeline's configuration
in a way of their own, and they drifted apart. Each now fills in a ``SendOptions`` from what it
reads (arguments, ``[send]`` of the daemon's configuration, ``[pipeline]`` of a copy plan) and
calls ``compose_send``. An option a send gains (a bandwidth limit, a dry run, a required cipher
suite) is one field of ``SendOptions`` and its use in ``compose_send``: every caller then has it.

The store a send writes to is layered, outermost first:

- ``RetryingStore``: transient failures are retried with backoff (stores/retry.py);
- ``ThrottledStore``: uploads can be paused, are taken from every bandwidth limit given, and are
  counted (stores/throttle.py); inside the retries, so that a retried upload pays for its bytes
  again and every transient failure is counted;
- the store the location names: a directory, ``s3://…`` or a storage host (stores/open.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferd.core.constants import PACK_TARGET, PACK_TARGET_MAX
from transferd.core.keys import SenderSecretKey
from transferd.errors import ConfigError
from transferd.send.config import PipelineConfig, default_workers
from transferd.sources.base import Source
from transferd.sources.open import open_source
from transferd.stores.base import Store
from transferd.stores.open import open_store
from transferd.stores.ratelimit import TokenBucket
from transferd.stores.retry import RetryingStore
from transferd.stores.s3lock import LockPolicy
from transferd.stores.throttle import ThrottledStore
from transferd.util.pathfilter import PathFilter
from transferd.util.units import human_bytes

if TYPE_CHECKING:
    from transferd.sources.azure.auth import AzureOptions
    from transferd.sources.postgres.source import PgOptions

log = logging.getLogger(__name__)

LEVELS = range(1, 23)
"""zstd's levels; negative ones store literals raw (perf/README.md, "The zstd level")."""


@dataclass(frozen=True, kw_only=True)
class SendOptions:
    """How a send runs, whatever starts it. Every field has the default ``transferd send`` has;
    ``__post_init__`` refuses a value no send can run with, as a ConfigError naming it."""

    level: int = 1
    """zstd level of every chunk."""
    workers: int = field(default_factory=default_workers)
    """Compression and sealing threads."""
    uploads: int = 4
    """Packs in flight to the store."""
    pack_size: int = PACK_TARGET
    """A pack is closed once its blobs reach this many bytes."""
    retries: int = 8
    """Attempts per store request before a dead store ends the run."""
    bandwidth: int = 0
    """Upload bytes per second for this send; 0: no limit of its own (a daemon's shared limits
    are given to ``compose_send`` as buckets)."""
    ca_file: Path | None = None
    """A CA or self-signed certificate to trust for an ``https://`` store."""
    s3_config: Path | None = None
    """Where an ``s3://`` store's endpoint and credentials are (else ``$TRANSFERD_S3_CONFIG``)."""
    postgres: PgOptions | None = None
    """A PostgreSQL source's options: snapshot, parallelism, selection, password file."""
    azure: AzureOptions | None = None
    """An Azure Blob source's options: credential file, endpoint, read sizes."""
    object_lock: LockPolicy | None = None
    """Retention for what an ``s3://`` store keeps (stores/s3lock.py); refused elsewhere."""
    require_pq: bool = False
    """Refuse a job with a classic-only (X25519) recipient, whose key wrap a future quantum
    computer could open (``send --require-pq``, ``require_pq`` of the daemon's ``[send]``);
    without it such a job runs, with a warning."""
    select: PathFilter | None = None
    """A directory source's filter rules (``send --exclude/--include/--filter``): what they
    leave out is neither listed nor read, and the catalog records them (util/pathfilter.py)."""

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ConfigError(f"the zstd level is 1 to 22, not {self.level}")
        for name in ("workers", "uploads", "retries"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, not {getattr(self, name)}")
        if not 1 <= self.pack_size <= PACK_TARGET_MAX:
            raise ConfigError(
                f"the pack size is at most {human_bytes(PACK_TARGET_MAX)}, "
                f"not {human_bytes(self.pack_size)}",
                hint="readers refuse packs over 64 MiB (protocol/SPEC.md, section 8)",
            )
        if self.bandwidth < 0:
            raise ConfigError(f"the bandwidth limit cannot be negative ({self.bandwidth})")

    def pipeline_config(self) -> PipelineConfig:
        return PipelineConfig(
            level=self.level, workers=self.workers, uploads=self.uploads, pack_target=self.pack_size
        )

    def but(self, **changes: Any) -> SendOptions:
        """These options with some fields changed (checked again)."""
        return replace(self, **changes)

    @classmethod
    def from_table(cls, table: Mapping[str, Any], **given: Any) -> SendOptions:
        """Options from a configuration table (a copy plan's ``[pipeline]``): its keys are this
        class's field names, ``pack_size`` included; ``given`` overrides it."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"unknown send settings: {', '.join(unknown)}")
        return cls(**{**table, **given})


@dataclass
class ComposedSend:
    """What a send runs with: give ``source``, ``store`` and ``config`` to send/run.py's ``send``;
    ``flow`` is the valve (pause, ``idle()``, upload statistics). ``close()`` closes both the
    source and the store."""

    source: Source
    store: Store
    flow: ThrottledStore
    config: PipelineConfig
    options: SendOptions

    async def close(self) -> None:
        try:
            await self.source.close()
        finally:
            await self.store.close()


def open_send_store(
    location: str | Store,
    sender: SenderSecretKey | None,
    options: SendOptions,
    *,
    buckets: Sequence[TokenBucket] = (),
    on_manifest: Callable[[], None] | None = None,
) -> tuple[RetryingStore, ThrottledStore]:
    """The store at ``location`` for a send: retried, around its flow control, around the store
    itself (``location`` may be a store already open: the memory store of a test, the store
    that keeps nothing of ``transferd plan``). ``sender`` signs a storage host's requests.
    ``buckets`` are bandwidth limits shared beyond this send (a daemon's, a job's, whose rate an
    operator changes while it runs); ``options.bandwidth`` adds one of its own."""
    opened = (
        open_store(location, sender, options.ca_file, options.s3_config, lock=options.object_lock)
        if isinstance(location, str)
        else location
    )
    limits = [*buckets]
    if options.bandwidth:
        limits.append(TokenBucket(options.bandwidth))
    flow = ThrottledStore(opened, limits, on_manifest=on_manifest)
    return RetryingStore(flow, attempts=options.retries), flow


def compose_send(
    options: SendOptions,
    *,
    source: str | Source,
    to: str | Store,
    sender: SenderSecretKey | None,
    buckets: Sequence[TokenBucket] = (),
    on_manifest: Callable[[], None] | None = None,
) -> ComposedSend:
    """Everything a send of ``source`` (a spec as ``transferd send`` takes it, or a source already
    open) to the store at ``to`` runs with. Nothing is contacted yet: a wrong URL or an unreadable
    directory is refused here, a host that is down when the send starts."""
    store, flow = open_send_store(to, sender, options, buckets=buckets, on_manifest=on_manifest)
    opened = (
        open_source(source, postgres=options.postgres, azure=options.azure, select=options.select)
        if isinstance(source, str)
        else source
    )
    return ComposedSend(opened, store, flow, options.pipeline_config(), options)
