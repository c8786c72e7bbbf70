"""Real copies to verify: a directory sent with ``send`` into a LocalStore."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path

from transferd.core import manifest
from transferd.core.keys import RecipientIdentity, SenderPublicKey, SenderSecretKey
from transferd.send.config import PipelineConfig
from transferd.send.run import send
from transferd.sources.directory import DirectorySource
from transferd.stores.local import LocalStore

JOB = "snds-extract"
CONFIG = PipelineConfig(workers=2, pack_target=1)
"""pack_target=1 closes a pack after every chunk: a handful of small files make several packs."""


@dataclass
class Copy:
    root: Path
    store_dir: Path
    source: Path
    state: Path
    sender_secret: SenderSecretKey
    identity: RecipientIdentity
    job: str = JOB

    @property
    def sender(self) -> SenderPublicKey:
        return self.sender_secret.public()

    @property
    def job_dir(self) -> Path:
        return self.store_dir / "jobs" / self.job

    def objects(self) -> list[Path]:
        return sorted(p for p in (self.job_dir / "objects").glob("*/*") if p.is_file())

    def manifest(self, sequence: int) -> Path:
        return self.job_dir / "manifests" / f"{sequence:020d}"

    def send(self) -> None:
        async def run() -> None:
            store = LocalStore(self.store_dir)
            await send(
                source=DirectorySource(self.source),
                store=store,
                job=self.job,
                sender=self.sender_secret,
                recipients=[self.identity.public()],
                state_dir=self.state,
                config=CONFIG,
            )
            await store.close()

        asyncio.run(run())

    def packs(self) -> list[Path]:
        return [p for p in self.objects() if p.read_bytes()[:4] == b"TDPK"]


def write_tree(source: Path, seed: int = 1) -> None:
    rng = random.Random(seed)
    (source / "claims").mkdir(parents=True)
    for i in range(3):
        (source / "claims" / f"part-{i}.csv").write_bytes(rng.randbytes(20_000 + 7_000 * i))
    (source / "README.txt").write_text("extract of 2026-11\n")
    (source / "latest").symlink_to("claims/part-2.csv")


def make_copy(root: Path, seed: int = 1) -> Copy:
    source = root / "source"
    write_tree(source, seed)
    rng = random.Random(seed)
    copy = Copy(
        root=root,
        store_dir=root / "store",
        source=source,
        state=root / "state",
        sender_secret=SenderSecretKey.from_bytes(rng.randbytes(32)),
        identity=RecipientIdentity.from_bytes(rng.randbytes(32)),
    )
    copy.send()
    return copy


def flip_bit(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


def resign(copy: Copy, sequence: int, other: SenderSecretKey) -> None:
    """Replace manifest ``sequence`` by the same body signed by ``other`` (and naming it)."""
    signed = manifest.parse(copy.manifest(sequence).read_bytes())
    body = dataclasses.replace(signed.body, sender=other.public().to_text())
    path = copy.manifest(sequence)
    path.unlink()
    path.write_bytes(manifest.sign(body, other))
