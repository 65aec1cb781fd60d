"""Render report dicts (access, compliance) as one self-contained HTML page
or as CSV.

The HTML page fetches nothing: inline CSS, charts as inline SVG built here
(ledger/reports/svg.py), no scripts, no fonts, no links out, and a
Content-Security-Policy that forbids loading anything anyway. It reads well
on screen and on paper (``@media print``), and every caller-controlled text
(principal ids, reasons, problems) is HTML-escaped.

Every number (and most strings) shown that comes from the report carries
``data-field="<dotted path>"`` (``totals.records``, ``by_role.0.calls``), so
the page can be checked against the JSON. Formatting rule of those elements:

* integers are written with comma thousands separators (``5,000``), except
  identifiers (sequence numbers, leaf indices, checkpoint sizes, key
  versions), which carry ``data-format="id"`` and are written plainly;
* floats are rounded to 4 decimals, trailing zeros dropped (``0.01``);
* strings are written as they are (escaped);
* a missing value (``None``) gets no ``data-field`` and shows as a dash.

CSV: one document of blocks separated by a blank line, each with its own
header row whose first column is ``section``; no cell starts with
``= + - @`` (or tab / carriage return): such a cell gets a leading ``'``.
"""

from __future__ import annotations

import csv
import html
import io
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ledger.reports.shortfall_report import blocks as shortfall_blocks
from ledger.reports.svg import bar_chart, stacked_bars

MAX_SEQUENCES = 50  # sequence numbers shown per finding
TOP_DENIED = 10  # principals in the denials chart

SEVERITIES = ("high", "medium", "low")
SEVERITY_COLORS = {"high": "#b42318", "medium": "#b54708", "low": "#475467"}
KIND_LABELS = {
    "bulk_read": (
        "Bulk read",
        "Read far more distinct members in a day than is usual for the role.",
    ),
    "after_hours": (
        "After-hours access",
        "Read personal data outside working hours.",
    ),
    "no_business_event": (
        "Read without business event",
        "Read personal data of members with no journal activity nearby.",
    ),
    "unserved_member": (
        "Unserved member",
        "A channel read members it never wrote a ledger entry for.",
    ),
    "repeated_denials": (
        "Repeated denials",
        "Bursts of denied calls: probing for access it does not have.",
    ),
}

CSS = """
:root { --ink:#1f2933; --muted:#52606d; --line:#d9e2ec; --soft:#f5f7fa; --accent:#2f5d8a;
  --high:#b42318; --medium:#b54708; --low:#475467; --ok:#067647; --warn:#b54708; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.45;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 12px; padding-bottom: 4px;
  border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 0; }
.meta { color: var(--muted); margin: 0 0 16px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 0.92em; overflow-wrap: anywhere; }
nav.toc { margin: 12px 0 0; font-size: 14px; }
nav.toc a { color: var(--accent); margin-right: 14px; }
.banner { border: 2px solid; border-left-width: 10px; border-radius: 6px;
  padding: 14px 18px; margin: 16px 0; }
.banner .verdict { font-size: 26px; font-weight: 800; letter-spacing: 0.04em; }
.banner.pass, .banner.ok { border-color: var(--ok); background: #ecfdf3; }
.banner.fail { border-color: var(--high); background: #fef3f2; }
.banner.warn { border-color: var(--warn); background: #fffaeb; }
.banner p { margin: 6px 0 0; }
.checks { list-style: none; padding: 0; margin: 8px 0 0; display: flex; gap: 18px;
  flex-wrap: wrap; }
.checks li::before { content: "\\25A0  "; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr));
  gap: 12px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px;
  background: var(--soft); }
.card .label { color: var(--muted); font-size: 13px; }
.card .big { font-size: 24px; font-weight: 700; display: block; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 20px; font-size: 14px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left;
  vertical-align: top; }
thead th { background: var(--soft); border-bottom: 2px solid var(--line); }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.empty { color: var(--muted); font-style: italic; }
figure { margin: 12px 0 20px; }
svg.chart { max-width: 100%; height: auto; display: block; }
.finding { border: 1px solid var(--line); border-left: 8px solid var(--low);
  border-radius: 6px; padding: 12px 16px; margin: 14px 0; }
.finding[data-severity="high"] { border-left-color: var(--high); }
.finding[data-severity="medium"] { border-left-color: var(--medium);
  border-left-style: double; }
.finding[data-severity="low"] { border-left-width: 4px; }
.finding header { display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
.finding .summary { font-size: 16px; margin: 8px 0; }
.finding dl { display: grid; grid-template-columns: 130px 1fr; gap: 4px 12px; margin: 0;
  font-size: 14px; }
.finding dt { color: var(--muted); }
.finding dd { margin: 0; }
.sev { display: inline-block; font-size: 12px; font-weight: 800; letter-spacing: 0.06em;
  padding: 1px 8px; border-radius: 10px; border: 1.5px solid; }
.sev.high { color: var(--high); } .sev.medium { color: var(--medium); }
.sev.low { color: var(--low); }
ul.seqs { list-style: none; padding: 0; margin: 0; display: flex; flex-wrap: wrap;
  gap: 4px 8px; }
code.seq { background: var(--soft); border: 1px solid var(--line); border-radius: 3px;
  padding: 0 4px; }
.more { color: var(--muted); }
.proof { font-size: 13px; }
.no-findings { border: 2px solid var(--ok); border-radius: 6px; padding: 14px 18px;
  font-size: 17px; font-weight: 600; background: #ecfdf3; }
details summary { cursor: pointer; color: var(--accent); }
footer { margin-top: 40px; color: var(--muted); font-size: 13px;
  border-top: 1px solid var(--line); padding-top: 8px; }
@media print {
  body { font-size: 11pt; background: #fff !important; color: #000 !important; }
  main { max-width: none; padding: 0; }
  nav.toc, details summary { display: none; }
  .banner, .card, .no-findings, thead th, code.seq { background: #fff !important; }
  .finding, table, figure, .banner, .cards, tr { page-break-inside: avoid;
    break-inside: avoid; }
  h2 { page-break-after: avoid; break-after: avoid; }
}
"""

NUM = ' class="n"'  # a numeric, right-aligned table cell
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'"


# ---------------------------------------------------------------- formatting


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def format_value(value: object) -> str:
    """The text of a ``data-field`` element (see the module docstring)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        text = f"{value:,.4f}".rstrip("0").rstrip(".")
        return "0" if text in ("", "-0") else text
    return str(value)


def _v(path: str, value: object, *, ident: bool = False, tag: str = "span", cls: str = "") -> str:
    """A value from the report, tagged with its path."""
    if value is None:
        return '<span class="none">\u2014</span>'
    attrs = f' data-field="{_e(path)}"'
    if ident and isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
        attrs += ' data-format="id"'
    else:
        text = format_value(value)
    if cls:
        attrs = f' class="{_e(cls)}"' + attrs
    return f"<{tag}{attrs}>{_e(text)}</{tag}>"


def _code(path: str, value: object) -> str:
    return _v(path, value, tag="code")


def _pct(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f' <span class="more">({value * 100:.2f}\u00a0%)</span>'
    return ""


def _table(
    caption: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    numeric: Sequence[int] = (),
    empty: str = "None in this period.",
    ident: str = "",
) -> str:
    """A table whose first cell per row is its row header; cells are
    pre-rendered HTML."""
    if not rows:
        return f'<p class="empty">{_e(caption)}: {_e(empty)}</p>'
    idattr = f' id="{_e(ident)}"' if ident else ""
    head = "".join(
        f'<th scope="col"{NUM if i in numeric else ""}>{_e(c)}</th>' for i, c in enumerate(columns)
    )
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = NUM if i in numeric else ""
            if i == 0:
                cells.append(f'<th scope="row"{cls}>{cell}</th>')
            else:
                cells.append(f"<td{cls}>{cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f"<table{idattr}><caption>{_e(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _fields(path: str, fields: Mapping[str, Any]) -> str:
    if not fields:
        return '<span class="empty">none</span>'
    return ", ".join(
        f"<code>{_e(name)}</code>\u00a0{_v(f'{path}.{name}', count)}"
        for name, count in fields.items()
    )


def _card(label: str, path: str, value: object) -> str:
    return (
        f'<div class="card"><span class="label">{_e(label)}</span>'
        f"{_v(path, value, cls='big')}</div>"
    )


def _page(title: str, subtitle: str, body: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<header><h1>{_e(title)}</h1>{subtitle}</header>\n{body}\n"
        "<footer>Generated by loyalty-ledger. This file is self-contained: it loads "
        "nothing from the network and runs no scripts.</footer>\n"
        "</main>\n</body>\n</html>\n"
    )


def _toc(entries: Sequence[tuple[str, str]]) -> str:
    links = "".join(f'<a href="#{_e(anchor)}">{_e(text)}</a>' for anchor, text in entries)
    return f'<nav class="toc" aria-label="Contents">{links}</nav>'


# ---------------------------------------------------------------- access report


def _access_banner(report: Mapping[str, Any]) -> str:
    log = report["log"]
    checkpoint = log.get("checkpoint")
    first, last = log.get("first_seq"), log.get("last_seq")
    span = (
        f"access-log sequences {_v('log.first_seq', first, ident=True)}\u2013"
        f"{_v('log.last_seq', last, ident=True)} of log {_code('log.origin', log['origin'])}"
    )
    if checkpoint is None:
        return (
            '<section class="banner warn" id="verification" data-verified="false">'
            '<div class="verdict">NOT YET VERIFIABLE</div>'
            f"<p>This report covers {span}. No signed checkpoint of the access log "
            "covers these records yet, so they cannot be checked against the signed log "
            "until the next checkpoint.</p></section>"
        )
    size = checkpoint.get("size")
    root = _code("log.checkpoint.root", checkpoint.get("root"))
    size_html = _v("log.checkpoint.size", size, ident=True)
    if isinstance(size, int) and (last is None or size >= last):
        return (
            '<section class="banner ok" id="verification" data-verified="true">'
            '<div class="verdict">VERIFIABLE</div>'
            f"<p>This report covers {span}. Every one of them is covered by the signed "
            f"checkpoint of size {size_html}, root {root}: each finding below names the "
            "leaf whose inclusion proof ties its evidence to that checkpoint.</p></section>"
        )
    return (
        '<section class="banner warn" id="verification" data-verified="partial">'
        '<div class="verdict">PARTLY VERIFIABLE</div>'
        f"<p>This report covers {span}. The latest signed checkpoint (size {size_html}, "
        f"root {root}) covers only the records up to its size; later records are not yet "
        "checkpointed.</p></section>"
    )


def _finding(i: int, finding: Mapping[str, Any]) -> str:
    p = f"findings.{i}"
    kind = str(finding.get("kind", ""))
    severity = str(finding.get("severity", ""))
    label, explanation = KIND_LABELS.get(kind, (kind, ""))
    evidence = finding.get("evidence") or {}
    proof = finding.get("proof") or {}
    sequences = list(evidence.get("sequences") or [])
    shown = sequences[:MAX_SEQUENCES]
    count = evidence.get("count")
    total = max(count if isinstance(count, int) else 0, len(sequences))
    seq_items = "".join(
        f"<li>{_v(f'{p}.evidence.sequences.{j}', seq, ident=True, tag='code', cls='seq')}</li>"
        for j, seq in enumerate(shown)
    )
    more = total - len(shown)
    if more > 0:
        seq_items += f'<li class="more">\u2026 and {more:,} more</li>'
    extra = "".join(
        f"; {_e(key.replace('_', ' '))} {_v(f'{p}.evidence.{key}', value)}"
        for key, value in evidence.items()
        if key not in ("sequences", "count") and isinstance(value, int | float | str)
    )
    fid = str(finding.get("id", f"F{i + 1}"))
    return (
        f'<article class="finding" id="finding-{_e(fid)}" data-kind="{_e(kind)}"'
        f' data-severity="{_e(severity)}" aria-labelledby="finding-{_e(fid)}-h">'
        f'<header><span class="sev {_e(severity)}">{_e(severity.upper())}</span>'
        f'<h3 id="finding-{_e(fid)}-h">{_v(f"{p}.id", fid)} \u00b7 {_e(label)}</h3></header>'
        f'<p class="summary">{_v(f"{p}.summary", finding.get("summary", ""))}</p>'
        "<dl>"
        f"<dt>Principal</dt><dd>{_code(f'{p}.principal', finding.get('principal', ''))}</dd>"
        f"<dt>Rule</dt><dd>{_code(f'{p}.kind', kind)} \u2014 {_e(explanation)}</dd>"
        f"<dt>Evidence</dt><dd>{_v(f'{p}.evidence.count', count)} access-log records"
        f"{extra}</dd>"
        f'<dt>Sequences</dt><dd><ul class="seqs">{seq_items}</ul></dd>'
        '<dt>Proof</dt><dd><span class="proof">'
        f"log {_code(f'{p}.proof.log', proof.get('log'))} \u00b7 checkpoint size "
        f"{_v(f'{p}.proof.checkpoint_size', proof.get('checkpoint_size'), ident=True)}"
        f" \u00b7 leaf index {_v(f'{p}.proof.leaf_index', proof.get('leaf_index'), ident=True)}"
        "</span></dd></dl></article>"
    )


def _findings_section(findings: Sequence[Mapping[str, Any]]) -> str:
    if not findings:
        return (
            '<section id="findings"><h2>Findings</h2>'
            '<p class="no-findings" id="no-findings">No findings: none of the anomaly rules '
            "(bulk read, after-hours access, read without business event, unserved member, "
            "repeated denials) fired in this period.</p></section>"
        )
    per_severity = Counter(str(f.get("severity")) for f in findings)
    counts = ", ".join(f"{per_severity[s]} {s}" for s in SEVERITIES if per_severity[s])
    kinds: dict[str, dict[str, int]] = {}
    for f in findings:
        row = kinds.setdefault(str(f.get("kind")), {})
        sev = str(f.get("severity"))
        row[sev] = row.get(sev, 0) + 1
    series = [s for s in SEVERITIES if per_severity[s]] + sorted(
        s for s in per_severity if s not in SEVERITIES
    )
    chart = stacked_bars(
        "Findings per kind and severity",
        sorted(kinds.items()),
        series,
        colors=SEVERITY_COLORS,
        x_label="kind of finding",
        y_label="findings",
        height=260,
    )
    articles = "\n".join(_finding(i, f) for i, f in enumerate(findings))
    return (
        f'<section id="findings"><h2>Findings</h2><p>{len(findings)} finding'
        f"{'s' if len(findings) != 1 else ''} ({_e(counts)}). Each names the access-log "
        f"records that support it and the proof that ties them to the signed log.</p>"
        f"<figure>{chart}</figure>\n{articles}</section>"
    )


def _access_html(report: Mapping[str, Any]) -> str:
    totals = report["totals"]
    cards = "".join(
        _card(label, f"totals.{key}", totals.get(key))
        for key, label in (
            ("records", "Access records"),
            ("allowed", "Allowed"),
            ("denied", "Denied"),
            ("principals", "Principals"),
            ("members_read", "Members read"),
        )
    )
    over_time = report["over_time"]
    activity_chart = stacked_bars(
        "Accesses over time",
        [(str(b["bucket"]), {"allowed": b["allowed"], "denied": b["denied"]}) for b in over_time],
        ["allowed", "denied"],
        colors={"allowed": "#2f5d8a", "denied": "#b42318"},
        x_label="time (UTC)",
        y_label="calls",
        width=960,
    )
    over_time_table = _table(
        "Accesses per time bucket",
        ["Bucket", "Allowed", "Denied"],
        [
            [
                _v(f"over_time.{i}.bucket", b["bucket"]),
                _v(f"over_time.{i}.allowed", b["allowed"]),
                _v(f"over_time.{i}.denied", b["denied"]),
            ]
            for i, b in enumerate(over_time)
        ],
        numeric=(1, 2),
    )
    by_role = report["by_role"]
    role_chart = bar_chart(
        "Calls per role",
        [(str(r["role"]), int(r["calls"])) for r in by_role],
        fields=[f"by_role.{i}.calls" for i in range(len(by_role))],
        value_label="calls",
        category_label="role",
    )
    role_table = _table(
        "Calls and denials per role",
        ["Role", "Calls", "Denied"],
        [
            [
                _code(f"by_role.{i}.role", r["role"]),
                _v(f"by_role.{i}.calls", r["calls"]),
                _v(f"by_role.{i}.denied", r["denied"]),
            ]
            for i, r in enumerate(by_role)
        ],
        numeric=(1, 2),
    )
    denials = report["denials"]
    denied_by: Counter[str] = Counter()
    for d in denials:
        denied_by[str(d["principal"])] += int(d["count"])
    top = sorted(denied_by.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_DENIED]
    denial_chart = bar_chart(
        f"Denials per principal (top {TOP_DENIED})",
        top,
        value_label="denied calls",
        category_label="principal",
        color="#b42318",
    )
    denial_table = _table(
        "Denied calls",
        ["Principal", "Role", "Method", "Reason", "Count", "First seq", "Last seq"],
        [
            [
                _code(f"denials.{i}.principal", d["principal"]),
                _code(f"denials.{i}.role", d["role"]),
                _code(f"denials.{i}.method", d["method"]),
                _v(f"denials.{i}.reason", d["reason"]),
                _v(f"denials.{i}.count", d["count"]),
                _v(f"denials.{i}.first_seq", d["first_seq"], ident=True),
                _v(f"denials.{i}.last_seq", d["last_seq"], ident=True),
            ]
            for i, d in enumerate(denials)
        ],
        numeric=(4, 5, 6),
        empty="no call was denied in this period.",
    )
    grants = report["break_glass"]
    grant_table = _table(
        "Break-glass sessions",
        ["Grant", "Grantee", "Granted by", "Reason", "Start seq", "End seq", "Reads"],
        [
            [
                _code(f"break_glass.{i}.grant_id", g["grant_id"]),
                _code(f"break_glass.{i}.grantee", g["grantee"]),
                _code(f"break_glass.{i}.granted_by", g["granted_by"]),
                _v(f"break_glass.{i}.reason", g["reason"]),
                _v(f"break_glass.{i}.start_seq", g["start_seq"], ident=True),
                (
                    _v(f"break_glass.{i}.end_seq", g["end_seq"], ident=True)
                    if g.get("end_seq") is not None
                    else '<strong class="open">still open</strong>'
                ),
                _v(f"break_glass.{i}.reads", g["reads"]),
            ]
            for i, g in enumerate(grants)
        ],
        numeric=(4, 5, 6),
        empty="no break-glass session in this period.",
    )
    principals = report["by_principal"]
    principal_table = _table(
        "Access per principal",
        ["Principal", "Role", "Calls", "Denied", "Members", "Personal fields read"],
        [
            [
                _code(f"by_principal.{i}.principal", p["principal"]),
                _code(f"by_principal.{i}.role", p["role"]),
                _v(f"by_principal.{i}.calls", p["calls"]),
                _v(f"by_principal.{i}.denied", p["denied"]),
                _v(f"by_principal.{i}.members", p["members"]),
                _fields(f"by_principal.{i}.fields", p.get("fields") or {}),
            ]
            for i, p in enumerate(principals)
        ],
        numeric=(2, 3, 4),
    )
    purposes = report["by_purpose"]
    purpose_table = _table(
        "Access per declared purpose",
        ["Purpose", "Calls", "Personal fields read"],
        [
            [
                _code(f"by_purpose.{i}.purpose", p["purpose"]),
                _v(f"by_purpose.{i}.calls", p["calls"]),
                _fields(f"by_purpose.{i}.fields", p.get("fields") or {}),
            ]
            for i, p in enumerate(purposes)
        ],
        numeric=(1,),
    )
    subtitle = (
        f'<p class="meta">Period {_v("from", report["from"], tag="time")} \u2013 '
        f"{_v('to', report['to'], tag='time')} \u00b7 generated "
        f"{_v('generated_at', report['generated_at'], tag='time')} \u00b7 report version "
        f"{_v('version', report['version'], ident=True)}</p>"
        + _toc(
            [
                ("verification", "Verification"),
                ("summary", "Summary"),
                ("findings", "Findings"),
                ("activity", "Activity"),
                ("denials", "Denials"),
                ("break-glass", "Break-glass"),
                ("principals", "Principals"),
                ("purposes", "Purposes"),
            ]
        )
    )
    body = "\n".join(
        [
            _access_banner(report),
            f'<section id="summary"><h2>Summary</h2><div class="cards">{cards}</div></section>',
            _findings_section(report["findings"]),
            f'<section id="activity"><h2>Activity</h2><figure>{activity_chart}</figure>'
            f"<details><summary>Accesses per time bucket (table)</summary>{over_time_table}"
            f"</details><figure>{role_chart}</figure>{role_table}</section>",
            f'<section id="denials"><h2>Denials</h2><figure>{denial_chart}</figure>'
            f"{denial_table}</section>",
            f'<section id="break-glass"><h2>Break-glass sessions</h2>{grant_table}</section>',
            f'<section id="principals"><h2>Principals</h2>{principal_table}</section>',
            f'<section id="purposes"><h2>Purposes</h2>{purpose_table}</section>',
        ]
    )
    return _page("Access report", subtitle, body)


# ---------------------------------------------------------------- compliance report


def _check(name: str, ok: bool) -> str:
    verdict = "PASS" if ok else "FAIL"
    return f'<li data-check="{_e(name)}" data-ok="{str(ok).lower()}">{_e(name)}: {verdict}</li>'


def _count_key(log: Mapping[str, Any]) -> str:
    """The key of a log's record count (``records`` or ``entries``)."""
    return next((k for k in ("records", "entries") if k in log), "records")


def _log_row(name: str, label: str, log: Mapping[str, Any]) -> list[str]:
    count = _count_key(log)
    ok = bool(log.get("verified"))
    verified = "checkpoints_verified"
    problems = (
        _v(f"{name}.problem_count", log["problem_count"])
        if isinstance(log.get("problem_count"), int)
        else f"{len(log.get('problems') or []):,}"
    )
    return [
        _e(label),
        _v(f"{name}.{count}", log.get(count)),
        f'<strong data-ok="{str(ok).lower()}">{"PASS" if ok else "FAIL"}</strong>',
        problems,
        _v(f"{name}.{verified}", log.get(verified)) if verified in log else "",
        _code(f"{name}.root", log.get("root")) if log.get("root") else "",
    ]


def _problems(report: Mapping[str, Any]) -> tuple[int, str]:
    """(number of problems, their HTML list)."""
    items = []
    total = 0
    for name in ("journal", "access_log"):
        log = report[name]
        listed = list(log.get("problems") or [])
        items += [
            f"<li><code>{_e(name)}</code>: {_v(f'{name}.problems.{i}', str(text))}</li>"
            for i, text in enumerate(listed)
        ]
        count = log.get("problem_count")
        more = count - len(listed) if isinstance(count, int) else 0
        if more > 0:
            items.append(
                f'<li class="more"><code>{_e(name)}</code>: \u2026 and {more:,} more '
                f"(of {_v(f'{name}.problem_count', count)})</li>"
            )
        total += max(more, 0) + len(listed)
    if not total:
        return 0, '<p class="empty" id="no-problems">No problems found.</p>'
    return total, f'<ol class="problems">{"".join(items)}</ol>'


def _liability_chart(key: str, title: str, category: str, values: Mapping[str, Any]) -> str:
    return bar_chart(
        title,
        [(str(k), int(v)) for k, v in values.items()],
        fields=[f"liability.{key}.{k}" for k in values],
        value_label="points",
        category_label=category,
        color="#475467" if key != "by_state" else "#2f5d8a",
        ident=f"liability-{key}",
    )


def _compliance_html(report: Mapping[str, Any]) -> str:
    journal = report["journal"]
    access = report["access_log"]
    journal_ok = bool(journal.get("verified"))
    zero_sum = bool(journal.get("zero_sum"))
    access_ok = bool(access.get("verified"))
    problem_count, problem_html = _problems(report)
    passed = journal_ok and zero_sum and access_ok and not problem_count
    verdict = "PASS" if passed else "FAIL"
    if passed:
        verdict_text = (
            "Both logs verified (the journal and the access log) and every journal entry balances."
        )
    elif problem_count:
        verdict_text = f"Verification failed: {problem_count:,} problem(s), listed below."
    else:
        verdict_text = "Verification failed: see the checks below."
    banner = (
        f'<section class="banner {"pass" if passed else "fail"}" id="verification"'
        f' data-verdict="{verdict}"><div class="verdict">{verdict}</div>'
        f"<p>{_e(verdict_text)}</p>"
        '<ul class="checks">'
        + _check("Journal hash chain", journal_ok)
        + _check("Zero-sum (every entry balances)", zero_sum)
        + _check("Access log", access_ok)
        + "</ul></section>"
    )

    head = journal.get("head")
    head_html = (
        f"head sequence {_v('journal.head.sequence', head.get('sequence'), ident=True)}, "
        f"hash {_code('journal.head.hash', head.get('hash'))}"
        if head
        else "the journal is empty"
    )
    log_table = _table(
        "Verified logs",
        ["Log", "Records", "Verified", "Problems", "Checkpoints verified", "Root"],
        [_log_row("journal", "Journal", journal), _log_row("access_log", "Access log", access)],
        numeric=(1, 3, 4),
    )
    witness = report.get("witness") or {}
    witness_dir = witness.get("dir")
    witness_html = (
        f"<p>Witness copies of the checkpoints: {_v('witness.files', witness.get('files'))} "
        f"files in {_code('witness.dir', witness_dir)}.</p>"
        if witness_dir
        else '<p class="empty">No witness directory is configured: checkpoints are not '
        f"copied outside the database ({_v('witness.files', witness.get('files'))} files).</p>"
    )
    checkpoint_table = _table(
        "Checkpoint history",
        ["Log", "Size", "Root", "Created"],
        [
            [
                _code(f"checkpoints.{i}.log", c.get("log")),
                _v(f"checkpoints.{i}.size", c.get("size"), ident=True),
                _code(f"checkpoints.{i}.root", c.get("root")),
                _v(f"checkpoints.{i}.created", c.get("created"), tag="time"),
            ]
            for i, c in enumerate(report["checkpoints"])
        ],
        numeric=(1,),
        empty="no checkpoint has been signed yet.",
        ident="checkpoint-history",
    )

    liability = report["liability"]
    liability_cards = (
        '<div class="cards">'
        + "".join(
            _card(label, f"liability.{key}", liability.get(key))
            for key, label in (
                ("outstanding", "Outstanding points"),
                ("issued", "Issued"),
                ("redeemed", "Redeemed"),
                ("expired", "Expired"),
                ("forfeited", "Forfeited"),
            )
            if key in liability
        )
        + "</div>"
    )
    rates = " \u00b7 ".join(
        f"{label} {_v(f'liability.{key}', liability.get(key))}{_pct(liability.get(key))}"
        for key, label in (
            ("breakage_rate", "Breakage rate"),
            ("redemption_rate", "Redemption rate"),
        )
        if key in liability
    )
    charts = "".join(
        f"<figure>{_liability_chart(key, title, category, liability.get(key) or {})}</figure>"
        for key, title, category in (
            ("by_state", "Outstanding points by state", "state"),
            ("by_expiry_month", "Outstanding points by expiry month", "expires"),
            ("by_partner", "Outstanding points by partner", "partner"),
            ("by_store_shortfall", "Outage shortfalls by store, to settle", "store"),
        )
        if liability.get(key) or key not in ("by_partner", "by_store_shortfall")
    )
    gross = liability.get("by_partner_gross") or {}
    if gross:
        charts += _table(
            "Exchanged with partners, gross",
            ["Partner", "Points sent out", "Points in"],
            [
                [
                    f"<code>{_e(k)}</code>",
                    _v(f"liability.by_partner_gross.{k}.out", v.get("out")),
                    _v(f"liability.by_partner_gross.{k}.in", v.get("in")),
                ]
                for k, v in gross.items()
            ],
            numeric=(1, 2),
        )

    erasures = report["erasures"]
    by_reason = erasures.get("by_reason") or {}
    erasure_html = (
        '<div class="cards">'
        + _card("Erasures", "erasures.count", erasures.get("count"))
        + _card(
            "Points forfeited",
            "erasures.forfeited_points",
            erasures.get("forfeited_points"),
        )
        + _card(
            "Inside the erasure window",
            "erasures.window.inside",
            (erasures.get("window") or {}).get("inside"),
        )
        + "</div>"
        + _window_note(erasures.get("window") or {})
        + _table(
            "Erasures by reason",
            ["Reason", "Erasures"],
            [
                [f"<code>{_e(k)}</code>", _v(f"erasures.by_reason.{k}", v)]
                for k, v in by_reason.items()
            ],
            numeric=(1,),
            empty="no member was erased.",
        )
    )
    keys = report["keys"]
    key_columns = [("version", "Version"), ("created", "Created"), ("status", "Status")]
    if any("data_keys" in k for k in keys):
        key_columns.append(("data_keys", "Data keys wrapped"))
    key_table = _table(
        "Key-encryption keys",
        [label for _, label in key_columns],
        [
            [
                _v(f"keys.{i}.{col}", k.get(col), ident=col == "version", tag="span")
                for col, _ in key_columns
            ]
            for i, k in enumerate(keys)
        ],
        numeric=tuple(n for n, (col, _) in enumerate(key_columns) if col == "data_keys"),
        empty="no key-encryption key is recorded.",
    )
    subtitle = (
        f'<p class="meta">Generated {_v("generated_at", report["generated_at"], tag="time")}'
        f" \u00b7 report version {_v('version', report['version'], ident=True)}</p>"
        + _toc(
            [
                ("verification", "Verification"),
                ("problems", "Problems"),
                ("logs", "Logs and checkpoints"),
                ("liability", "Liability"),
                ("erasures", "Erasures"),
                ("keys", "Keys"),
            ]
        )
    )
    body = "\n".join(
        [
            banner,
            f'<section id="problems"><h2>Problems</h2>{problem_html}</section>',
            f'<section id="logs"><h2>Logs and checkpoints</h2>{log_table}<p>Journal: '
            f"{head_html}.</p>{witness_html}{checkpoint_table}</section>",
            f'<section id="liability"><h2>Points liability</h2>{liability_cards}'
            f"<p>{rates}</p>{charts}</section>",
            '<section id="erasures"><h2>Erasures</h2><p>Counts only: this report holds no '
            f"personal data.</p>{erasure_html}</section>",
            f'<section id="keys"><h2>Key rotation</h2>{key_table}</section>',
        ]
    )
    return _page("Compliance report", subtitle, body)


# ---------------------------------------------------------------- entry points

_HTML: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "access": _access_html,
    "compliance": _compliance_html,
}


def render_html(report: dict[str, Any]) -> str:
    """One self-contained HTML page of an access or compliance report."""
    kind = report.get("report")
    renderer = _HTML.get(str(kind))
    if renderer is None:
        raise ValueError(f"unknown report kind: {kind!r}")
    return renderer(report)


# ---------------------------------------------------------------- CSV

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, Mapping):
        text = ";".join(f"{k}={v}" for k, v in value.items())
    elif isinstance(value, list | tuple):
        text = " ".join(str(v) for v in value)
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


_Block = tuple[str, list[str], list[list[object]]]


def _access_blocks(report: Mapping[str, Any]) -> list[_Block]:
    log = report["log"]
    checkpoint = log.get("checkpoint") or {}
    summary: list[list[object]] = [
        ["report", report["report"]],
        ["version", report["version"]],
        ["generated_at", report["generated_at"]],
        ["from", report["from"]],
        ["to", report["to"]],
        ["log.origin", log.get("origin")],
        ["log.first_seq", log.get("first_seq")],
        ["log.last_seq", log.get("last_seq")],
        ["log.checkpoint.size", checkpoint.get("size")],
        ["log.checkpoint.root", checkpoint.get("root")],
    ] + [[f"totals.{k}", v] for k, v in report["totals"].items()]
    return [
        ("summary", ["key", "value"], summary),
        (
            "over_time",
            ["bucket", "allowed", "denied"],
            [[b["bucket"], b["allowed"], b["denied"]] for b in report["over_time"]],
        ),
        (
            "by_principal",
            ["principal", "role", "calls", "denied", "members", "fields"],
            [
                [p["principal"], p["role"], p["calls"], p["denied"], p["members"], p["fields"]]
                for p in report["by_principal"]
            ],
        ),
        (
            "by_role",
            ["role", "calls", "denied"],
            [[r["role"], r["calls"], r["denied"]] for r in report["by_role"]],
        ),
        (
            "by_purpose",
            ["purpose", "calls", "fields"],
            [[p["purpose"], p["calls"], p["fields"]] for p in report["by_purpose"]],
        ),
        (
            "denials",
            ["principal", "role", "method", "reason", "count", "first_seq", "last_seq"],
            [
                [
                    d["principal"],
                    d["role"],
                    d["method"],
                    d["reason"],
                    d["count"],
                    d["first_seq"],
                    d["last_seq"],
                ]
                for d in report["denials"]
            ],
        ),
        (
            "break_glass",
            ["grant_id", "grantee", "granted_by", "reason", "start_seq", "end_seq", "reads"],
            [
                [
                    g["grant_id"],
                    g["grantee"],
                    g["granted_by"],
                    g["reason"],
                    g["start_seq"],
                    g["end_seq"],
                    g["reads"],
                ]
                for g in report["break_glass"]
            ],
        ),
        (
            "findings",
            [
                "id",
                "kind",
                "severity",
                "principal",
                "summary",
                "count",
                "baseline",
                "sequences",
                "proof_log",
                "checkpoint_size",
                "leaf_index",
            ],
            [
                [
                    f["id"],
                    f["kind"],
                    f["severity"],
                    f["principal"],
                    f["summary"],
                    (f.get("evidence") or {}).get("count"),
                    (f.get("evidence") or {}).get("baseline"),
                    (f.get("evidence") or {}).get("sequences", []),
                    (f.get("proof") or {}).get("log"),
                    (f.get("proof") or {}).get("checkpoint_size"),
                    (f.get("proof") or {}).get("leaf_index"),
                ]
                for f in report["findings"]
            ],
        ),
    ]


def _window_note(window: Mapping[str, Any]) -> str:
    if not window.get("inside"):
        return ""
    return (
        f"<p>{_e(window['inside'])} erasure(s), the oldest of {_e(window.get('oldest_inside'))},"
        " are still inside the erasure window: their deleted data keys were wrapped under KEK"
        f" v{_e(window.get('lowest_active_kek'))} or later versions still in the keyring, so a"
        " copy in a backup or a WAL archive could still be opened. Rotate and retire the older"
        " KEK versions (<code>keys rotate</code>, then <code>keys retire</code>) to close it.</p>"
    )


def _scalars(prefix: str, node: Mapping[str, Any]) -> list[list[object]]:
    return [[f"{prefix}.{k}", v] for k, v in node.items() if not isinstance(v, Mapping | list)]


_LIABILITY_KEYS = {
    "by_state": "state",
    "by_expiry_month": "month",
    "by_partner": "partner",
    "by_store_shortfall": "store",
}


def _compliance_blocks(report: Mapping[str, Any]) -> list[_Block]:
    journal, access = report["journal"], report["access_log"]
    liability, erasures = report["liability"], report["erasures"]
    summary: list[list[object]] = [
        ["report", report["report"]],
        ["version", report["version"]],
        ["generated_at", report["generated_at"]],
    ]
    summary += _scalars("journal", journal)
    summary += _scalars("journal.head", journal.get("head") or {})
    summary += _scalars("access_log", access)
    summary += _scalars("witness", report.get("witness") or {})
    summary += _scalars("liability", liability)
    summary += _scalars("erasures", erasures)
    summary += _scalars("erasures.window", erasures.get("window") or {})
    problems: list[list[object]] = [["journal", text] for text in journal.get("problems") or []] + [
        ["access_log", text] for text in access.get("problems") or []
    ]
    blocks: list[_Block] = [
        ("summary", ["key", "value"], summary),
        ("problems", ["log", "problem"], problems),
        (
            "checkpoints",
            ["log", "size", "root", "created"],
            [
                [c.get("log"), c.get("size"), c.get("root"), c.get("created")]
                for c in report["checkpoints"]
            ],
        ),
    ]
    for key, value in liability.items():
        if key == "by_partner_gross":
            blocks.append(
                (
                    "liability_by_partner_gross",
                    ["partner", "out", "in"],
                    [[k, v.get("out"), v.get("in")] for k, v in value.items()],
                )
            )
        elif isinstance(value, Mapping):
            blocks.append(
                (
                    f"liability_{key}",
                    [_LIABILITY_KEYS.get(key, "key"), "points"],
                    [[k, v] for k, v in value.items()],
                )
            )
    blocks.append(
        (
            "erasures_by_reason",
            ["reason", "count"],
            [[k, v] for k, v in (erasures.get("by_reason") or {}).items()],
        )
    )
    blocks.append(
        (
            "keys",
            ["version", "created", "status", "data_keys"],
            [
                [k.get("version"), k.get("created"), k.get("status"), k.get("data_keys")]
                for k in report["keys"]
            ],
        )
    )
    return blocks


_CSV: dict[str, Callable[[Mapping[str, Any]], list[_Block]]] = {
    "access": _access_blocks,
    "compliance": _compliance_blocks,
    "shortfalls": shortfall_blocks,
}


def render_csv(report: dict[str, Any]) -> str:
    """The report as one CSV document: a block per table, each with a header
    row whose first column is ``section``, blocks separated by a blank line."""
    kind = report.get("report")
    blocks = _CSV.get(str(kind))
    if blocks is None:
        raise ValueError(f"unknown report kind: {kind!r}")
    out = io.StringIO()
    writer = csv.writer(out)
    for n, (section, header, rows) in enumerate(blocks(report)):
        if n:
            writer.writerow([])
        writer.writerow([csv_cell(c) for c in ["section", *header]])
        for row in rows:
            writer.writerow([csv_cell(c) for c in [section, *row]])
    return out.getvalue()
