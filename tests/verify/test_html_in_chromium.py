"""The HTML report opens in a real browser (Debian's headless Chromium) and shows its verdict."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.verify.conftest import Verify
from tests.verify.copies import Copy, flip_bit
from transferd.report import html, seal

CHROMIUM = shutil.which("chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--window-size=1200,1600",
]  # fmt: skip

pytestmark = [pytest.mark.slow]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None, "chromium is missing: run scripts/setup"
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=True,
        env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip


def test_the_report_renders_with_its_verdict_on_top(
    copy: Copy, verify: Verify, tmp_path: Path
) -> None:
    flip_bit(copy.packs()[0])
    copy.packs()[1].unlink()
    page = tmp_path / "report.html"
    page.write_text(html.render(seal.seal(verify().to_json(), None)))

    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    verdict = re.search(r'<header class="verdict" id="verdict"[^>]*>(.*?)</header>', dom, re.S)
    assert verdict is not None
    assert '<div class="word">ALTERED</div>' in verdict.group(1)
    assert "the copy was altered" in verdict.group(1)
    assert dom.index('id="verdict"') < dom.index("<h2>Checks</h2>") < dom.index("Failures (2)")
    assert copy.packs()[0].name in dom

    shot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={shot}", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    if os.environ.get("TRANSFERD_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["TRANSFERD_KEEP_SCREENSHOT"])
