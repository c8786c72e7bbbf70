"""What perf/bench times: transferd end to end and in process, and the peers, on the same data.

Each method makes one complete, fresh copy per call (a new store, repository or output file: no
run benefits from an earlier one's cache or index) and returns a Sample whose ``extra`` holds
``stored_bytes``. Set-up that a user does once (keys, ``restic init``, ``borg init``, an rclone
config) is done before the clock starts and is not timed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from measure import Background, Sample, drop_tree, run_pipe, tree_bytes

PERF = Path(__file__).resolve().parent
TRANSFERD = [sys.executable, "-m", "transferd"]
PASSWORD = "perf-bench-password-not-a-secret"  # noqa: S105 - a throwaway repository's password
JOB = "bench"


@dataclass
class Context:
    source: Path
    source_bytes: int
    work: Path
    level: int = 1
    """transferd's zstd level."""
    send_args: tuple[str, ...] = ()
    """Extra arguments to ``transferd send`` (--workers, --uploads ...)."""


@dataclass
class Method:
    key: str
    label: str
    group: str
    """"transferd", "peer" or "limit": how the report places it."""
    run: Callable[[Context], Sample]
    needs: tuple[str, ...] = ()
    """Executables on PATH it needs."""


# --- transferd ----------------------------------------------------------------------------------


def transferd_keys(work: Path) -> dict[str, str]:
    keys = work / "keys"
    if not (keys / "sender.pub").exists():
        drop_tree(keys)
        keys.mkdir(parents=True)
        for name, kind in (("owner", "recipient"), ("sender", "sender")):
            pub = subprocess.run(
                [*TRANSFERD, "keygen", "--kind", kind, "-o", str(keys / f"{name}.key")],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            (keys / f"{name}.pub").write_text(pub + "\n")
    return {
        "owner": (keys / "owner.pub").read_text().strip(),
        "sender": (keys / "sender.pub").read_text().strip(),
        "sender_key": str(keys / "sender.key"),
    }


def start_server(work: Path, store: Path, sender: str) -> tuple[Background, str]:
    server = Background(
        [*TRANSFERD, "serve", "--store", store, "--listen", "127.0.0.1:0", "--allow",
         f"{JOB}={sender}"],
        ready="listening on",
        log=work / "serve.log",
    )  # fmt: skip
    return server, server.line.split("listening on", 1)[1].strip()


def send_command(ctx: Context, to: str, state: Path, keys: dict[str, str]) -> list[str]:
    return [
        *TRANSFERD, "send", str(ctx.source), "--to", to, "--job", JOB,
        "--sender-key", keys["sender_key"], "-r", keys["owner"], "--state", str(state),
        "--level", str(ctx.level), "--progress", "never", "--json", *ctx.send_args,
    ]  # fmt: skip


def run_send(cmd: list[str], out: Path) -> tuple[Sample, dict[str, object]]:
    with open(out, "wb") as f:
        sample = run_pipe([cmd], stdout=f, names=["sender"])
    lines = [ln for ln in out.read_text().splitlines() if ln.startswith("{")]
    result = json.loads(lines[-1])
    return sample, result


def transferd_e2e(ctx: Context) -> Sample:
    """``transferd send`` to ``transferd serve`` on 127.0.0.1, which writes a local store."""
    keys = transferd_keys(ctx.work)
    store, state = ctx.work / "t-store", ctx.work / "t-state"
    drop_tree(store)
    drop_tree(state)
    server, url = start_server(ctx.work, store, keys["sender"])
    try:
        server.mark()
        sample, result = run_send(send_command(ctx, url, state, keys), ctx.work / "send.json")
        sample.procs.append(server.window("receiver"))
    finally:
        server.stop()
    sample.extra["stored_bytes"] = tree_bytes(store / "jobs" / JOB)
    sample.extra["bytes_sent"] = result["bytes_sent"]
    sample.extra["packs"] = result["packs_sent"]
    return sample


def transferd_local(ctx: Context) -> Sample:
    """``transferd send`` straight into a local store directory (no HTTP)."""
    keys = transferd_keys(ctx.work)
    store, state = ctx.work / "t-store", ctx.work / "t-state"
    drop_tree(store)
    drop_tree(state)
    sample, _ = run_send(send_command(ctx, str(store), state, keys), ctx.work / "send.json")
    sample.extra["stored_bytes"] = tree_bytes(store / "jobs" / JOB)
    return sample


def transferd_inprocess(ctx: Context) -> Sample:
    """The pipeline alone in one process (perf/inprocess.py): no network, no store."""
    out = ctx.work / "inprocess.json"
    with open(out, "wb") as f:
        sample = run_pipe(
            [[sys.executable, PERF / "inprocess.py", ctx.source, "--level", str(ctx.level),
              "--uvloop"]],
            stdout=f,
            names=["pipeline"],
        )  # fmt: skip
    result = json.loads(out.read_text())
    sample.extra["stored_bytes"] = result["stored_bytes"]
    sample.extra["pipeline_s"] = result["seconds"]
    return sample


# --- peers --------------------------------------------------------------------------------------


def _age_recipient(work: Path) -> str:
    key = work / "age.key"
    if not key.exists():
        subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    match = re.search(r"public key: (age1[0-9a-z]+)", key.read_text())
    if match is None:  # pragma: no cover - age-keygen always writes it
        raise RuntimeError("age-keygen wrote no public key")
    return match[1]


def tar_zstd_age(threads: str) -> Callable[[Context], Sample]:
    def run(ctx: Context) -> Sample:
        recipient = _age_recipient(ctx.work)
        out = ctx.work / "pipe.tar.zst.age"
        out.unlink(missing_ok=True)
        with open(out, "wb") as f:
            sample = run_pipe(
                [
                    ["tar", "-C", ctx.source, "-cf", "-", "."],
                    ["zstd", "-3", f"-T{threads}", "-q", "-c"],
                    ["age", "-r", recipient],
                ],
                stdout=f,
            )
        sample.extra["stored_bytes"] = out.stat().st_size
        out.unlink()
        return sample

    return run


def restic(ctx: Context) -> Sample:
    repo = ctx.work / "restic-repo"
    drop_tree(repo)
    env = {"RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": str(ctx.work / "restic-cache")}
    drop_tree(ctx.work / "restic-cache")
    run_pipe([["restic", "init", "--repo", repo]], env=env)
    sample = run_pipe([["restic", "backup", "--repo", repo, "-q", ctx.source]], env=env)
    sample.extra["stored_bytes"] = tree_bytes(repo)
    return sample


def rclone_crypt(ctx: Context) -> Sample:
    remote = ctx.work / "rclone-crypt"
    drop_tree(remote)
    conf = ctx.work / "rclone.conf"
    if not conf.exists():
        obscured = [
            subprocess.run(
                ["rclone", "obscure", p], check=True, capture_output=True, text=True
            ).stdout.strip()
            for p in (PASSWORD, PASSWORD + "-salt")
        ]
        conf.write_text(
            "[secret]\ntype = crypt\n"
            f"remote = {remote}\npassword = {obscured[0]}\npassword2 = {obscured[1]}\n"
        )
    sample = run_pipe(
        [["rclone", "copy", "--config", conf, str(ctx.source), "secret:"]],
    )
    sample.extra["stored_bytes"] = tree_bytes(remote)
    return sample


def borg(ctx: Context) -> Sample:
    repo, base = ctx.work / "borg-repo", ctx.work / "borg-base"
    drop_tree(repo)
    drop_tree(base)  # no files cache or chunk index from an earlier run
    env = {
        "BORG_PASSPHRASE": PASSWORD,
        "BORG_BASE_DIR": str(base),
        "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
    }
    run_pipe([["borg", "init", "--encryption=repokey", str(repo)]], env=env)
    sample = run_pipe(
        [["borg", "create", "--compression", "zstd,3", f"{repo}::bench", "."]],
        env=env,
        cwd=ctx.source,
    )
    sample.extra["stored_bytes"] = tree_bytes(repo)
    return sample


METHODS = [
    Method("transferd_e2e", "transferd send → serve (HTTP, loopback)", "transferd",
           transferd_e2e),
    Method("transferd_inprocess", "transferd pipeline in process", "transferd",
           transferd_inprocess),
    Method("tar_zstd_age_T2", "tar | zstd -3 -T2 | age", "peer", tar_zstd_age("2"),
           ("tar", "zstd", "age")),
    Method("tar_zstd_age_T0", "tar | zstd -3 -T0 | age", "peer", tar_zstd_age("0"),
           ("tar", "zstd", "age")),
    Method("restic", "restic backup (local repo)", "peer", restic, ("restic",)),
    Method("rclone_crypt", "rclone copy → crypt remote", "peer", rclone_crypt, ("rclone",)),
    Method("borg", "borg create zstd,3 repokey", "peer", borg, ("borg",)),
]  # fmt: skip


def now() -> float:
    return time.time()


def environment_note() -> dict[str, object]:
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
