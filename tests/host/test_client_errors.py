"""What a sender sees when it cannot reach the host, run as the operator runs it: the real
command against real sockets on 127.0.0.1, its exact messages and hints.

A refused port fails at once, naming HOST:PORT, and is not retried (no "retrying" warning); no
message shows a Python repr; TLS spoken to a plain port, and plain HTTP to a TLS port, each say
which scheme to use; an untrusted certificate names the option that fixes it, which exists.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.host.test_serve import serve
from tests.host.test_tls import certificate as certificate
from tests.integration.harness import TRANSFERD, Keys, make_keys


def send(tmp_path: Path, keys: Keys, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "a.csv").write_text("a;b\n1;2\n")
    command = [*TRANSFERD, "send", str(src), "--to", url, "--job", "snds-j",
               "--sender-key", str(keys.sender_key), "-r", keys.owner,
               "--state", str(tmp_path / "state"), *extra]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("transferd: ")]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_refused_port_fails_at_once_naming_it(tmp_path: Path, scheme: str) -> None:
    keys = make_keys(tmp_path / "keys")
    port = closed_port()

    result = send(tmp_path, keys, f"{scheme}://127.0.0.1:{port}")

    assert result.returncode == 4
    assert error_lines(result) == [
        f"transferd: error: listing the manifests of job snds-j: nothing listens on "
        f"127.0.0.1:{port} (connection refused)",
        "transferd: hint: check the host and port of the URL, and that the storage host runs",
    ]
    assert "object at 0x" not in result.stderr
    assert "ssl:" not in result.stderr


def test_tls_to_a_plain_port_says_to_use_http(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    with serve(tmp_path, "--store", "st", "--listen", "127.0.0.1:0",
               "--allow", f"*={keys.sender}") as host:  # fmt: skip
        hostport = host.url.removeprefix("http://")
        result = send(tmp_path, keys, f"https://{hostport}")

    assert result.returncode == 4
    assert error_lines(result) == [
        f"transferd: error: listing the manifests of job snds-j: no TLS session with {hostport}: "
        "wrong version number",
        f"transferd: hint: if {hostport} serves plain HTTP, use http://{hostport}",
    ]


def test_plain_http_to_a_tls_port_and_an_untrusted_certificate_say_what_to_give(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    keys = make_keys(tmp_path / "keys")
    cert, key = certificate
    tls = ("--tls-cert", str(cert), "--tls-key", str(key))
    with serve(tmp_path, "--store", "st", "--listen", "127.0.0.1:0",
               "--allow", f"*={keys.sender}", *tls) as host:  # fmt: skip
        hostport = host.url.removeprefix("https://")
        plain = send(tmp_path, keys, f"http://{hostport}")
        untrusted = send(tmp_path, keys, host.url)
        trusted = send(tmp_path, keys, host.url, "--ca-file", str(cert))

    assert plain.returncode == 4
    assert error_lines(plain) == [
        f"transferd: error: listing the manifests of job snds-j: {hostport} closed the "
        "connection without answering: it speaks TLS",
        f"transferd: hint: use https://{hostport}",
    ]
    assert untrusted.returncode == 4
    assert error_lines(untrusted) == [
        f"transferd: error: listing the manifests of job snds-j: the TLS certificate of "
        f"{hostport} is not trusted: certificate verify failed: self-signed certificate",
        "transferd: hint: trust the host's certificate, or the CA that signed it, with "
        "--ca-file FILE (ca_file in [send] of the daemon's configuration)",
    ]
    assert trusted.returncode == 0, trusted.stderr  # the option the hint names exists, and works
