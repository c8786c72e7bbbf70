"""``transferd restore`` and ``transferd rekey`` as an operator runs them: real copies in a
LocalStore, the real command in a child process, its exit code and what it prints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import REPO, Run
from tests.sent import Keys, local_store, send_tree
from tests.treeutil import make_tree, snapshot
from transferd.core.keys import RecipientIdentity, SenderSecretKey, render_key_file

JOB = "tree"


@pytest.fixture
def keys() -> Keys:
    return Keys(
        SenderSecretKey(bytes(range(32))),
        RecipientIdentity(bytes(range(1, 33))),
        RecipientIdentity(bytes(range(2, 34))),
    )


@pytest.fixture
def copy(tmp_path: Path, keys: Keys) -> Path:
    """A store holding job ``tree`` of ``src``, and the key files, all in ``tmp_path``."""
    make_tree(tmp_path / "src", big=3 * 1024 * 1024)
    send_tree(local_store(tmp_path / "store"), tmp_path / "src", keys, tmp_path / "state")
    for name, key in (("owner", keys.owner), ("other", keys.other), ("sender", keys.sender)):
        path = tmp_path / f"{name}.key"
        path.write_text(render_key_file(key, "2026-11-22T21:00:00Z"))
        os.chmod(path, 0o600)
    return tmp_path


def restore(run: Run, identity: str, out: str, *extra: str) -> tuple[int, str, str]:
    result = run("restore", "--store", "store", "--job", JOB, "--identity", identity,
                 "--out", out, *extra)  # fmt: skip
    return result.code, result.stdout, result.stderr


def test_restore_rebuilds_the_tree_and_reports_it(run: Run, copy: Path, keys: Keys) -> None:
    code, out, err = restore(run, "owner.key", "out", "--sender", keys.sender.public().to_text())

    assert (code, err) == (0, "")
    assert snapshot(copy / "out") == snapshot(copy / "src")
    assert f"job {JOB}: manifest 1 restored into out" in out
    assert "9 files, 4 directories, 4 symlinks" in out
    assert "MB/s" in out


def test_json_summary(run: Run, copy: Path, keys: Keys) -> None:
    code, out, err = restore(run, "owner.key", "out", "--sender", "sender.key", "--json")

    assert (code, err) == (0, "")
    summary = json.loads(out)
    assert summary["sender_checked"] is True
    assert summary["files"] == 9
    assert summary["bytes"] == sum(n.size for n in snapshot(copy / "src").values())
    assert summary["mb_per_s"] > 0


def test_without_sender_the_signer_is_named_in_a_warning(run: Run, copy: Path, keys: Keys) -> None:
    code, _, err = restore(run, "owner.key", "out")

    assert code == 0
    signer = keys.sender.public().to_text()
    assert err.splitlines() == [
        f"transferd: warning: manifest 1 of job {JOB} is signed by {signer}; no expected "
        "sender was given, so who signed it was not checked",
        f"transferd: hint: pass --sender {signer} if that is the sender you trust",
    ]


def test_wrong_identity_exits_12_and_writes_nothing(run: Run, copy: Path, keys: Keys) -> None:
    code, out, err = restore(run, "other.key", "out", "--sender", keys.sender.public().to_text())

    assert code == 12
    assert out == ""
    assert err.splitlines() == [
        f"transferd: error: this copy is not encrypted to key {keys.other.public().to_text()}",
        "transferd: hint: use the identity of one of the job's recipients: "
        + keys.owner.public().to_text(),
    ]
    assert not (copy / "out").exists()


def test_non_empty_target_exits_2_unless_forced(run: Run, copy: Path) -> None:
    (copy / "out").mkdir()
    (copy / "out" / "small.csv").write_bytes(b"stale\n")

    code, _, err = restore(run, "owner.key", "out")
    assert code == 2
    assert "transferd: error: out is not empty; refusing to restore into it" in err
    assert (copy / "out" / "small.csv").read_bytes() == b"stale\n"

    code, _, err = restore(run, "owner.key", "out", "--force")
    assert code == 0, err
    assert (copy / "out" / "small.csv").read_bytes() == (copy / "src" / "small.csv").read_bytes()


def test_damaged_pack_exits_12_naming_the_file(run: Run, copy: Path) -> None:
    packs = [p for p in (copy / "store").rglob("objects/*/*") if p.read_bytes()[:4] == b"TDPK"]
    biggest = max(packs, key=lambda p: p.stat().st_size)
    data = bytearray(biggest.read_bytes())
    data[len(data) // 2] ^= 0x01
    biggest.write_bytes(bytes(data))

    code, _, err = restore(run, "owner.key", "out", "-q")

    assert code == 12
    assert "failed authentication" in err
    named = err.split("transferd: error: ")[1].split(" at offset")[0]
    assert (copy / "src" / named).is_file()
    assert not (copy / "out" / named).exists()


def test_missing_store_and_unknown_job_exit_10(run: Run, copy: Path) -> None:
    result = run("restore", "--store", "nowhere", "--job", JOB, "--identity", "owner.key",
                 "--out", "out")  # fmt: skip
    assert result.code == 10
    result = run("restore", "--store", "store", "--job", "nope", "--identity", "owner.key",
                 "--out", "out")  # fmt: skip
    assert result.code == 10
    assert "job nope has no manifest" in result.stderr


def test_from_url_needs_a_key_to_sign_requests(run: Run, copy: Path) -> None:
    result = run("restore", "--from", "http://127.0.0.1:9", "--job", JOB,
                 "--identity", "owner.key", "--out", "out")  # fmt: skip
    assert result.code == 2
    assert "needs a key to sign requests with" in result.stderr


def test_rekey_then_only_the_new_recipient_restores(run: Run, copy: Path, keys: Keys) -> None:
    objects_before = sorted(p.name for p in (copy / "store").rglob("objects/*/*"))
    result = run(
        "rekey", "--store", "store", "--job", JOB, "--identity", "owner.key",
        "--sender-key", "sender.key", "--add-recipient", keys.other.public().to_text(),
        "--remove-recipient", keys.owner.public().to_text(), "--json",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["sequence"], summary["previous_sequence"]) == (2, 1)
    assert summary["recipients"] == [keys.other.public().to_text()]
    assert sorted(p.name for p in (copy / "store").rglob("objects/*/*")) == objects_before

    sender = keys.sender.public().to_text()
    assert restore(run, "other.key", "new", "--sender", sender)[0] == 0
    assert snapshot(copy / "new") == snapshot(copy / "src")
    code, _, err = restore(run, "owner.key", "old", "--sender", sender)
    assert code == 12
    assert f"this copy is not encrypted to key {keys.owner.public().to_text()}" in err


def test_rekey_refuses_to_remove_the_last_recipient(run: Run, copy: Path, keys: Keys) -> None:
    result = run(
        "rekey", "--store", "store", "--job", JOB, "--identity", "owner.key",
        "--sender-key", "sender.key", "--remove-recipient", keys.owner.public().to_text(),
    )  # fmt: skip
    assert result.code == 2
    assert result.stderr.splitlines()[0] == (
        f"transferd: error: refusing to remove the last recipient of job {JOB}: nobody could "
        "read it"
    )


def test_a_restore_killed_half_way_resumes_without_fetching_what_it_finished(
    tmp_path: Path, keys: Keys
) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(300):
        (src / "d" / f"f{i:03}.bin").write_bytes(os.urandom(512 * 1024))
    send_tree(local_store(tmp_path / "store"), src, keys, tmp_path / "state")
    (tmp_path / "owner.key").write_text(render_key_file(keys.owner, "2026-11-22T21:00:00Z"))
    os.chmod(tmp_path / "owner.key", 0o600)
    argv = [sys.executable, "-m", "transferd", "restore", "--store", "store", "--job", JOB,
            "--identity", "owner.key", "--out", "out", "--workers", "1", "--json"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(REPO)

    first = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    done = tmp_path / "out" / "d"
    deadline = time.monotonic() + 60
    while not (done.is_dir() and len(list(done.glob("f*.bin"))) >= 60):
        assert first.poll() is None, "the restore ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL
    kept = len(list(done.glob("f*.bin")))
    assert kept < 300

    resumed = subprocess.run([*argv, "--resume"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120, check=False)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert snapshot(tmp_path / "out") == snapshot(src)
    assert not list((tmp_path / "out").rglob(".transferd-*"))  # the killed run's temporary files
    assert summary["files_kept"] == kept  # each was renamed to its name only once complete
    assert summary["files"] == 300 - summary["files_kept"]
    stored = sum(p.stat().st_size for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert summary["bytes_fetched"] < stored * (300 - summary["files_kept"] + 32) / 300
