"""``transferd verify --copy NAME``: the whole copy, its copy manifests and every job in it.

The checks are copies/verify.py's; this module prints them and writes the JSON report (every
job's full report inside, hashed and optionally signed like a job's report) and its HTML page
(report/html.py ``render_copy``). The exit code is the verdict's, as for one job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transferd.cli.output import Output
from transferd.copies.verify import CopyReport, verify_whole_copy
from transferd.core.keys import SenderPublicKey, SenderSecretKey
from transferd.errors import VERDICT_ERRORS, VERDICT_TEXT, ConfigError
from transferd.report import html, seal
from transferd.stores.base import CopyStore, Store
from transferd.util.runtime import run as run_async
from transferd.verify.run import VerifyOptions


def run_copy_verify(
    store: Store,
    copy: str,
    sender: SenderPublicKey,
    options: VerifyOptions,
    out: Output,
    *,
    report_json: Path | None,
    report_html: Path | None,
    signer: SenderSecretKey | None,
    write: Any,
) -> int:
    if not isinstance(store, CopyStore):
        raise ConfigError(f"the store {store.description} keeps no copy records")

    async def main() -> CopyReport:
        try:
            return await verify_whole_copy(store, copy, sender, options)
        finally:
            await store.close()

    report = run_async(main())
    document = seal.seal(report.to_json(), signer)
    if report_json is not None:
        write(report_json, seal.dumps(document))
    if report_html is not None:
        write(report_html, html.render_copy(document))
    out.result(document, _human(report, document))
    error = VERDICT_ERRORS.get(report.verdict)
    if error is not None:
        raise error(
            f"verification failed: {report.summary()}",
            hint="the report lists every failure"
            if report_json or report_html
            else "write the full list with --report-json FILE or --report-html FILE",
        )
    return 0


def _human(report: CopyReport, document: dict[str, Any]) -> list[str]:
    newest = report.newest or {}
    lines = [
        f"verify copy {report.copy} at {report.store}: {report.verdict.upper()}, "
        f"{VERDICT_TEXT[report.verdict]}",
        f"  copy manifests: {report.copy_manifests} stored, newest {newest.get('sequence')} "
        f"({newest.get('created')}), signed by {report.sender}",
    ]
    for name, job in report.jobs.items():
        if job is None:
            lines.append(f"  job {name}: not finished")
            continue
        counts = job.counts
        lines.append(
            f"  job {name}: {job.verdict.upper()}, {len(job.manifests)} manifests, "
            f"{counts.get('objects_referenced', 0):,} objects, "
            f"{counts.get('bytes_read', 0) / 1e6:,.1f} MB read"
        )
    lines += [f"  {category}: {message}" for category, message in report.findings]
    lines.append(f"  report sha256 {document['report_sha256']}")
    return lines
