"""The real Azure CLI (``az``, installed by scripts/setup into .ci/azcli), signed in against the
test's token endpoint as a custom cloud, so that AzureCliCredential runs what it runs on an
operator's host: ``az account get-access-token``, a Python process of the CLI's own.

The cloud's login endpoint and resource manager are the token endpoint (tokenserver.py answers
the cloud's metadata and an empty subscription list); ``core.instance_discovery=false`` keeps msal
from asking login.microsoftonline.com, which is unreachable here. The service principal's secret
goes to ``az login`` as ``@FILE``: never on a command line.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.sources.azure.certs import Certs
from tests.sources.azure.tokenserver import CLIENT_ID, TENANT, TokenServer

REPO = Path(__file__).resolve().parents[3]
AZ_BIN = REPO / ".ci" / "azcli" / "bin"


def az_environment(config_dir: Path, certs: Certs) -> dict[str, str]:
    """What a process that runs az (transferd, through AzureCliCredential) needs beside
    os.environ: az on PATH, its configuration directory, and the test CA (requests reads it)."""
    return {
        "PATH": f"{AZ_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AZURE_CONFIG_DIR": str(config_dir),
        "REQUESTS_CA_BUNDLE": str(certs.ca),
        "AZURE_CORE_COLLECT_TELEMETRY": "false",
        "AZURE_CORE_ONLY_SHOW_ERRORS": "true",
    }


def az_login(config_dir: Path, certs: Certs, token_server: TokenServer, secret_file: Path) -> None:
    """Register the token endpoint as a cloud, select it, and sign in as the service principal."""
    if not (AZ_BIN / "az").exists():
        raise RuntimeError(f"{AZ_BIN / 'az'} is missing: run scripts/setup (it installs azure-cli)")
    config_dir.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, **az_environment(config_dir, certs)}
    base = token_server.authority

    def az(*args: str) -> None:
        done = subprocess.run(
            [str(AZ_BIN / "az"), *args], env=env, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"az {args[0]} {args[1]} failed: {done.stderr[-2000:]}")

    az("cloud", "register", "-n", "TransferdTest", "--endpoint-active-directory", base,
       "--endpoint-active-directory-resource-id", "https://management.core.windows.net/",
       "--endpoint-resource-manager", f"{base}/arm", "--endpoint-management", f"{base}/arm/",
       "--suffix-storage-endpoint", "core.windows.net")  # fmt: skip
    az("cloud", "set", "-n", "TransferdTest")
    az("config", "set", "core.instance_discovery=false")
    az("login", "--service-principal", "-u", CLIENT_ID, "-p", f"@{secret_file}",
       "--tenant", TENANT, "--allow-no-subscriptions", "--output", "none")  # fmt: skip
