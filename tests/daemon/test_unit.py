"""systemd/transferd.service passes ``systemd-analyze verify`` and stays at exposure <= 1.5.

Both run offline (no systemd needs to be running). ``verify`` checks that ExecStart= is an
executable, so it runs on a copy whose ExecStart= names this checkout's transferd instead of
/opt/transferd, which only scripts/install creates. scripts/setup installs Debian's
systemd package when ``systemd-analyze`` is missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "transferd.service"
EXPOSURE_GOAL = 1.5


def analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is missing: run scripts/setup (it installs Debian's systemd)")
    return tool


AGENT = ROOT / "systemd" / "transferd-agent@.service"
UNITS = {"transferd.service": UNIT, "transferd-agent@snds-2026.service": AGENT}
"""Each unit under the name systemd-analyze checks it by (a template needs an instance)."""


@pytest.mark.parametrize("name", UNITS)
def test_the_unit_verifies(tmp_path: Path, name: str) -> None:
    transferd = Path(sys.executable).with_name("transferd")
    assert transferd.exists(), "scripts/setup installs transferd into the venv"
    unit = tmp_path / name
    unit.write_text(UNITS[name].read_text().replace("/opt/transferd/bin/transferd", str(transferd)))
    proc = subprocess.run(
        [analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert name not in proc.stderr, proc.stderr


@pytest.mark.parametrize("name", UNITS)
def test_the_unit_exposure_is_at_most_the_goal(tmp_path: Path, name: str) -> None:
    unit = tmp_path / name
    unit.write_text(UNITS[name].read_text())
    proc = subprocess.run(
        [analyze(), "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    m = re.search(rf"Overall exposure level for {re.escape(name)}: ([0-9.]+)", proc.stdout)
    assert m is not None, proc.stdout + proc.stderr
    assert float(m.group(1)) <= EXPOSURE_GOAL, proc.stdout


@pytest.mark.parametrize(
    "setting",
    ["Type=notify", "WatchdogSec=", "RestartPreventExitStatus=2", "User=transferd",
     "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
     "CapabilityBoundingSet=\n", "RestrictAddressFamilies=", "SystemCallFilter=@system-service",
     "StateDirectory=", "RuntimeDirectory=", "LogsDirectory=", "LoadCredential=sender.key:"],
)  # fmt: skip
def test_the_unit_has(setting: str) -> None:
    assert setting in UNIT.read_text()


def test_stop_timeout_is_above_the_drain_deadline() -> None:
    from transferd.daemon.config import load_config

    drain = load_config(ROOT / "systemd" / "transferd.toml.example", {}).daemon.drain_timeout
    m = re.search(r"^TimeoutStopSec=([0-9]+)s$", UNIT.read_text(), re.M)
    assert m is not None
    assert int(m.group(1)) >= drain + 20


def test_install_stages_units_config_and_user(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(ROOT / "scripts" / "install"), "--destdir", str(tmp_path), "--no-venv"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "etc/systemd/system/transferd.service").read_text() == UNIT.read_text()
    agent = tmp_path / "etc/systemd/system/transferd-agent@.service"
    assert agent.read_text() == AGENT.read_text()
    assert "u transferd" in (tmp_path / "usr/lib/sysusers.d/transferd.conf").read_text()
    assert (tmp_path / "usr/lib/tmpfiles.d/transferd.conf").exists()
    config = tmp_path / "etc/transferd/transferd.toml"
    assert config.stat().st_mode & 0o777 == 0o640
