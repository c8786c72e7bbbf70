"""The light pass of core/pgoutput.py against pypgoutput, the decoder the restore uses, on the
same streams: the same transactions, commit LSNs, relations and per-table counts."""

from __future__ import annotations

import random
import struct
import sys
from pathlib import Path

import pytest
from pypgoutput import decoders

from transferd.core import pgoutput
from transferd.errors import FormatError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "protocol" / "vectors" / "gen"))
import gen_changes as g


def random_stream(seed: int) -> tuple[bytes, int]:
    rnd = random.Random(seed)
    rels = [g.relation(16385 + i, "public", f"t{i}", rnd.choice("df"),
                       [("id", 23, True), ("v", 25, False)]) for i in range(3)]  # fmt: skip
    messages: list[bytes] = []
    lsn = 0x1000
    for xid in range(rnd.randint(1, 30)):
        begin_lsn = lsn + rnd.randint(16, 4096)
        messages.append(g.begin(begin_lsn, 700 + xid))
        for _ in range(rnd.randint(1, 20)):
            i = rnd.randrange(3)
            relid = 16385 + i
            messages.append(rels[i])
            value = "".join(rnd.choice("ab\t\n\\é") for _ in range(rnd.randint(0, 30)))
            kind = rnd.choice("IUDT")
            if kind == "I":
                messages.append(g.insert(relid, [str(rnd.randint(1, 99)), value]))
            elif kind == "U":
                messages.append(g.update(relid, [str(rnd.randint(1, 99)), None]))
            elif kind == "D":
                messages.append(g.delete(relid, [str(rnd.randint(1, 99)), None]))
            else:
                messages.append(g.truncate([relid]))
        lsn = begin_lsn + rnd.randint(8, 64)
        messages.append(g.commit(begin_lsn, lsn))
    return g.stream(*messages), lsn


@pytest.mark.parametrize("seed", range(20))
def test_light_pass_agrees_with_pypgoutput(seed: int) -> None:
    data, end = random_stream(seed)
    checker = pgoutput.StreamChecker(0, end)
    relations: dict[int, str] = {}
    counts: dict[tuple[str, str], list[int]] = {}
    ends: list[int] = []
    for message in pgoutput.frames(data):
        checker.feed(message)
        kind = bytes(message[:1])
        raw = bytes(message)
        if kind == b"B":
            assert decoders.Begin(raw).lsn == pgoutput.read_begin(raw).final_lsn
        elif kind == b"C":
            c = decoders.Commit(raw)
            assert (c.lsn_commit, c.lsn) == (pgoutput.read_commit(raw).commit_lsn,
                                             pgoutput.read_commit(raw).end_lsn)  # fmt: skip
            ends.append(c.lsn)
        elif kind == b"R":
            r = decoders.Relation(raw)
            light = pgoutput.read_relation(raw)
            assert (r.relation_id, r.namespace, r.relation_name) == (light.relid, light.schema,
                                                                     light.name)  # fmt: skip
            assert [c.name for c in r.columns] == [c[0] for c in light.columns]
            assert [bool(c.part_of_pkey) for c in r.columns] == [c[3] for c in light.columns]
            relations[r.relation_id] = r.relation_name
        elif kind == b"T":
            t = decoders.Truncate(raw)
            assert t.relation_ids == pgoutput.truncated_relations(raw)[1]
            for relid in t.relation_ids:
                counts.setdefault(("public", relations[relid]), [0, 0, 0, 0])[3] += 1
        else:
            full = {b"I": decoders.Insert, b"U": decoders.Update, b"D": decoders.Delete}[kind](raw)
            assert full.relation_id == pgoutput.relation_id(raw)
            which = b"IUD".index(kind)
            counts.setdefault(("public", relations[full.relation_id]), [0, 0, 0, 0])[which] += 1
    summary = checker.finish()
    assert summary.transactions == len(ends)
    assert summary.last_end_lsn == ends[-1]
    assert summary.counts == counts


def test_framer_cuts_a_stream_fed_in_any_pieces() -> None:
    data, _ = random_stream(3)
    whole = [bytes(m) for m in pgoutput.frames(data)]
    framer, got = pgoutput.Framer(), []
    for at in range(0, len(data), 7):
        got += framer.feed(data[at : at + 7])
    framer.finish()
    assert got == whole
    framer.feed(data[:5])
    with pytest.raises(FormatError):
        framer.finish()


def test_lsn_text_is_canonical() -> None:
    assert pgoutput.lsn_text(0x19A0160) == "0/19A0160"
    assert pgoutput.parse_lsn("1F/0") == 0x1F00000000
    for bad in ("0/019A0160", "0/19a0160", "0x0/1", "/1", "1/", "+1/1", "123456789/0", 5):
        with pytest.raises(FormatError):
            pgoutput.parse_lsn(bad)
    assert struct.calcsize(">QqI") == 20
