"""The verify report as one self-contained HTML page, for an auditor to read, print and file.

Rendered from the sealed JSON document (so a saved report can be rendered again), with nothing
outside the file: inline CSS, no script, no font, no image, and a Content-Security-Policy that
forbids fetching anything, so opening the page never tells anyone it was opened. The top says, once
each: the verdict in large type on its colour and what was found, who verified (the key that signed
the report, or that nobody did), when, and what this mode of verify does not prove, so that a pass
is not read as more than it is. Then the copy, the sender key, times and volumes, every check, and
every failure. Every value from the store or the source is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

from transferd.errors import VERDICT_TEXT

HTML_FAILURE_ROWS = 5000
"""Failures shown as rows; the JSON report lists them all (up to its own per-kind limit)."""

COLOURS = {
    "pass": "#1a7f37",
    "untrusted": "#7a0916",
    "altered": "#c8102e",
    "incomplete": "#b54708",
    "differs": "#6941c6",
    "unreadable": "#475467",
}
RESULT_COLOURS = {"pass": "#1a7f37", "fail": "#c8102e", "skipped": "#667085"}

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
 color:#101828;background:#f9fafb}
main{max-width:1100px;margin:0 auto;padding:0 24px 48px}
.verdict{color:#fff;padding:28px 32px;margin:0 0 24px}
.verdict .word{font-size:64px;font-weight:800;letter-spacing:.04em;line-height:1}
.verdict .text{font-size:24px;margin-top:8px;font-weight:600}
.verdict .summary{font-size:15px;margin-top:6px;opacity:.92}
.verdict .who{font-size:15px;margin-top:10px}
.verdict .limits{font-size:14px;margin-top:8px;opacity:.92;max-width:900px}
h1{font-size:14px;font-weight:600;margin:0 0 6px;opacity:.9;text-transform:uppercase;
 letter-spacing:.08em}
h2{font-size:19px;margin:28px 0 10px;border-bottom:2px solid #eaecf0;padding-bottom:4px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:0}
dt{color:#475467}
dd{margin:0;word-break:break-all}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:13px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;vertical-align:top;padding:6px 10px;border-bottom:1px solid #eaecf0}
th{background:#f2f4f7;font-size:13px;color:#344054}
td.msg{word-break:break-word}
.badge{display:inline-block;min-width:68px;text-align:center;color:#fff;border-radius:4px;
 padding:1px 8px;font-weight:700;font-size:12px;text-transform:uppercase}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:0 32px}
.note{color:#475467}
footer{margin-top:32px;padding-top:12px;border-top:2px solid #eaecf0;font-size:13px}
@media print{.verdict{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""


def render(doc: dict[str, Any]) -> str:
    job = doc.get("job") or {}
    verdict = str(doc.get("verdict", "unreadable"))
    title = f"transferd verify report: job {job.get('name', '?')}: {verdict.upper()}"
    parts = [
        *_head(title, doc),
        '<div class="grid"><section>',
        "<h2>Copy</h2>",
        _copy(doc),
        "</section><section>",
        "<h2>Time and volume</h2>",
        _volume(doc),
        "</section></div>",
        "<h2>Checks</h2>",
        _checks(doc.get("checks") or []),
        _failures(doc),
        _manifests(doc.get("manifests") or []),
        _footer(doc),
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def render_copy(doc: dict[str, Any]) -> str:
    """The report of ``verify --copy``: the copy's verdict, its jobs in a table, then each job's
    checks and failures, one section per job (the same blocks as a job's own page)."""
    verdict = str(doc.get("verdict", "unreadable"))
    jobs: dict[str, Any] = doc.get("jobs") or {}
    newest = doc.get("newest") or {}
    findings = doc.get("findings") or []
    rows = [
        ("Copy", f"<b>{_e(doc.get('copy'))}</b>"),
        ("Store", f"<code>{_e(doc.get('store'))}</code>"),
        ("Sender key", f"<code>{_e(doc.get('sender'))}</code>"),
        ("Copy manifests", _e(f"{doc.get('copy_manifests', 0)}, newest "
                              f"{newest.get('sequence')} of {newest.get('created')}")),
        ("Newest SHA-256", f"<code>{_e(newest.get('sha256'))}</code>"),
        ("Jobs", _e(f"{sum(1 for j in jobs.values() if j)} of {len(jobs)} recorded")),
    ]  # fmt: skip
    finding_rows = "".join(
        f'<tr><td><b>{_e(f.get("category"))}</b></td><td class="msg">{_e(f.get("message"))}'
        "</td></tr>"
        for f in findings
    )
    parts = [
        *_head(f"transferd verify report: copy {doc.get('copy', '?')}: {verdict.upper()}", doc),
        "<h2>Copy</h2>",
        _dl(rows),
        f"<h2>Findings on the copy itself ({len(findings):,})</h2>",
        f"<table><tr><th>Kind</th><th>What was found</th></tr>{finding_rows}</table>"
        if findings
        else '<p class="note">None.</p>',
        "<h2>Jobs</h2>",
        _job_table(jobs),
    ]
    for name, job in jobs.items():
        if not job:
            continue
        report = job.get("report") or {}
        parts += [
            f'<h2 id="job-{_e(name)}">Job {_e(name)} {_badge(str(job.get("verdict")), COLOURS)}'
            "</h2>",
            f'<p class="note">{_e(report.get("summary", ""))}</p>',
            _checks(report.get("checks") or []),
            _failures(report).replace("<h2>", "<h3>").replace("</h2>", "</h3>"),
        ]
    parts += [_footer(doc), "</main></body></html>"]
    return "\n".join(parts) + "\n"


def _head(title: str, doc: dict[str, Any]) -> list[str]:
    """The page up to ``<main>``: the document head, then the verdict on its colour, stated once
    (its word and sentence; what was found, counted; the exit code), who verified and when, and
    what this mode of verify leaves unproven."""
    verdict = str(doc.get("verdict", "unreadable"))
    colour = COLOURS.get(verdict, COLOURS["unreadable"])
    found = _found(doc)
    summary = f"{found} &middot; " if found else ""
    limits = not_proven(doc)
    return [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f'<header class="verdict" id="verdict" style="background:{colour}">',
        "<h1>transferd verify report</h1>",
        f'<div class="word">{_e(verdict.upper())}</div>',
        f'<div class="text">{_e(VERDICT_TEXT.get(verdict, verdict))}</div>',
        f'<div class="summary">{summary}exit code {_e(doc.get("exit_code"))}</div>',
        f'<div class="who" id="verified-by">{_verified_by(doc)}</div>',
        f'<div class="limits" id="not-proven">{_e(limits)}</div>' if limits else "",
        "</header><main>",
    ]


def _found(doc: dict[str, Any]) -> str:
    """What was found, counted by kind ("2 missing, 1 altered"); empty for a pass."""
    counts = doc.get("failure_counts") or {}
    findings = doc.get("findings") or []
    absent = _named(doc) - int((doc.get("counts") or {}).get("objects_listed", 0))
    parts = []
    for kind, n in counts.items():
        if kind == "missing" and absent > n:  # a missing object list hides which packs it named
            parts.append(f"at least {absent:,} missing")
        elif n:
            parts.append(f"{n:,} {kind}")
    if findings:
        parts.append(f"{len(findings):,} finding{'s' if len(findings) != 1 else ''} on the copy")
    jobs = doc.get("jobs") or {}
    if jobs:
        recorded = sum(1 for j in jobs.values() if j)
        passed = sum(1 for j in jobs.values() if j and j.get("verdict") == "pass")
        parts.append(f"{recorded:,} of {len(jobs):,} jobs recorded, {passed:,} passed")
    return _e(", ".join(parts))


def _verified_by(doc: dict[str, Any]) -> str:
    """Who verified: the key that signed this report (its hash and signature cover the JSON
    report), or that it is not signed, and when the verify ran."""
    signature = doc.get("signature")
    when = doc.get("finished") or doc.get("started")
    at = f" on {_e(when)}" if when else ""
    if isinstance(signature, dict) and signature.get("key"):
        return (
            f"Verified by <code>{_e(signature.get('key'))}</code>{at}: the key that signed this "
            "report (check it with <code>transferd report check</code>)"
        )
    return (
        f"Verified{at} by a key nobody can name: this report is not signed "
        "(<code>transferd verify … --sign-report KEY</code> signs it)"
    )


def not_proven(doc: dict[str, Any]) -> str:
    """What this mode of verify does not prove, in one sentence (protocol/REPORT.md)."""
    mode = doc.get("mode")
    if not isinstance(mode, dict):
        if doc.get("type") == "transferd-copy-verify-report":
            return (
                "Without the decryption key, this verify does not prove that any chunk decrypts "
                "or that any file matches its hash, nor that the copy matches its source now."
            )
        return ""
    deep, against = bool(mode.get("deep")), mode.get("against")
    if deep and against:
        return (
            "This verify opened every chunk and compared the copy with its source as it was "
            "read during the verify; it does not prove that the copy stays intact after it "
            "(verify again), nor that what the source held was itself correct."
        )
    if deep:
        return (
            "This verify opened every chunk and checked every file against the catalog; it "
            "does not prove that the copy matches the source as it is now (--against SOURCE)."
        )
    if against:
        return (
            "This verify compared the catalog and the source, hashing the source; it did not "
            "open the stored chunks, so it does not prove that they decrypt to what the catalog "
            "says (--deep)."
        )
    return (
        "This verify did not decrypt anything: it proves that the stored objects are those the "
        "signed manifests name, byte for byte; it does not prove that the chunks decrypt or "
        "that the files match their hashes (--deep --identity), nor that the copy matches the "
        "source now (--against)."
    )


def _job_table(jobs: dict[str, Any]) -> str:
    rows = []
    for name, job in jobs.items():
        if not job:
            rows.append(
                f"<tr><td><b>{_e(name)}</b></td><td>{_badge('incomplete', COLOURS)}</td>"
                '<td colspan="4" class="note">no finished manifest recorded</td></tr>'
            )
            continue
        report = job.get("report") or {}
        counts = report.get("counts") or {}
        failures = sum((report.get("failure_counts") or {}).values())
        rows.append(
            f'<tr><td><b><a href="#job-{_e(name)}">{_e(name)}</a></b></td>'
            f"<td>{_badge(str(job.get('verdict')), COLOURS)}</td>"
            f"<td>{_e(len(report.get('manifests') or []))}</td>"
            f"<td>{counts.get('objects_referenced', 0):,}</td>"
            f"<td>{_e(_bytes(counts.get('bytes_referenced', 0)))}</td>"
            f"<td>{failures:,}</td></tr>"
        )
    return (
        "<table><tr><th>Job</th><th>Verdict</th><th>Manifests</th><th>Objects</th>"
        f"<th>Bytes</th><th>Failures</th></tr>{''.join(rows)}</table>"
    )


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _dl(rows: list[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _copy(doc: dict[str, Any]) -> str:
    job = doc.get("job") or {}
    sender = doc.get("sender") or {}
    mode = doc.get("mode") or {}
    source = doc.get("source")
    if source:
        first = ("kind", "root", "server", "host", "snapshot")
        keys = [k for k in first if k in source] + sorted(k for k in source if k not in first)
        source_text = ", ".join(f"{_e(k)}: <code>{_e(source[k])}</code>" for k in keys)
    else:
        source_text = '<span class="note">not read (the catalog needs --deep --identity)</span>'
    manifests = doc.get("manifests") or []
    newest = manifests[-1]["sequence"] if manifests else None
    seen = doc.get("seen_before")
    against = mode.get("against")
    rows = [
        ("Job", f"<b>{_e(job.get('name'))}</b>"),
        ("Job id", f"<code>{_e(job.get('job_id') or 'unknown')}</code>"),
        ("Store", f"<code>{_e(job.get('store'))}</code>"),
        ("Sender key", f"<code>{_e(sender.get('key'))}</code>"),
        ("Fingerprint", f"<code>{_e(sender.get('fingerprint'))}</code>"),
        ("Source", source_text),
        ("Manifests", _e(f"{len(manifests)}, newest {newest}" if manifests else "none")),
        ("Seen before", _e(f"manifest {seen['sequence']} on {seen['recorded']}" if seen else "no")),
        (
            "Mode",
            _e(
                ("deep (every chunk opened)" if mode.get("deep") else "without the key")
                + (f"; against {against}" if against else "")
            ),
        ),
    ]
    return _dl(rows)


def _volume(doc: dict[str, Any]) -> str:
    counts = doc.get("counts") or {}
    tp = doc.get("throughput") or {}
    mb_s = tp.get("bytes_per_second", 0) / 1e6
    rows = [
        ("Started", _e(doc.get("started"))),
        ("Finished", _e(doc.get("finished"))),
        ("Duration", _e(f"{doc.get('duration_ms', 0) / 1000:.1f} s")),
        ("Objects named", _e(f"{_named(doc):,} (by the signed manifests)")),
        ("Objects in store", _e(f"{counts.get('objects_listed', 0):,}")),
        ("Objects missing", _e(_missing(doc))),
        (
            "Bytes named",
            _e(_bytes(max(counts.get("bytes_signed", 0), counts.get("bytes_referenced", 0)))),
        ),
        ("Bytes read", _e(_bytes(counts.get("bytes_read", 0)))),
        (
            "Read rate",
            _e(f"{tp.get('objects_per_second', 0):,} objects/s, {mb_s:,.1f} MB/s"),
        ),
    ]
    for name, label in (("files", "Files"), ("plain_bytes", "Plaintext bytes")):
        if name in counts:
            value = counts[name]
            rows.append((label, _e(_bytes(value) if name.endswith("bytes") else f"{value:,}")))
    return _dl(rows)


def _named(doc: dict[str, Any]) -> int:
    """Objects the manifests name: from their signed text (segments, and the packs the newest
    one's totals count), which holds when an object list is missing; the packs the lists name
    (``objects_referenced``) count only those lists that could be read."""
    counts = doc.get("counts") or {}
    return max(int(counts.get("objects_signed", 0)), int(counts.get("objects_referenced", 0)))


def _missing(doc: dict[str, Any]) -> str:
    """Objects missing: those reported one by one, or, when an object list is itself missing
    (its packs cannot be named), at least as many as the signed totals say are not there."""
    counts = doc.get("counts") or {}
    reported = int((doc.get("failure_counts") or {}).get("missing", 0))
    absent = _named(doc) - int(counts.get("objects_listed", 0))
    if absent > reported:
        return (
            f"at least {absent:,} ({reported:,} named one by one; the others counted from the "
            "signed totals, as a missing object list hides which packs it named)"
        )
    return f"{reported:,}"


def _bytes(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if value < 1000 or unit == "PB":
            return f"{n:,} bytes" if unit == "bytes" else f"{value:,.1f} {unit} ({n:,} bytes)"
        value /= 1000
    return f"{n:,} bytes"  # pragma: no cover - the loop always returns


def _badge(result: str, colours: dict[str, str] = RESULT_COLOURS) -> str:
    """A check's result (pass, fail, skipped), or with ``COLOURS`` a verdict, on its colour."""
    colour = colours.get(result, "#667085")
    return f'<span class="badge" style="background:{colour}">{_e(result)}</span>'


def _checks(checks: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{_badge(str(c.get('result')))}</td><td>{_e(c.get('title'))}"
        f'<div class="note mono">{_e(c.get("id"))}</div></td>'
        f'<td class="msg">{_e(c.get("detail"))}</td></tr>'
        for c in checks
    )
    return f"<table><tr><th>Result</th><th>Check</th><th>Detail</th></tr>{rows}</table>"


def _failures(doc: dict[str, Any]) -> str:
    failures = doc.get("failures") or []
    total = sum((doc.get("failure_counts") or {}).values())
    head = f"<h2>Failures ({total:,})</h2>"
    if not failures:
        return head + '<p class="note">None.</p>'
    rows = []
    for f in failures[:HTML_FAILURE_ROWS]:
        what = f.get("object") or f.get("path") or ""
        kind = f.get("object_kind") or ""
        message = str(f.get("message", ""))
        if f.get("object"):  # the name is in its own column: shorten it in the sentence
            message = message.replace(str(f["object"]), str(f["object"])[:12] + "…")
        rows.append(
            f"<tr><td><b>{_e(f.get('kind'))}</b></td><td>{_e(kind)}</td>"
            f'<td class="mono">{_e(what)}</td><td class="msg">{_e(message)}</td></tr>'
        )
    more = total - min(len(failures), HTML_FAILURE_ROWS)
    tail = (
        f'<p class="note">{more:,} more failures are counted; see the JSON report.</p>'
        if more > 0
        else ""
    )
    return (
        head
        + "<table><tr><th>Kind</th><th>Object</th><th>Name or path</th><th>What was found</th>"
        + "</tr>"
        + "".join(rows)
        + "</table>"
        + tail
    )


def _manifests(manifests: list[dict[str, Any]]) -> str:
    if not manifests:
        return ""
    rows = "".join(
        f"<tr><td>{_e(m.get('sequence'))}</td><td>{_e(m.get('created', ''))}</td>"
        f"<td>{_badge('pass' if m.get('trusted') else 'fail')}</td>"
        f'<td class="mono">{_e(m.get("sha256", ""))}</td></tr>'
        for m in manifests
    )
    return (
        "<h2>Manifests</h2><table><tr><th>Sequence</th><th>Created</th><th>Trusted</th>"
        f"<th>SHA-256 of the stored manifest</th></tr>{rows}</table>"
    )


def _footer(doc: dict[str, Any]) -> str:
    signature = doc.get("signature")
    if isinstance(signature, dict):
        signed = f"signed by <code>{_e(signature.get('key'))}</code> (Ed25519)"
    else:
        signed = "not signed"
    tool = doc.get("tool") or {}
    return (
        "<footer><dl>"
        f"<dt>Report SHA-256</dt><dd><code>{_e(doc.get('report_sha256'))}</code></dd>"
        f"<dt>Signature</dt><dd>{signed}</dd>"
        f"<dt>Produced by</dt><dd>{_e(tool.get('name'))} {_e(tool.get('version'))}, report "
        f"schema {_e(doc.get('schema_version'))}</dd>"
        "<dt>Check it</dt><dd><code>transferd report check REPORT.json [--signer tds1…]</code>"
        " (the hash and signature cover the JSON report, of which this page is a rendering)</dd>"
        "</dl></footer>"
    )
