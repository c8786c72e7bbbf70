"""The main job, end to end, on this machine alone: what ./scripts/demo runs.

1. generate a synthetic export of health-insurance claims (CSV tables, scans, small forms);
2. create keys: the data owner's and an escrow recipient identity, the sender's signing key, and
   an auditor's key that the host lets read (never decrypt) the stored copy;
3. start a storage host (transferd serve) on 127.0.0.1 that accepts uploads only from that sender;
4. send the export, encrypted to both recipients;
5. verify the stored copy with the sender's public key only (what an auditor does);
6. restore it with the owner's identity, and compare it byte for byte with the export.

Every step is a real transferd command, printed before it runs, so it can be run again by hand.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import select
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRANSFERD = [sys.executable, "-m", "transferd"]


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(*args: str | os.PathLike[str], capture: bool = False) -> str:
    shown = ["transferd", *map(str, args)]
    print("$ " + shlex.join(shown), flush=True)
    proc = subprocess.run([*TRANSFERD, *map(str, args)], text=True,
                          stdout=subprocess.PIPE if capture else None)  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"demo: transferd {args[0]} failed with exit code {proc.returncode}")
    return proc.stdout.strip() if capture else ""


def start_server(
    store: Path, sender: str, reader: str, log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    args = ["serve", "--store", str(store), "--listen", "127.0.0.1:0",
            "--allow", f"claims={sender}", "--allow-reader", f"claims={reader}"]  # fmt: skip
    print("$ " + shlex.join(["transferd", *args]) + f" > {log} &", flush=True)
    out = open(log, "wb")  # noqa: SIM115 - kept open for the server's lifetime
    proc = subprocess.Popen([*TRANSFERD, *args], stdout=subprocess.PIPE, stderr=out)
    if proc.stdout is None:  # pragma: no cover - stdout=PIPE always gives one
        sys.exit("demo: no pipe to the storage host")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.5)[0]:
            line = proc.stdout.readline().decode()
            if "listening on" in line:
                return proc, line.split("listening on", 1)[1].strip()
            if not line:
                break
    proc.kill()
    sys.exit(f"demo: the storage host did not start; see {log}")


def same_tree(a: Path, b: Path) -> list[str]:
    """Differences between two trees: names, kinds, contents, modes, symlink targets."""
    cmp = filecmp.dircmp(a, b)
    diffs = [f"only on one side: {n}" for n in cmp.left_only + cmp.right_only + cmp.funny_files]
    for name in cmp.common_files:
        fa, fb = a / name, b / name
        if fa.is_symlink() or fb.is_symlink():
            if os.readlink(fa) != os.readlink(fb):
                diffs.append(f"symlink differs: {name}")
        elif not filecmp.cmp(fa, fb, shallow=False) or fa.stat().st_mode != fb.stat().st_mode:
            diffs.append(f"differs: {fa}")
    for name in cmp.common_dirs:
        diffs += same_tree(a / name, b / name)
    return diffs


def main() -> int:
    p = argparse.ArgumentParser(description="Run transferd's main job end to end on this machine.")
    p.add_argument("--size", default="256M", help="size of the sample export (default 256M)")
    p.add_argument("--small-files", default="5000", help="number of small files (default 5000)")
    p.add_argument(
        "--dir", type=Path, default=None, help="work directory (default: a new temp dir)"
    )
    args = p.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="transferd-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    export, store, restored = work / "export", work / "host-store", work / "restored"
    keys, state = work / "keys", work / "sender-state"
    keys.mkdir(mode=0o700, exist_ok=True)
    print(f"demo: working in {work}")

    say(f"1. a synthetic claims export of about {args.size}")
    if not export.exists():
        generator = ROOT / "perf" / "sampledata.py"
        subprocess.run(
            [
                sys.executable,
                generator,
                export,
                "--size",
                args.size,
                "--small-files",
                args.small_files,
            ],
            check=True,
        )
    files = sum(len(f) for _, _, f in os.walk(export))
    size = sum(p.stat().st_size for p in export.rglob("*") if p.is_file())
    print(f"{files:,} files, {size / 2**20:.0f} MiB in {export}")

    say("2. keys: the data owner, an escrow holder, the sender, an auditor")
    kinds = (
        ("owner", "recipient"),
        ("escrow", "recipient"),
        ("sender", "sender"),
        ("auditor", "sender"),
    )
    for name, kind in kinds:
        if not (keys / f"{name}.key").exists():
            (keys / f"{name}.pub").write_text(
                run("keygen", "--kind", kind, "-o", keys / f"{name}.key", capture=True) + "\n"
            )
    sender, auditor = ((keys / f"{n}.pub").read_text().strip() for n in ("sender", "auditor"))

    say("3. a storage host on 127.0.0.1: job 'claims' written by the sender, read by the auditor")
    server, url = start_server(store, sender, auditor, work / "serve.log")
    try:
        say("4. send: chunk, compress, encrypt to owner and escrow, upload, sign")
        started = time.monotonic()
        run("send", export, "--to", url, "--job", "claims", "--sender-key", keys / "sender.key",
            "-R", keys / "owner.pub", "-R", keys / "escrow.pub", "--state", state)  # fmt: skip
        took = time.monotonic() - started

        say("5. verify without any decryption key: what an auditor runs")
        run("verify", "--from", url, "--job", "claims", "--sender", sender,
            "--reader-key", keys / "auditor.key", "--sign-report", keys / "auditor.key",
            "--report-html", work / "report.html",
            "--report-json", work / "report.json")  # fmt: skip

        say("6. restore with the owner's identity and compare with the export")
        run("restore", "--from", url, "--job", "claims", "--identity", keys / "owner.key",
            "--sender", sender, "--reader-key", keys / "auditor.key",
            "--out", restored)  # fmt: skip
        diffs = same_tree(export, restored)
    finally:
        server.terminate()
        server.wait(30)
    if diffs:
        print("\n".join(diffs[:20]))
        sys.exit(f"demo: the restored tree differs from the export in {len(diffs)} places")
    stored = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    say("done")
    print(
        f"sent {size / 2**20:.0f} MiB in {took:.1f} s ({size / 2**20 / took:.0f} MiB/s); the host "
        f"stores {stored / 2**20:.0f} MiB of ciphertext it cannot read;"
    )
    print("the restored tree is identical to the export;")
    print(f"the auditor's report is {work / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
