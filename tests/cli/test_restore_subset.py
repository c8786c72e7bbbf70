"""``restore --include``: one path or pattern of a copy, fetching only the packs it needs."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.cli.conftest import Run

MIB = 1 << 20


def _copy(run: Run, tmp: Path) -> str:
    """A copy of a tree with two large files in packs of their own, and small ones; its sender."""
    owner = run("keygen", "--kind", "recipient", "-o", "owner.key").stdout.strip()
    sender = run("keygen", "--kind", "sender", "-o", "sender.key").stdout.strip()
    rnd = random.Random(3)
    files = [("claims/2019/a.csv", 2 * MIB), ("claims/2020/notes.txt", 100),
             ("scans/s1.pdf", 300), ("README", 10), ("claims/2020/b.csv", 2 * MIB)]  # fmt: skip
    send = ["send", "src", "--to", "store", "--job", "j", "--sender-key", "sender.key",
            "-r", owner, "--state", "state", "--pack-size", "1M"]  # fmt: skip
    for rel, size in files:
        path = tmp / "src" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rnd.randbytes(size))
        if rel.endswith("README"):  # a.csv and the small files in the packs of a first run
            sent = run(*send)
            assert sent.code == 0, sent.stderr
    (tmp / "src" / "claims" / "2020").chmod(0o750)
    sent = run(*send)  # b.csv in packs of its own
    assert sent.code == 0, sent.stderr
    return sender


def _restore(run: Run, sender: str, out: str, *filters: str) -> dict[str, object]:
    result = run("restore", "--store", "store", "--job", "j", "--identity", "owner.key",
                 "--sender", sender, "--out", out, "--json", "-q", *filters)  # fmt: skip
    assert result.code == 0, result.stderr
    summary: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return summary


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_include_restores_a_pattern_and_fetches_only_its_packs(run: Run, tmp_path: Path) -> None:
    sender = _copy(run, tmp_path)
    whole = _restore(run, sender, "all")

    part = _restore(run, sender, "part", "--include", "/claims/2020/*.csv")

    assert _tree(tmp_path / "part") == ["claims", "claims/2020", "claims/2020/b.csv"]
    src, out = tmp_path / "src" / "claims" / "2020", tmp_path / "part" / "claims" / "2020"
    assert (out / "b.csv").read_bytes() == (src / "b.csv").read_bytes()
    assert out.stat().st_mode & 0o777 == 0o750, "a directory held back keeps its mode"
    assert (part["files"], part["selection"]) == (
        1,
        "'--filter=+ /claims/2020/*.csv' '--filter=- /**'",
    )
    assert isinstance(whole["bytes_fetched"], int)
    assert isinstance(part["bytes_fetched"], int)
    # b.csv's 2 MiB and what shares its packs, never a.csv's packs
    assert part["bytes_fetched"] < 0.6 * whole["bytes_fetched"]


def test_exclude_and_a_directory_pattern(run: Run, tmp_path: Path) -> None:
    sender = _copy(run, tmp_path)

    _restore(run, sender, "out", "--exclude", "claims/", "--exclude", "README")

    assert _tree(tmp_path / "out") == ["scans", "scans/s1.pdf"]


def test_a_pattern_matching_nothing_restores_nothing_and_says_so(run: Run, tmp_path: Path) -> None:
    sender = _copy(run, tmp_path)

    result = run("restore", "--store", "store", "--job", "j", "--identity", "owner.key",
                 "--sender", sender, "--out", "out", "--include", "*.docx", "-q")  # fmt: skip

    assert result.code == 0
    assert "transferd: warning: nothing in job j matches the filter rules" in result.stderr
    assert _tree(tmp_path / "out") == []


def test_filters_are_refused_for_a_database_restore(run: Run, tmp_path: Path) -> None:
    run("keygen", "--kind", "recipient", "-o", "owner.key")

    result = run("restore", "--store", "store", "--job", "j", "--identity", "owner.key",
                 "--to", "postgresql://u@127.0.0.1:1/db", "--include", "x")  # fmt: skip

    assert result.code == 2
    assert "apply to a restore into a directory (--out)" in result.stderr
