"""The daemon's configuration: the example documents the defaults; refusals name what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from transferd.daemon.config import load_config
from transferd.daemon.notify import Notifier
from transferd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "systemd" / "transferd.toml.example"


def test_the_example_shows_exactly_the_defaults() -> None:
    env = {"STATE_DIRECTORY": "/var/lib/transferd", "CREDENTIALS_DIRECTORY": "/run/credentials/t"}
    example, defaults = load_config(EXAMPLE, env), load_config(None, env)
    for part in ("daemon", "metrics", "send", "serve"):
        assert getattr(example, part) == getattr(defaults, part), part


def test_systemd_directories_and_credentials_are_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TRANSFERD_STATE", raising=False)
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/transferd")
    env = {"RUNTIME_DIRECTORY": "/run/transferd", "LOGS_DIRECTORY": "/var/log/transferd",
           "CREDENTIALS_DIRECTORY": "/run/credentials/transferd.service"}  # fmt: skip
    c = load_config(None, env)
    assert c.daemon.state_dir == Path("/var/lib/transferd")
    assert c.daemon.control_socket == Path("/run/transferd/control.sock")
    assert c.daemon.logs_dir == Path("/var/log/transferd")
    assert c.send.sender_key is not None
    assert c.send.sender_key.path == Path("/run/credentials/transferd.service/sender.key")


def _refused(tmp_path: Path, text: str) -> str:
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(path, {})
    return e.value.message


def test_refusals_name_the_setting(tmp_path: Path) -> None:
    assert "unknown setting 'drain_timout' in [daemon]" in _refused(
        tmp_path, "[daemon]\ndrain_timout = 5\n"
    )
    assert "holds a secret; secrets go in files" in _refused(
        tmp_path, '[send]\nsender_key = "td-secret-sender-1qqqqqqqqqq"\n'
    )
    assert "loopback only" in _refused(tmp_path, '[metrics]\nlisten = "0.0.0.0:9464"\n')
    assert "must be a int" in _refused(tmp_path, "[daemon]\nmax_jobs = true\n")
    assert "enabled but names no store" in _refused(tmp_path, "[serve]\nenabled = true\n")
    assert "not a bandwidth" in _refused(tmp_path, '[send]\nbandwidth = "fast"\n')


def test_a_config_file_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read .*missing\.toml: no such file"):
        load_config(tmp_path / "missing.toml", {})


def test_notify_socket_addresses() -> None:
    assert Notifier({}).enabled is False
    abstract = Notifier({"NOTIFY_SOCKET": "@sd/notify", "WATCHDOG_USEC": "30000000"})
    other = Notifier({"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "1"})
    absent = Notifier({"NOTIFY_SOCKET": "/nonexistent/notify"})
    try:
        assert abstract.address == "\0sd/notify"
        assert abstract.watchdog_interval == 30.0
        assert other.watchdog_interval is None  # the pings are another process's to send
        assert absent.notify(READY="1") is False  # no manager there: ignored, never raised
    finally:
        for n in (abstract, other, absent):
            n.close()


def test_the_azure_sign_in_and_the_s3_table_are_the_jobs(tmp_path: Path) -> None:
    """``[azure]`` names how the jobs' az:// sources sign in, its paths relative to the file;
    ``[s3]`` makes the file the jobs' S3 configuration. Both checked when the file is read."""
    path = tmp_path / "t.toml"
    path.write_text(
        '[azure]\nauth = "client-secret"\ntenant_id = "t"\nclient_id = "c"\n'
        'client_secret_file = "sp.secret"\n[s3]\nendpoint = "https://s3.example.org"\n'
    )
    c = load_config(path, {})
    assert c.azure["client_secret_file"] == str(tmp_path / "sp.secret")
    assert c.s3_config == path
    assert load_config(None, {}).azure == {}
    assert load_config(None, {}).s3_config is None


def test_an_azure_sign_in_without_what_it_needs_is_one_of_the_problems(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[azure]\nauth = "client-secret"\nclient_id = "c"\nsecret = "x"\n')
    with pytest.raises(ConfigError, match=r"unknown setting 'secret' in \[azure\]"):
        load_config(path, {})
    path.write_text('[azure]\nauth = "client-secret"\n[send]\nlevel = 99\n')
    with pytest.raises(ConfigError) as refused:
        load_config(path, {})
    assert "2 problems" in refused.value.message
    assert "tenant" in refused.value.message
