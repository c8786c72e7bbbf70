"""Azurite, Microsoft's Azure Storage emulator, on a free port of 127.0.0.1 for the tests.

Installed by scripts/setup from npm (``azurite``, pinned) into .ci/node_modules. It needs
``--skipApiVersionCheck`` (the SDK speaks a newer API version than the emulator knows) and
``--disableTelemetry`` (without it, it ignores SIGTERM). The well-known development account
``devstoreaccount1`` and its published key are Azurite's own; they open nothing else.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
AZURITE = REPO / ".ci" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class Azurite:
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={self.endpoint};"
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
def running_azurite(location: Path) -> Iterator[Azurite]:
    if not AZURITE.exists():
        raise RuntimeError(f"{AZURITE} is missing: run scripts/setup (it installs Azurite)")
    location.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = open(location / "azurite.log", "wb")  # noqa: SIM115 - the child owns it
    process = subprocess.Popen(
        [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port),
         "--location", str(location), "--skipApiVersionCheck", "--disableTelemetry", "--silent"],
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
        yield Azurite(port)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
