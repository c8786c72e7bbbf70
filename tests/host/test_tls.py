"""TLS with a self-signed certificate made by the openssl command: trusted by CA file or by pin."""

from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.stores.backends import SENDER, allow_all, random_object, serving
from transferd.errors import PermanentStoreError
from transferd.host.build import tls_context
from transferd.host.server import make_app
from transferd.host.settings import HostSettings
from transferd.stores.http import HttpStore
from transferd.stores.memory import MemoryStore

JOB = "dcir"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl command is not installed: run scripts/setup")
    cert, key = tmp_path / "host.crt", tmp_path / "host.key"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=transferd test host",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    key.chmod(0o600)
    return cert, key


def server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    return tls_context(HostSettings(tls_cert=cert, tls_key=key))


def fingerprint(cert: Path) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())  # openssl's own form


async def round_trip(url: str, **tls: object) -> bool:
    """Store an object over TLS and read it back; True when it came back whole."""
    client = HttpStore(url, SENDER, **tls)  # type: ignore[arg-type]
    try:
        name, data = random_object(1000)
        await client.put_object(JOB, name, data)
        return await client.get_object(JOB, name) == data
    finally:
        await client.close()


async def test_a_client_given_the_certificate_as_ca_talks_tls(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    app = make_app(MemoryStore(), allow_all())
    async with serving(app, ssl_context=server_tls(cert, key)) as url:
        assert url.startswith("https://")
        assert await round_trip(url, ca_file=cert)


async def test_a_client_pinning_the_certificate_talks_tls(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    app = make_app(MemoryStore(), allow_all())
    async with serving(app, ssl_context=server_tls(cert, key)) as url:
        assert await round_trip(url, pin_sha256=fingerprint(cert))
        assert await round_trip(url, pin_sha256=fingerprint(cert).replace(":", "").lower())


@pytest.mark.parametrize("trust", ["system", "wrong-pin"])
async def test_an_untrusted_certificate_is_a_permanent_error(
    certificate: tuple[Path, Path], trust: str
) -> None:
    cert, key = certificate
    options = {} if trust == "system" else {"pin_sha256": "ab" * 32}
    app = make_app(MemoryStore(), allow_all())
    async with serving(app, ssl_context=server_tls(cert, key)) as url:
        with pytest.raises(PermanentStoreError, match="is not trusted"):
            await round_trip(url, **options)
