"""A daemon job reads an Azure container signing in with Entra ID, as ``[azure]`` of the daemon's
configuration names it (one sign-in, never a wandering credential chain): Azurite over HTTPS in
OAuth mode, the token from the test's Entra ID endpoint for a service principal whose secret is
in a 0600 file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.daemon.harness import Daemon, short_dir
from tests.integration.harness import make_keys, tree
from tests.sources.azure.azurite import ACCOUNT, Azurite
from tests.sources.azure.certs import Certs
from tests.sources.azure.entradata import BLOBS
from tests.sources.azure.test_entra import secret_file
from tests.sources.azure.test_entra_cli import run
from tests.sources.azure.tokenserver import CLIENT_ID, SECRET, TENANT, TokenServer


@pytest.mark.slow  # a daemon, a job, a restore
def test_a_daemon_job_signs_in_with_the_entra_id_of_its_config(
    azurite_oauth: Azurite, certs: Certs, token_server: TokenServer, container: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    keys = make_keys(tmp_path / "keys")
    secret = secret_file(tmp_path)
    before = token_server.count("token secret")
    with short_dir() as sockets:
        daemon = Daemon(tmp_path / "d", sockets, keys)
        with daemon.config.open("a") as config:
            config.write(
                "[azure]\n"
                'auth = "client-secret"\n'
                f'tenant_id = "{TENANT}"\n'
                f'client_id = "{CLIENT_ID}"\n'
                f'client_secret_file = "{secret}"\n'
                f'authority = "{token_server.authority}"\n'
                f'endpoint = "{azurite_oauth.endpoint}"\n'
                f'ca_file = "{certs.ca}"\n'
            )
        try:
            daemon.start()
            daemon.jobs("start", "entra", f"az://{ACCOUNT}/{container}")
            status = daemon.wait_job("entra", lambda s: s["phase"] in ("done", "failed"))
            assert status["phase"] == "done", daemon.log.read_text()
            assert daemon.terminate() == 0
        finally:
            daemon.close()
        log = daemon.log.read_text()
    assert token_server.count("token secret") > before  # the token came from Entra ID's endpoint
    assert SECRET not in log

    restored = run(dict(os.environ), "restore", "--store", daemon.store, "--job", "entra",
                   "--identity", keys.owner_key, "--sender", keys.sender,
                   "--out", tmp_path / "out")  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    got = tree(tmp_path / "out")
    for name, data in BLOBS.items():
        assert got[name.encode()][2] == data
