"""A restore that reads a whole pack checks it as a verifier does (SPEC 13.6, 13.7).

Each blob is authenticated on its own, so damage outside the blobs (the header blob, the trailer)
changes no byte a reader releases: read by ranges, it goes unseen. When the chunks read from a
pack reach from its first blob to its last, the reader fetches the pack whole and refuses it
unless its size and SHA-256 are the object list's, so the restore of a whole job says that a
pack is damaged instead of restoring from it silently.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from tests.sent import Keys, send_tree
from transferd.core import objectlist
from transferd.core.catalog import ChunkRef
from transferd.errors import AuthenticationError, IntegrityError
from transferd.read.fetch import GAP, WHOLE_PACK_MAX, PackIndex, PackReader, reaches_whole_pack
from transferd.restore.directory import restore
from transferd.stores.local import LocalStore
from transferd.stores.memory import MemoryStore

JOB = "tree"
CONTENT = b"id;acte;montant\n" + b"1;consultation;25\n" * 40_000


@pytest.fixture
def sent(keys: Keys, tmp_path: Path) -> LocalStore:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "actes.csv").write_bytes(CONTENT)
    (tmp_path / "src" / "note.txt").write_bytes(b"une note\n")
    store = LocalStore(tmp_path / "store")
    send_tree(store, tmp_path / "src", keys, tmp_path / "state")
    return store


def _packs(store: LocalStore) -> list[Path]:
    """The job's pack files (objects starting 'TDPK')."""
    objects = Path(store.root) / "jobs" / JOB / "objects"
    return [p for p in objects.rglob("*") if p.is_file() and p.read_bytes()[:4] == b"TDPK"]


def _restore(store: LocalStore, keys: Keys, out: Path) -> None:
    asyncio.run(restore(store=store, job=JOB, identity=keys.owner, out=out,
                        sender=keys.sender.public()))  # fmt: skip


def test_an_intact_copy_restores_and_its_pack_is_read_whole(
    sent: LocalStore, keys: Keys, tmp_path: Path
) -> None:
    (pack,) = _packs(sent)
    assert pack.stat().st_size <= WHOLE_PACK_MAX
    _restore(sent, keys, tmp_path / "out")
    assert (tmp_path / "out" / "actes.csv").read_bytes() == CONTENT


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:-1], "has .* bytes, its object list says .*: it was cut short"),
        (lambda b: b + b"\x00", "has .* bytes, its object list says .*: it was cut short or ext"),
        (lambda b: b[:-2] + bytes([b[-2] ^ 1]) + b[-1:], "does not hash to its name"),
        (lambda b: b[:-40] + bytes([b[-40] ^ 0x80]) + b[-39:], "does not hash to its name"),
    ],
    ids=["trailer_cut", "byte_appended", "trailer_byte_flipped", "header_byte_flipped"],
)
def test_damage_outside_the_blobs_is_reported_not_restored_silently(
    sent: LocalStore, keys: Keys, tmp_path: Path, damage: object, message: str
) -> None:
    (pack,) = _packs(sent)
    pack.chmod(0o644)
    pack.write_bytes(damage(pack.read_bytes()))  # type: ignore[operator]
    with pytest.raises(IntegrityError, match=message) as caught:
        _restore(sent, keys, tmp_path / "out")
    assert pack.name in caught.value.message
    assert "damaged outside the chunks read" in caught.value.message


def test_a_damaged_blob_in_a_pack_read_whole_still_names_its_chunk(
    sent: LocalStore, keys: Keys, tmp_path: Path
) -> None:
    (pack,) = _packs(sent)
    pack.chmod(0o644)
    data = pack.read_bytes()
    pack.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    with pytest.raises(AuthenticationError, match=r"at offset 0: .*failed authentication"):
        _restore(sent, keys, tmp_path / "out")


def test_whole_pack_reach() -> None:
    size = 5 + 3 * 1000 + 124 + 4
    blobs = [(5, 1005), (1005, 2005), (2005, 3005)]
    assert reaches_whole_pack(size, blobs)
    assert reaches_whole_pack(size, list(reversed(blobs)))  # the order they are asked in
    assert not reaches_whole_pack(size, [])
    gapped = [(5, 1005), (1006 + GAP, 2006 + GAP)]  # more than GAP between two chunks read
    assert not reaches_whole_pack(2006 + GAP + 128, gapped)
    assert not reaches_whole_pack(size + 2 * GAP, blobs)  # the last blob read is far from the end
    assert not reaches_whole_pack(WHOLE_PACK_MAX + 1, [(5, WHOLE_PACK_MAX - 200)])


def test_a_store_returning_fewer_bytes_than_asked_is_an_integrity_failure() -> None:
    """SPEC 13.4 step 2: the reader takes all of a blob's range or fails; it never opens less."""

    class ShortStore(MemoryStore):
        async def get_object(
            self, job: str, name: str, offset: int = 0, length: int | None = None
        ) -> bytes:
            data = await super().get_object(job, name, offset, length)
            return data[:-1] if length is not None else data

    async def run() -> None:
        store = ShortStore()
        pack = b"TDPK\x01" + bytes(4 * GAP) + (84).to_bytes(4, "big")
        name = objectlist.ObjectRef(hashlib.sha256(pack).digest(), len(pack))
        await store.put_object(JOB, name.name, pack)
        segment = objectlist.encode_segment([name])
        ref = objectlist.ObjectRef(hashlib.sha256(segment).digest(), len(segment))
        await store.put_object(JOB, ref.name, segment)
        reader = PackReader(store, JOB, PackIndex(store, JOB, [ref]))
        await reader.blob(ChunkRef(0, 5, 100, 59, bytes(32)))

    with pytest.raises(IntegrityError, match="shorter than the object list says"):
        asyncio.run(run())
