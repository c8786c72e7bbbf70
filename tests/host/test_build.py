"""One builder for both hosts: the daemon's receiving role reads ``[serve]`` as ``transferd serve``
does, and so serves an S3 bucket too (it could not, before the two shared host/build.py)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from tests.stores.backends import SENDER, allow_all, random_object
from tests.stores.s3server import shared_server
from transferd.daemon.config import load_config
from transferd.daemon.receiver import Receiver
from transferd.errors import ConfigError
from transferd.host.settings import SCALARS, read_serve_table, with_options
from transferd.stores.http import HttpStore

ALLOW = f'"snds-*" = ["{SENDER.public().to_text()}"]'


async def test_the_receiving_role_serves_an_s3_bucket(tmp_path: Path) -> None:
    server = shared_server()
    bucket = await server.new_bucket()
    creds = server.credentials_file(tmp_path)
    config = tmp_path / "transferd.toml"
    config.write_text(
        f'[serve]\nenabled = true\nstore = "s3://{bucket}/host"\nlisten = "127.0.0.1:0"\n'
        f"[serve.senders]\n{ALLOW}\n"
        f'[s3]\nendpoint = "{server.endpoint}"\ncredentials_file = "{creds.name}"\n'
    )
    receiver = Receiver(load_config(config, {}).serve)
    await receiver.start()
    try:
        client = HttpStore(receiver.url, SENDER)
        name, data = random_object(50_000)
        await client.put_object("snds-dcir", name, data)
        assert await client.get_object("snds-dcir", name) == data
        await client.close()
    finally:
        await receiver.close()
    stored = server.root / bucket / "host" / "jobs" / "snds-dcir" / "objects" / name[:2] / name
    assert stored.read_bytes() == data


def test_the_command_line_wins_over_the_table_and_adds_grants(tmp_path: Path) -> None:
    table = {"store": "st", "listen": "127.0.0.1:9000", "shutdown_timeout": 5,
             "senders": {"a-*": [SENDER.public().to_text()]}}  # fmt: skip
    from_file = read_serve_table(table, base=tmp_path, where="[serve] of t.toml", env={})
    options = {s.name: None for s in SCALARS if s.option} | {"listen": "[::1]:0"}
    given = with_options(from_file, options, allow=(f"b-*={SENDER.public().to_text()}",))

    assert from_file.store == str(tmp_path / "st")
    assert given.listen == ("::1", 0)
    assert given.shutdown_timeout == 5.0
    assert [p for p, _ in given.writers] == ["a-*", "b-*"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"shutdown_timeout": "soon"}, "shutdown_timeout in [serve] of t.toml must be a number"),
        ({"shutdown_timeout": 0}, "shutdown_timeout in [serve] of t.toml must be above 0"),
        ({"tls_cert": "c.pem"}, "TLS needs both a certificate and its key"),
        ({"tls_key_credential": "a/b"}, "must be a credential name, not a path"),
        ({"store": "ftp://x"}, "is neither a directory nor s3://"),
        ({"senders": {"*": "tds1nope"}}, "tds1nope"),
    ],
)
def test_a_bad_table_names_the_setting(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        read_serve_table(table, base=Path("/"), where="[serve] of t.toml", env={})
    assert message in caught.value.message


async def test_swept_bytes_reach_the_daemons_metrics(tmp_path: Path) -> None:
    from transferd.daemon.metrics import HostCollector
    from transferd.host.context import HOUSEKEEPING
    from transferd.host.limits import HostLimits
    from transferd.host.server import make_app
    from transferd.stores.local import LocalStore

    store = LocalStore(tmp_path / "st")
    app = make_app(store, allow_all(), limits=HostLimits(partial_max_age=60))
    leftover = tmp_path / "st" / "jobs" / "snds-dcir" / "tmp" / f"{'0' * 64}.{'ab' * 8}.tmp"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"x" * 5000)
    os.utime(leftover, (1, 1))
    await app[HOUSEKEEPING].run_now()

    metrics = {m.name: m for m in HostCollector(app).collect()}
    reclaimed = metrics["transferd_host_partial_bytes_reclaimed"].samples[0]
    assert reclaimed.value == 5000
    assert not leftover.exists()


def test_the_example_documents_every_setting_with_its_default() -> None:
    example = Path(__file__).resolve().parents[2] / "systemd" / "transferd.toml.example"
    table = tomllib.loads(example.read_text())["serve"]
    for scalar in SCALARS:
        assert table[scalar.name] == scalar.default, scalar.name
