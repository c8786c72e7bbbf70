"""Azurite, Microsoft's Azure Storage emulator, on a free port of 127.0.0.1 for the tests.

Installed by scripts/setup from npm (``azurite``, pinned) into .ci/node_modules. It needs
``--skipApiVersionCheck`` (the SDK speaks a newer API version than the emulator knows) and
``--disableTelemetry`` (without it, it ignores SIGTERM). The well-known development account
``devstoreaccount1`` and its published key are Azurite's own; they open nothing else.

With ``certs`` it serves HTTPS and, in ``--oauth basic`` mode, accepts bearer tokens beside the
account key: it checks a token's audience, issuer prefix and validity period, never its
signature (the token endpoint, tests/sources/azure/tokenserver.py, judges credentials).
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.sources.azure.certs import Certs

REPO = Path(__file__).resolve().parents[3]
AZURITE = REPO / ".ci" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class Azurite:
    port: int
    tls: bool = False

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol={'https' if self.tls else 'http'};AccountName={ACCOUNT};"
            f"AccountKey={KEY};BlobEndpoint={self.endpoint};"
        )

    def credential_file(self, directory: Path) -> Path:
        path = directory / "azure.credential"
        path.write_text(f"# Azurite's development account\n{self.connection_string}\n")
        path.chmod(0o600)
        return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running_azurite(location: Path, certs: Certs | None = None) -> Iterator[Azurite]:
    """Azurite on a free port; with ``certs``, over HTTPS with OAuth (bearer tokens) on."""
    if not AZURITE.exists():
        raise RuntimeError(f"{AZURITE} is missing: run scripts/setup (it installs Azurite)")
    location.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = open(location / "azurite.log", "wb")  # noqa: SIM115 - the child owns it
    tls = [] if certs is None else [
        "--oauth", "basic", "--cert", str(certs.server_cert), "--key", str(certs.server_key)
    ]  # fmt: skip
    process = subprocess.Popen(
        [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port),
         "--location", str(location), "--skipApiVersionCheck", "--disableTelemetry", "--silent",
         *tls],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    log.close()
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"azurite exited with {process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("azurite did not listen within 30 s") from None
                time.sleep(0.05)
        yield Azurite(port, tls=certs is not None)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
