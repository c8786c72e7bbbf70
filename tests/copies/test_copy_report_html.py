"""The HTML page of ``verify --copy``: the copy's verdict on top, its jobs, each job's failures;
opened in a real browser (Debian's headless Chromium)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.copies.test_copy_verify import COPY, SENDER, record, send_job
from tests.verify.test_html_in_chromium import chromium
from transferd.copies.verify import verify_whole_copy
from transferd.report import html, seal
from transferd.stores.memory import MemoryStore

pytestmark = [pytest.mark.slow]


async def test_the_copy_page_shows_the_verdict_the_jobs_and_each_jobs_failures(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    alpha = await send_job(store, tmp_path, "alpha")
    await record(store, {"alpha": alpha})  # bravo never finishes: the copy is incomplete
    objects = store.objects["alpha"]
    pack = max(objects, key=lambda name: len(objects[name]))
    objects[pack] = bytes([objects[pack][0] ^ 1]) + objects[pack][1:]  # and alpha is altered

    report = await verify_whole_copy(store, COPY, SENDER.public())
    assert report.verdict == "altered"
    document = seal.seal(report.to_json(), SENDER)
    assert document["exit_code"] == 21
    page = tmp_path / "copy.html"
    page.write_text(html.render_copy(document))

    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    verdict = re.search(r'<header class="verdict" id="verdict"[^>]*>(.*?)</header>', dom, re.S)
    assert verdict is not None
    assert '<div class="word">ALTERED</div>' in verdict.group(1)
    assert "1 of 2 jobs recorded" in verdict.group(1)
    jobs = dom.index("<h2>Jobs</h2>")
    assert jobs < dom.index('id="job-alpha"') < dom.index("Failures (1)")
    assert "no finished manifest recorded" in dom[jobs:]  # bravo
    assert "job bravo has no finished manifest in the copy" in dom
    assert document["report_sha256"] in dom
    assert "default-src 'none'" in page.read_text()  # nothing fetched when opened

    saved = seal.load(seal.dumps(document), "copy.json")  # what `report check` reads
    assert seal.check(saved, "copy.json", SENDER.public()) is not None
