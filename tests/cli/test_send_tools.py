"""``send`` as an operator who knows rclone and restic drives it: an interrupted first run resumed
without ``-r``, filter rules, ``--dry-run``, ``--bwlimit`` and ``--json`` progress on stdout."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import REPO, Run

MIB = 1 << 20


def _keys(run: Run, tmp: Path) -> tuple[str, str]:
    owner = run("keygen", "--kind", "recipient", "-o", "owner.key").stdout.strip()
    sender = run("keygen", "--kind", "sender", "-o", "sender.key").stdout.strip()
    assert owner.startswith("tdr")
    assert sender.startswith("tds1")
    return owner, sender


def _tree(root: Path, big: int = 0) -> None:
    rnd = random.Random(7)
    for rel, size in [("a/x.csv", 300), ("a/tmp/y.csv", 200), ("b/z.txt", 100), ("b/w.csv", 900),
                      ("c.log", 50)]:  # fmt: skip
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rnd.randbytes(size))
    if big:
        (root / "big.bin").write_bytes(rnd.randbytes(big))


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONPATH=str(REPO), PYTHONUTF8="1", TRANSFERD_STATE=str(tmp / "state"))
    return env


def _stored(tmp: Path, what: str) -> int:
    """How many objects (or manifests) job j holds in the local store under ``tmp``."""
    where = tmp / "store" / "jobs" / "j" / what
    return sum(1 for p in where.rglob("*") if p.is_file()) if where.exists() else 0


@pytest.mark.slow
def test_an_interrupted_first_run_says_how_to_resume_and_resumes_without_r(
    run: Run, tmp_path: Path
) -> None:
    owner, sender = _keys(run, tmp_path)
    _tree(tmp_path / "src", big=6 * MIB)
    send = ["send", "src", "--to", "store", "--job", "j", "--sender-key", "sender.key",
            "--pack-size", "1M", "--state", "state"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "transferd", *send, "-r", owner, "--bwlimit", "1M"],
        cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while _stored(tmp_path, "objects") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # a pack or two acknowledged, far from the manifest at 1 MiB/s
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 130
    lines = err.splitlines()
    assert "transferd: error: interrupted" in lines
    (hint,) = [line for line in lines if line.startswith("transferd: hint: ")]
    assert "run the same command again to resume" in hint
    assert "-r may be left out" in hint
    assert hint.endswith(f"transferd {' '.join(send)} -r {owner} --bwlimit 1M")
    assert _stored(tmp_path, "manifests") == 0

    resumed = run(*send, "--json")  # the README's resume: no -r

    assert resumed.code == 0, resumed.stderr
    summary = json.loads(resumed.stdout.splitlines()[-1])
    assert (summary["sequence"], summary["complete"]) == (1, True)
    assert summary["bytes_sent"] < 5 * MIB, "what the host acknowledged is not sent again"
    restored = run("restore", "--store", "store", "--job", "j", "--identity", "owner.key",
                   "--sender", sender, "--out", "out")  # fmt: skip
    assert restored.code == 0, restored.stderr
    assert (tmp_path / "out" / "big.bin").read_bytes() == (
        tmp_path / "src" / "big.bin"
    ).read_bytes()


def test_a_new_job_without_recipients_is_refused_before_anything_is_sent(
    run: Run, tmp_path: Path
) -> None:
    _keys(run, tmp_path)
    _tree(tmp_path / "src")

    result = run("send", "src", "--to", "store", "--job", "j", "--sender-key", "sender.key",
                 "--state", "state")  # fmt: skip

    assert result.code == 2
    assert "transferd: error: job j is new: give at least one --recipient" in result.stderr
    assert _stored(tmp_path, "objects") == 0


def test_filters_leave_out_what_they_match_and_verify_against_knows_it(
    run: Run, tmp_path: Path
) -> None:
    owner, sender = _keys(run, tmp_path)
    _tree(tmp_path / "src")
    (tmp_path / "rules").write_text("# leave the scratch space out\n- tmp/\n")

    sent = run("send", "src", "--to", "store", "--job", "j", "--sender-key", "sender.key",
               "-r", owner, "--state", "state", "--exclude", "*.txt", "--filter-from", "rules",
               "--json")  # fmt: skip
    assert sent.code == 0, sent.stderr
    assert json.loads(sent.stdout.splitlines()[-1])["entries"] == 5  # a, a/x.csv, b, b/w.csv, c.log

    listed = run("ls", "--store", "store", "--job", "j", "--identity", "owner.key",
                 "--sender", sender, "--json")  # fmt: skip
    assert listed.code == 0, listed.stderr
    paths = sorted(json.loads(line)["path"] for line in listed.stdout.splitlines()[:-1])
    assert paths == ["a", "a/x.csv", "b", "b/w.csv", "c.log"]

    verified = run("verify", "--store", "store", "--job", "j", "--sender", sender, "--identity",
                   "owner.key", "--against", "src", "--seen-state", "seen", "--json")  # fmt: skip
    assert verified.code == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout.splitlines()[-1])
    assert report["source"]["selection"] == "'--filter=- *.txt' '--filter=- tmp/'"
    assert report["counts"]["source_entries_left_out"] == 2  # b/z.txt and a/tmp

    (tmp_path / "src" / "b" / "new.csv").write_bytes(b"new")  # a file the rules take
    (tmp_path / "src" / "b" / "new.txt").write_bytes(b"new")  # and one they leave out
    changed = run("verify", "--store", "store", "--job", "j", "--sender", sender, "--identity",
                  "owner.key", "--against", "src", "--seen-state", "seen", "--json")  # fmt: skip
    assert changed.code == 24
    failures = json.loads(changed.stdout.splitlines()[-1])["failures"]
    assert [(f["kind"], f["path"]) for f in failures] == [("source-only", "b/new.csv")]


def test_include_takes_only_what_it_matches(run: Run, tmp_path: Path) -> None:
    owner, sender = _keys(run, tmp_path)
    _tree(tmp_path / "src")

    sent = run("send", "src", "--to", "store", "--job", "j", "--sender-key", "sender.key",
               "-r", owner, "--state", "state", "--include", "/a/*.csv", "--json")  # fmt: skip

    assert sent.code == 0, sent.stderr
    listed = run("ls", "--store", "store", "--job", "j", "--identity", "owner.key",
                 "--sender", sender, "--json")  # fmt: skip
    paths = sorted(json.loads(line)["path"] for line in listed.stdout.splitlines()[:-1])
    assert paths == ["a", "a/x.csv"]  # /a/ is walked, /a/tmp/ is not (its file cannot match)


def test_a_malformed_pattern_is_a_usage_error(run: Run, tmp_path: Path) -> None:
    _keys(run, tmp_path)
    _tree(tmp_path / "src")

    result = run("send", "src", "--to", "store", "--job", "j", "--sender-key", "sender.key",
                 "--exclude", "*.[ch", "--state", "state")  # fmt: skip

    assert result.code == 2
    assert result.stderr.splitlines()[0] == (
        "transferd: error: filter pattern '*.[ch' is malformed: a [ without its ]"
    )
    assert not (tmp_path / "state").exists()


def test_filters_apply_to_directory_sources_only(run: Run, tmp_path: Path) -> None:
    _keys(run, tmp_path)

    result = run("send", "postgresql://u@127.0.0.1:1/db", "--to", "store", "--job", "j",
                 "--sender-key", "sender.key", "--exclude", "*.tmp")  # fmt: skip

    assert result.code == 2
    assert "apply to directory sources only" in result.stderr


def test_dry_run_writes_nothing_and_says_what_a_send_would_do(run: Run, tmp_path: Path) -> None:
    owner, _ = _keys(run, tmp_path)
    _tree(tmp_path / "src")
    send = ["send", "src", "--to", "store", "--job", "j", "--sender-key", "sender.key", "-r",
            owner, "--state", "state", "--exclude", "tmp/"]  # fmt: skip

    first = run(*send, "--dry-run", "--json")

    assert first.code == 0, first.stderr
    assert not (tmp_path / "state").exists()
    assert not (tmp_path / "store").exists()
    *events, summary = (json.loads(line) for line in first.stdout.splitlines())
    actions = {e["path"]: e["action"] for e in events}
    assert actions == {"a": "record", "a/tmp": "left-out", "a/x.csv": "read", "b": "record",
                       "b/w.csv": "read", "b/z.txt": "read", "c.log": "read"}  # fmt: skip
    assert (summary["dry_run"], summary["read"], summary["bytes_read"]) == (True, 4, 1350)
    assert (summary["left_out"], summary["journal"]) == (1, None)

    assert run(*send).code == 0
    (tmp_path / "src" / "c.log").write_bytes(b"changed")
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "state").rglob("*") if p.is_file()}

    again = run(*send, "--dry-run")

    assert again.code == 0, again.stderr
    assert "read       c.log (7 B)" in again.stdout.splitlines()
    assert "unchanged  a/x.csv (300 B)" in again.stdout.splitlines()
    assert "would read 1 entries (7 B), reuse 3 unchanged (1.3 KiB)" in again.stdout
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "state").rglob("*") if p.is_file()}
    assert after == before, "the journal was only read"


@pytest.mark.slow
def test_bwlimit_holds_and_json_progress_reports_the_rate_sent(run: Run, tmp_path: Path) -> None:
    owner, _ = _keys(run, tmp_path)
    _tree(tmp_path / "src", big=6 * MIB)

    sent = run("send", "src", "--to", "store", "--job", "j", "--sender-key", "sender.key",
               "-r", owner, "--state", "state", "--pack-size", "256K", "--bwlimit", "512K",
               "--uploads", "1", "--json")  # fmt: skip

    assert sent.code == 0, sent.stderr
    *events, summary = (json.loads(line) for line in sent.stdout.splitlines())
    assert summary["bwlimit"] == MIB // 2
    assert events
    assert all(e["event"] == "progress" for e in events)
    limit, span = MIB // 2, 5
    pack = 2 * summary["stored_bytes"] / summary["stored_objects"]  # a pack, generously
    for e in events:
        # a token bucket admits its burst (1 s) above the limit, a pack larger than what is
        # left leaves at once, in debt, and the one upload in flight when the window opened may
        # be acknowledged inside it: over the first 5 s window, at most this, however fast or
        # slow the machine; what was *read* ran ahead by the memory window
        assert e["rate"] is not None
        assert e["rate"] <= (limit * (span + 1) + 2 * pack) / span, e
        assert e["bytes_settled"] <= e["bytes_read"]
    first = events[0]
    assert first["bytes_read"] > first["bytes_sent"], "the reader ran ahead of the limit"
    assert first["eta_seconds"] is not None
    assert first["eta_seconds"] > 0
