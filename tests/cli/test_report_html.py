"""The HTML verify report as an auditor reads it: the verdict once, who verified at the top,
object counts that stay right when objects are missing, and what this mode does not prove."""

from __future__ import annotations

import json
import random
import re
from html import unescape
from pathlib import Path

from tests.cli.conftest import Run

MIB = 1 << 20


def _copy(run: Run, tmp: Path, runs: int = 1) -> str:
    owner = run("keygen", "--kind", "recipient", "-o", "owner.key").stdout.strip()
    sender = run("keygen", "--kind", "sender", "-o", "sender.key").stdout.strip()
    run("keygen", "--kind", "sender", "-o", "auditor.key")
    rnd = random.Random(5)
    (tmp / "src").mkdir()
    for n in range(runs):
        (tmp / "src" / f"part{n}.bin").write_bytes(rnd.randbytes(3 * MIB))
        sent = run("send", "src", "--to", "store", "--job", "j", "--sender-key", "sender.key",
                   "-r", owner, "--state", "state", "--pack-size", "1M")  # fmt: skip
        assert sent.code == 0, sent.stderr
    return sender


def _text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _header(html: str) -> str:
    match = re.search(r'<header class="verdict".*?</header>', html, re.S)
    assert match is not None
    return _text(match.group(0))


def test_a_pass_says_its_verdict_once_and_who_verified(run: Run, tmp_path: Path) -> None:
    sender = _copy(run, tmp_path, runs=2)
    auditor = run("keys", "show", "auditor.key").stdout.strip().split()[-1]

    result = run("verify", "--store", "store", "--job", "j", "--sender", sender, "--seen-state",
                 "seen", "--report-html", "r.html", "--sign-report", "auditor.key")  # fmt: skip

    assert result.code == 0, result.stderr
    html = (tmp_path / "r.html").read_text()
    assert _text(html).count("the copy is complete and untouched") == 1
    header = _header(html)
    assert header.startswith("transferd verify report PASS the copy is complete and untouched")
    assert f"Verified by {auditor} on " in header
    assert "the key that signed this report" in header
    assert "it does not prove that the chunks decrypt" in header
    assert "objects: " in result.stdout
    assert "missing" not in result.stdout


def test_an_unsigned_report_says_nobody_attests_who_verified(run: Run, tmp_path: Path) -> None:
    sender = _copy(run, tmp_path)

    run("verify", "--store", "store", "--job", "j", "--sender", sender, "--seen-state", "seen",
        "--report-html", "r.html")  # fmt: skip

    header = _header((tmp_path / "r.html").read_text())
    assert "this report is not signed" in header


def test_object_counts_stay_right_when_an_object_list_is_missing(run: Run, tmp_path: Path) -> None:
    sender = _copy(run, tmp_path)
    listed = run("ls", "--store", "store", "--job", "j", "--sender", sender, "--json")
    objects = json.loads(listed.stdout.splitlines()[0])["objects"]
    objects_dir = tmp_path / "store" / "jobs" / "j" / "objects"
    stored = sorted(p for p in objects_dir.rglob("*") if p.is_file())
    assert len(stored) == objects + 2  # the packs, a catalog and an object-list segment
    small = sorted(stored, key=lambda p: p.stat().st_size)[:2]  # the two segments
    for path in [*small, max(stored, key=lambda p: p.stat().st_size)]:
        path.unlink()  # both segments and a pack

    result = run("verify", "--store", "store", "--job", "j", "--sender", sender, "--seen-state",
                 "seen", "--report-html", "r.html")  # fmt: skip

    assert result.code == 20
    assert f"objects: {objects + 2} named (3 missing), {objects - 1} in the store" in result.stdout
    page = _text((tmp_path / "r.html").read_text())
    assert f"Objects named {objects + 2} (by the signed manifests)" in page
    assert f"Objects in store {objects - 1}" in page
    assert "Objects missing at least 3 (2 named one by one;" in page
    assert _header((tmp_path / "r.html").read_text()).startswith(
        "transferd verify report INCOMPLETE the copy is incomplete "
        "at least 3 missing · exit code 20"
    )


def test_each_mode_says_what_it_does_not_prove(run: Run, tmp_path: Path) -> None:
    sender = _copy(run, tmp_path)
    common = ["verify", "--store", "store", "--job", "j", "--sender", sender, "--seen-state",
              "seen", "--report-html", "r.html", "--identity", "owner.key"]  # fmt: skip

    said = {}
    for name, extra in {"deep": ["--deep"], "against": ["--against", "src"],
                        "both": ["--deep", "--against", "src"]}.items():  # fmt: skip
        assert run(*common, *extra).code == 0
        match = re.search(r'id="not-proven">([^<]*)<', (tmp_path / "r.html").read_text())
        assert match is not None
        said[name] = match.group(1)

    assert "does not prove that the copy matches the source as it is now" in said["deep"]
    assert "does not prove that they decrypt" in said["against"]
    assert "does not prove that the copy stays intact after it" in said["both"]
