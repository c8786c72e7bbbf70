"""The whole path as an operator runs it: a container read from Azurite (HTTPS, OAuth) with a token
azure-identity got from the test's Entra ID endpoint for a service principal whose secret is in a
0600 file, stored with Object Lock on ministack, and verified with its retention shown; and the
refusals a user meets on the way, each with its exit code and hint."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.harness import TRANSFERD, make_keys, tree
from tests.sources.azure.azurite import ACCOUNT, Azurite
from tests.sources.azure.certs import Certs
from tests.sources.azure.entradata import BLOBS
from tests.sources.azure.test_entra import secret_file
from tests.sources.azure.tokenserver import CLIENT_ID, SECRET, TENANT, TokenServer
from tests.stores.lockserver import shared_lock_server


def run(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TRANSFERD, *map(str, args)], capture_output=True, text=True, env=env, timeout=120,
        check=False,
    )  # fmt: skip


def sign_in(azurite: Azurite, certs: Certs, token_server: TokenServer, secret: Path) -> list[str]:
    return ["--azure-auth", "client-secret", "--azure-tenant", TENANT,
            "--azure-client-id", CLIENT_ID, "--azure-client-secret-file", str(secret),
            "--azure-authority", token_server.authority, "--azure-endpoint", azurite.endpoint,
            "--azure-ca-file", str(certs.ca)]  # fmt: skip


@pytest.mark.slow  # four runs of the real command
def test_a_container_read_with_entra_id_is_stored_locked_and_verified_with_its_retention(
    azurite_oauth: Azurite, certs: Certs, token_server: TokenServer, container: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    server = shared_lock_server()
    bucket = asyncio.run(server.new_bucket())
    env = {**os.environ, "TRANSFERD_S3_CONFIG": str(server.config_file(tmp_path))}
    keys = make_keys(tmp_path / "keys")
    to = f"s3://{bucket}/hdh"
    before = token_server.count("token secret")

    sent = run(env, "send", f"az://{ACCOUNT}/{container}", "--to", to, "--job", "entra",
               "--sender-key", keys.sender_key, "-r", keys.owner, "--state", tmp_path / "state",
               *sign_in(azurite_oauth, certs, token_server, secret_file(tmp_path)),
               "--object-lock", "30", "--lock-mode", "compliance", "--json")  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert SECRET not in sent.stdout + sent.stderr
    summary = json.loads(sent.stdout)
    assert summary["object_lock"] == {"days": 30, "mode": "COMPLIANCE"}
    assert token_server.count("token secret") > before  # the token came from Entra ID's endpoint

    verified = run(env, "verify", "--store", to, "--job", "entra", "--sender", keys.sender,
                   "--seen-state", tmp_path / "seen.json", "--object-lock", "30",
                   "--lock-mode", "compliance")  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "PASS, the copy is complete and untouched" in verified.stdout
    assert "retention (compliance for 30 days asked):" in verified.stdout
    assert "    compliance: " in verified.stdout

    restored = run(env, "restore", "--store", to, "--job", "entra", "--identity",
                   keys.owner_key, "--sender", keys.sender, "--out", tmp_path / "out")  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    restored_tree = tree(tmp_path / "out")
    assert restored_tree[b"a"][0] == "dir"  # the ADLS directory placeholder
    for name, data in BLOBS.items():
        assert restored_tree[name.encode()][2] == data


def test_a_wrong_secret_and_an_exposed_secret_file_are_refused_with_their_codes(
    azurite_oauth: Azurite, certs: Certs, token_server: TokenServer, container: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    keys = make_keys(tmp_path / "keys")
    common = [
        "send",
        f"az://{ACCOUNT}/{container}",
        "--to",
        tmp_path / "store",
        "--job",
        "x",
        "--sender-key",
        keys.sender_key,
        "-r",
        keys.owner,
        "--state",
        tmp_path / "state",
    ]
    wrong = secret_file(tmp_path, "not-the-secret")
    refused = run(dict(os.environ), *common,
                  *sign_in(azurite_oauth, certs, token_server, wrong))  # fmt: skip
    assert refused.returncode == 8, refused.stderr
    assert (
        f"transferd: error: Entra ID refused the service principal {CLIENT_ID} of tenant "
        f"{TENANT} (Microsoft Entra ID error '(invalid_client) AADSTS7000215"
    ) in refused.stderr
    assert f"transferd: hint: check the secret in {wrong}" in refused.stderr
    assert "not-the-secret" not in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr

    wrong.chmod(0o644)
    exposed = run(dict(os.environ), *common,
                  *sign_in(azurite_oauth, certs, token_server, wrong))  # fmt: skip
    assert exposed.returncode == 2, exposed.stderr
    assert "is readable by group or others" in exposed.stderr
    assert f"transferd: hint: chmod 600 {wrong}" in exposed.stderr

    missing = run(dict(os.environ), *common, "--azure-auth", "client-secret",
                  "--azure-client-id", CLIENT_ID)  # fmt: skip
    assert missing.returncode == 2
    assert "transferd: error: Azure sign-in client-secret needs tenant_id" in missing.stderr
    assert "transferd: hint: set tenant_id in [azure], or --azure-tenant" in missing.stderr
