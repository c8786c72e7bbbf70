"""Wrapping and unwrapping a job key: hybrid ML-KEM-768 + X25519 beside classic X25519.

    bench_keys.py [--calls 500] [--rounds 5] [--json]

Times, per call and in the same run, what a sender and a reader pay per recipient: parsing the
public key's text (bech32 in Python: 1958 characters for a hybrid key), building a stanza
(``jobkey.wrap``) from the parsed key, opening one
(``jobkey.unwrap`` with an identity parsed from its text, as a restore meets it, so the hybrid
seed expansion is included), an open with the identity already expanded (what a reader that
unwraps many manifests pays), and making a key pair. Also prints the sizes of keys and stanzas.
Median of ``--rounds`` rounds of ``--calls`` calls, in microseconds; the machine and commit are
printed with them. A shared 2-core machine varies by tens of percent: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cryptography

from transferd.core import canonical, jobkey, keys

REPO = Path(__file__).resolve().parents[1]


def per_call_us(fn: Callable[[], object], calls: int, rounds: int) -> float:
    """The median over ``rounds`` of the mean time of one call, in microseconds."""
    fn()  # warm up: imports, caches
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def measure_type(
    make: Callable[[bytes], keys.RecipientIdentity], calls: int, rounds: int
) -> dict[str, float]:
    """The figures of one recipient type, made by ``make`` from a 32-byte secret."""
    job_key = jobkey.JobKey(os.urandom(32))
    identity = make(os.urandom(32))
    identity_text, public_text = identity.to_text(), identity.public().to_text()
    stanza = jobkey.wrap(job_key, identity.public(), os.urandom(32))
    stanzas = [jobkey.Stanza.from_json(stanza.to_json())]

    recipient = keys.parse_recipient(public_text)

    def parse() -> object:
        return keys.parse_recipient(public_text)

    def wrap() -> object:
        return jobkey.wrap(job_key, recipient, os.urandom(32))

    def unwrap() -> object:
        fresh = keys.parse_key_text(identity_text)  # a new identity each call: nothing cached
        assert isinstance(fresh, keys.RecipientIdentity)  # noqa: S101 - a bench's own check
        return jobkey.unwrap(stanzas, fresh, job_key.key_check)

    def unwrap_loaded() -> object:
        return jobkey.unwrap(stanzas, identity, job_key.key_check)

    def keypair() -> object:
        return make(os.urandom(32)).public()

    return {
        "parse_public_key_us": per_call_us(parse, calls, rounds),
        "wrap_us": per_call_us(wrap, calls, rounds),
        "unwrap_us": per_call_us(unwrap, calls, rounds),
        "unwrap_identity_loaded_us": per_call_us(unwrap_loaded, calls, rounds),
        "keypair_us": per_call_us(keypair, calls, rounds),
        "public_key_bytes": len(identity.public().key),
        "public_key_chars": len(public_text),
        "identity_chars": len(identity_text),
        "stanza_json_bytes": len(canonical.dumps(stanza.to_json())),
    }


def measure(calls: int, rounds: int) -> dict[str, dict[str, float]]:
    return {
        "x25519": measure_type(keys.RecipientIdentity.from_bytes, calls, rounds),
        "mlkem768x25519": measure_type(keys.RecipientIdentity.hybrid, calls, rounds),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="one JSON line instead of a table")
    args = parser.parse_args(argv)
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    report = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "load": os.getloadavg()[0],
        "commit": commit,
        "cryptography": cryptography.__version__,
        "calls": args.calls,
        "rounds": args.rounds,
        "types": measure(args.calls, args.rounds),
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"{report['machine']}, load {report['load']:.2f}, commit {commit}, cryptography "
        f"{report['cryptography']}, median of {args.rounds} x {args.calls} calls"
    )
    rows = [
        ("parse the public key's text (µs)", "parse_public_key_us"),
        ("wrap, key parsed (µs)", "wrap_us"), ("unwrap, identity from text (µs)", "unwrap_us"),
        ("unwrap, identity expanded (µs)", "unwrap_identity_loaded_us"),
        ("key pair (µs)", "keypair_us"), ("public key (bytes)", "public_key_bytes"),
        ("public key (characters)", "public_key_chars"),
        ("identity (characters)", "identity_chars"),
        ("stanza, canonical JSON (bytes)", "stanza_json_bytes"),
    ]  # fmt: skip
    types = report["types"]
    assert isinstance(types, dict)  # noqa: S101 - built above
    print(f"{'':34} {'X25519':>10} {'mlkem768x25519':>15}")
    for label, key in rows:
        x, pq = types["x25519"][key], types["mlkem768x25519"][key]
        print(f"{label:34} {x:>10.0f} {pq:>15.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
