"""Rekey: a new manifest with a changed recipient set, and not one other object changed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.sent import Keys, send_tree
from transferd.core import manifest
from transferd.core.keys import RecipientIdentity, RecipientKey
from transferd.errors import ConfigError, JobNotFoundError, NotARecipientError, SignatureError
from transferd.rekey import RekeyResult, rekey
from transferd.restore.directory import restore
from transferd.stores.base import Store

JOB = "tree"


def objects(store: Store) -> set[tuple[str, int]]:
    async def listing() -> set[tuple[str, int]]:
        return {item async for item in store.list_objects(JOB)}

    return asyncio.run(listing())


def do_rekey(
    store: Store,
    keys: Keys,
    identity: RecipientIdentity,
    add: list[RecipientKey] = [],  # noqa: B006 - never mutated
    remove: list[RecipientKey] = [],  # noqa: B006 - never mutated
) -> RekeyResult:
    return asyncio.run(
        rekey(store=store, job=JOB, identity=identity, sender=keys.sender, add=add,
              remove=remove, created="2026-11-23T08:00:00Z")
    )  # fmt: skip


@pytest.fixture
def sent(store: Store, keys: Keys, tmp_path: Path) -> Store:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "table.csv").write_bytes(b"id,value\n" + b"1,2\n" * 100_000)
    send_tree(store, tmp_path / "src", keys, tmp_path / "state")
    return store


def test_new_recipient_reads_the_removed_one_no_longer(
    sent: Store, keys: Keys, tmp_path: Path
) -> None:
    before = objects(sent)

    result = do_rekey(sent, keys, keys.owner, add=[keys.other.public()],
                      remove=[keys.owner.public()])  # fmt: skip

    assert objects(sent) == before  # no chunk, pack or catalog re-sent
    assert asyncio.run(sent.list_manifests(JOB)) == [(1, 0), (2, 0)]
    manifest.check_succession(result.previous, result.manifest)
    new, old = result.manifest.body, result.previous.body
    assert (new.catalog, new.object_lists, new.key_check) == (
        old.catalog, old.object_lists, old.key_check
    )  # fmt: skip
    assert [s.recipient for s in new.recipients] == [keys.other.public()]

    asyncio.run(restore(store=sent, job=JOB, identity=keys.other, out=tmp_path / "new",
                        sender=keys.sender.public()))  # fmt: skip
    assert (tmp_path / "new" / "table.csv").read_bytes() == b"id,value\n" + b"1,2\n" * 100_000
    with pytest.raises(
        NotARecipientError, match="not encrypted to key " + keys.owner.public().to_text()
    ):
        asyncio.run(restore(store=sent, job=JOB, identity=keys.owner, out=tmp_path / "old",
                            sender=keys.sender.public()))  # fmt: skip


def test_staying_recipients_keep_their_stanzas_as_they_were(sent: Store, keys: Keys) -> None:
    result = do_rekey(sent, keys, keys.owner, add=[keys.other.public()])

    assert result.manifest.body.recipients[0] == result.previous.body.recipients[0]
    assert [s.recipient for s in result.manifest.body.recipients] == [
        keys.owner.public(), keys.other.public()
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"remove": "owner"}, "refusing to remove the last recipient"),
        ({"remove": "other"}, "is not a recipient of job tree"),
        ({"add": "owner"}, "is already a recipient of job tree"),
        ({}, "nothing to change"),
        ({"add": "other", "remove": "other"}, "is given twice|both added and removed"),
    ],
)
def test_changes_that_make_no_sense_are_refused(
    sent: Store, keys: Keys, change: dict[str, str], message: str
) -> None:
    pick = {"owner": keys.owner.public(), "other": keys.other.public()}
    add = [pick[change["add"]]] if "add" in change else []
    remove = [pick[change["remove"]]] if "remove" in change else []

    with pytest.raises(ConfigError, match=message):
        do_rekey(sent, keys, keys.owner, add=add, remove=remove)
    assert asyncio.run(sent.list_manifests(JOB)) == [(1, 0)]


def test_only_a_recipient_can_rekey(sent: Store, keys: Keys) -> None:
    with pytest.raises(NotARecipientError):
        do_rekey(sent, keys, keys.other, add=[keys.other.public()])


def test_the_newest_manifest_must_be_signed_by_the_sender_key(sent: Store, keys: Keys) -> None:
    impostor = Keys(type(keys.sender)(bytes(32)), keys.owner, keys.other)
    with pytest.raises(SignatureError):
        do_rekey(sent, impostor, keys.owner, add=[keys.other.public()])


def test_unknown_job(store: Store, keys: Keys) -> None:
    with pytest.raises(JobNotFoundError):
        do_rekey(store, keys, keys.owner, add=[keys.other.public()])
