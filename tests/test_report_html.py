"""The HTML and CSV renderings of the access and compliance reports.

The HTML pages are loaded in a real headless Chromium: the DOM it built is
read back and checked against the report dict (every tagged number equals
the value at its path, every finding is there with its evidence, nothing
is fetched, nothing runs, injected text stays text), and screenshots are
kept in test-artifacts/ for people to look at."""

from __future__ import annotations

import copy
import csv
import io
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.reports.render import render_csv, render_html
from ledger.reports.svg import bar_chart, nice_scale, stacked_bars
from tests.support.browser import (
    INSTALL_HINT,
    DomCollector,
    dump_dom,
    find_chromium,
    parse,
    screenshot,
)

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
ORIGIN = "loyalty-ledger.local/access"
EVIL = "<script>alert(1)</script>"
FORMULA_REASON = '=HYPERLINK("x","click")'
GET_MEMBER = "/loyalty.members.v1.MemberService/GetMember"
GET_BALANCE = "/loyalty.ledger.v1.LedgerService/GetBalance"
KINDS = ("bulk_read", "after_hours", "no_business_event", "unserved_member", "repeated_denials")
URL_ATTRS = ("src", "href", "xlink:href", "action", "formaction", "poster", "data", "srcset")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- report dicts


def _over_time() -> list[dict[str, Any]]:
    buckets = []
    for day in (22, 23):
        for hour in range(24):
            busy = 7 <= hour < 20
            allowed = (60 + (hour * 37 + day) % 90) if busy else (hour * 3 + day) % 7
            denied = 9 if (day, hour) == (23, 2) else (hour + day) % 4 if busy else 0
            buckets.append(
                {"bucket": f"2026-11-{day}T{hour:02d}Z", "allowed": allowed, "denied": denied}
            )
    return buckets


def _finding(
    n: int, kind: str, severity: str, principal: str, summary: str, seqs: list[int], count: int
) -> dict[str, Any]:
    evidence: dict[str, Any] = {"sequences": seqs, "count": count}
    if kind == "bulk_read":
        evidence["baseline"] = 12.0
    return {
        "id": f"F{n}",
        "kind": kind,
        "severity": severity,
        "principal": principal,
        "summary": summary,
        "evidence": evidence,
        "proof": {"log": ORIGIN, "checkpoint_size": 5200, "leaf_index": seqs[0] - 1},
    }


def access_report() -> dict[str, Any]:
    over_time = _over_time()
    allowed = sum(b["allowed"] for b in over_time)
    denied = sum(b["denied"] for b in over_time)
    return {
        "report": "access",
        "version": 1,
        "generated_at": "2026-11-24T10:00:00Z",
        "from": "2026-11-22T00:00:00Z",
        "to": "2026-11-24T00:00:00Z",
        "log": {
            "origin": ORIGIN,
            "first_seq": 1,
            "last_seq": allowed + denied,
            "checkpoint": {"size": 5200, "root": "9f86d081884c7d659a2feaa0c55ad015" * 2},
        },
        "totals": {
            "records": allowed + denied,
            "allowed": allowed,
            "denied": denied,
            "principals": 7,
            "members_read": 1340,
        },
        "over_time": over_time,
        "by_role": [
            {"role": "member_service", "calls": 2310, "denied": 14},
            {"role": "channel", "calls": 1602, "denied": 101},
            {"role": "analyst", "calls": 61, "denied": 3},
            {"role": "auditor", "calls": 12, "denied": 0},
        ],
        "by_principal": [
            {
                "principal": "staff-7",
                "role": "member_service",
                "calls": 1210,
                "denied": 2,
                "members": 412,
                "fields": {"email": 380, "phone": 401},
            },
            {
                "principal": "staff-1",
                "role": "member_service",
                "calls": 1100,
                "denied": 12,
                "members": 96,
                "fields": {"email": 3, "phone": 12},
            },
            {
                "principal": "pos-berlin-03",
                "role": "channel",
                "calls": 1480,
                "denied": 1,
                "members": 700,
                "fields": {},
            },
            {
                "principal": EVIL,
                "role": "channel",
                "calls": 122,
                "denied": 100,
                "members": 40,
                "fields": {"phone": 40},
            },
            {
                "principal": "night-owl",
                "role": "analyst",
                "calls": 61,
                "denied": 3,
                "members": 80,
                "fields": {"birth_date": 61},
            },
            {
                "principal": "auditor-1",
                "role": "auditor",
                "calls": 12,
                "denied": 0,
                "members": 0,
                "fields": {},
            },
        ],
        "by_purpose": [
            {"purpose": "customer_support", "calls": 2210, "fields": {"email": 383, "phone": 413}},
            {"purpose": "checkout", "calls": 1602, "fields": {"phone": 40}},
            {"purpose": "break_glass", "calls": 3, "fields": {"phone": 3}},
        ],
        "denials": [
            {
                "principal": EVIL,
                "role": "channel",
                "method": GET_MEMBER,
                "reason": 'role: channel may not read "members" & <b>bold</b>',
                "count": 96,
                "first_seq": 1201,
                "last_seq": 1322,
            },
            {
                "principal": EVIL,
                "role": "channel",
                "method": GET_BALANCE,
                "reason": "scope: member id mismatch",
                "count": 4,
                "first_seq": 1400,
                "last_seq": 1403,
            },
            {
                "principal": "staff-1",
                "role": "member_service",
                "method": GET_MEMBER,
                "reason": FORMULA_REASON,
                "count": 12,
                "first_seq": 77,
                "last_seq": 2900,
            },
            {
                "principal": "@admin",
                "role": "analyst",
                "method": GET_MEMBER,
                "reason": "-1+1",
                "count": 3,
                "first_seq": 300,
                "last_seq": 310,
            },
        ],
        "break_glass": [
            {
                "grant_id": "bg_01HZX3",
                "grantee": "staff-1",
                "granted_by": "sec-lead",
                "reason": "incident INC-4411: member locked out",
                "start_seq": 2001,
                "end_seq": 2050,
                "reads": 3,
            },
            {
                "grant_id": "bg_01HZX9",
                "grantee": "staff-7",
                "granted_by": "sec-lead",
                "reason": "fraud review",
                "start_seq": 4100,
                "end_seq": None,
                "reads": 0,
            },
        ],
        "findings": [
            _finding(
                1,
                "bulk_read",
                "high",
                "staff-7",
                "read 400 distinct members on 2026-11-23; the member_service role's median day "
                "is 12",
                list(range(3001, 3061)),  # more than the 50 shown
                400,
            ),
            _finding(
                2,
                "repeated_denials",
                "high",
                EVIL,
                "100 denied calls in bursts of 5+ within an hour",
                [1201, 1202, 1203, 1204, 1205],
                100,
            ),
            _finding(
                3,
                "after_hours",
                "medium",
                "night-owl",
                "61 personal-data reads outside working hours (07:00-20:00, UTC+0)",
                [150, 151, 152],
                61,
            ),
            _finding(
                4,
                "no_business_event",
                "medium",
                "staff-1",
                "7 personal-data reads of members with no journal activity within 30 days",
                [500, 610, 720, 830, 940, 1050, 1160],
                7,
            ),
            _finding(
                5,
                "unserved_member",
                "low",
                "pos-berlin-03",
                "2 reads of members this channel never wrote an entry for",
                [4001, 4002],
                2,
            ),
        ],
    }


def clean_access_report() -> dict[str, Any]:
    report = access_report()
    report["log"]["checkpoint"] = None
    report["findings"] = []
    report["denials"] = []
    report["break_glass"] = []
    report["by_principal"] = report["by_principal"][:3]
    return report


def compliance_report(*, ok: bool = True) -> dict[str, Any]:
    """A passing report in the documented shape, or a failing one in the
    shape build_compliance_report writes (log counts named ``entries``,
    problem lists capped with ``problem_count``, keys without dates)."""
    journal_problems = [] if ok else ["sequence 5: hash: expected ab12, found <img src=x>"]
    access_problems = [] if ok else ["record 77: signature does not verify"]
    report: dict[str, Any] = {
        "report": "compliance",
        "version": 1,
        "generated_at": "2026-11-24T10:00:00Z",
        "journal": {
            "entries": 104_233,
            "verified": ok,
            "problems": journal_problems,
            "problem_count": 0 if ok else 12,
            "root": "ee" * 32,
            "checkpoints_verified": 2,
            "head": {"sequence": 104_233, "hash": "3c9a" * 16},
            "zero_sum": True,
        },
        "access_log": {
            "records": 5_200_117,
            "verified": ok,
            "problems": access_problems,
        },
        "checkpoints": [
            {"log": "journal", "size": 100_000, "root": "aa" * 32, "created": "2026-11-20T00:00Z"},
            {"log": "access", "size": 5_000_000, "root": "bb" * 32, "created": "2026-11-20T00:00Z"},
            {"log": "journal", "size": 104_233, "root": "cc" * 32, "created": "2026-11-24T00:00Z"},
            {"log": "access", "size": 5_200_117, "root": "dd" * 32, "created": "2026-11-24T00:00Z"},
        ],
        "witness": {"dir": "/srv/witness", "files": 4},
        "liability": {
            "outstanding": 1_234_567,
            "by_state": {"available": 1_100_000, "pending": 120_000, "held": 14_567},
            "by_expiry_month": {
                "2026-12": 200_000,
                "2027-01": 300_500,
                "2027-02": 410_000,
                "never": 324_067,
            },
            "by_partner": {},
            "issued": 2_000_000,
            "redeemed": 700_000,
            "expired": 50_000,
            "forfeited": 15_433,
            "breakage_rate": 0.0325,
            "redemption_rate": 0.35,
        },
        "erasures": {
            "count": 4,
            "by_reason": {"member_request": 3, "legal_order": 1},
            "forfeited_points": 5_433,
        },
        "keys": [
            {"version": 1, "created": "2025-01-02T00:00:00Z", "status": "retired"},
            {"version": 2, "created": "2026-01-05T00:00:00Z", "status": "in use"},
            {"version": 3, "created": "2026-11-01T00:00:00Z", "status": "active"},
        ],
    }
    if not ok:
        access = report["access_log"]
        access["entries"] = access.pop("records")
        access["problem_count"] = 1
        report["liability"]["by_partner"] = {"skyair <miles>": 300_000}
        report["keys"] = [
            {"version": 1, "status": "retired", "data_keys": 0},
            {"version": 2, "status": "active", "data_keys": 9_120},
        ]
    return report


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.fail(INSTALL_HINT)
    return binary


def _load(chromium: str, report: dict[str, Any], tmp_path: Path, name: str) -> DomCollector:
    page = tmp_path / f"{name}.html"
    page.write_text(render_html(report), encoding="utf-8")
    return parse(dump_dom(chromium, page))


def _resolve(report: Any, path: str) -> Any:
    node = report
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, f"{path}.{i}")
    else:
        yield path, node


THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})*$")
DECIMAL = re.compile(r"^-?\d{1,3}(,\d{3})*(\.\d*[1-9])?$")


def assert_fields_match(dom: DomCollector, report: dict[str, Any]) -> set[str]:
    """Every data-field element shows the value at its path, in the
    documented format; returns the paths seen."""
    tagged = [e for e in dom.elements if "data-field" in e.attrs]
    assert tagged, "no data-field element"
    for element in tagged:
        path = element.attrs["data-field"]
        value = _resolve(report, path)
        text = element.text
        assert value is not None and not isinstance(value, bool), path
        if isinstance(value, int):
            if element.attrs.get("data-format") == "id":
                assert text == str(value), (path, text, value)
            else:
                assert THOUSANDS.match(text), (path, text)
                assert int(text.replace(",", "")) == value, (path, text, value)
        elif isinstance(value, float):
            assert DECIMAL.match(text), (path, text)
            assert float(text.replace(",", "")) == round(value, 4), (path, text, value)
        else:
            assert text == value, (path, text, value)
    return {e.attrs["data-field"] for e in tagged}


def assert_self_contained(dom: DomCollector, raw: str) -> None:
    assert "http:" not in raw and "https:" not in raw and "//" not in raw.replace("://", "")
    for bad in ("script", "link", "iframe", "object", "embed", "base", "form", "frame"):
        assert not dom.find(bad), f"<{bad}> element present"
    for element in dom.elements:
        for attr in URL_ATTRS:
            if attr in element.attrs:
                value = element.attrs[attr]
                assert value.startswith(("#", "data:")), (element.tag, attr, value)
        assert not any(a.startswith("on") for a in element.attrs), element
        assert "url(" not in element.attrs.get("style", "")
        if element.tag == "meta" and element.attrs.get("http-equiv", "").lower() == "refresh":
            raise AssertionError("meta refresh")
    for img in dom.find("img"):
        assert img.attrs.get("src", "").startswith("data:")
    css = "".join(s.text for s in dom.find("style"))
    assert css, "no inline style"
    assert "@import" not in css and "@font-face" not in css
    assert all(u.startswith("url(data:") for u in re.findall(r"url\([^)]*", css))
    assert "@media print" in css and "page-break-inside: avoid" in css
    csp = dom.find("meta", http_equiv="Content-Security-Policy")
    assert csp and "default-src 'none'" in csp[0].attrs["content"]


def assert_accessible(dom: DomCollector) -> None:
    assert dom.find("html")[0].attrs.get("lang") == "en"
    svgs = dom.find("svg")
    assert svgs
    for svg in svgs:
        assert svg.attrs.get("role") == "img"
        titles = [t for t in dom.find("title", within=svg) if t.parent is svg]
        assert titles and titles[0].text.strip()
        if not dom.find("text", within=svg, class_="no-data"):
            assert dom.find("text", within=svg, class_="axis-label")
    ths = dom.find("th")
    assert ths
    for th in ths:
        assert th.attrs.get("scope") in ("col", "row"), th
    for table in dom.find("table"):
        assert dom.find("caption", within=table)


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 2000)
    assert 20_000 < len(data) < 20_000_000, len(data)


# ---------------------------------------------------------------- browser tests


def test_access_report_in_chromium(chromium: str, tmp_path: Path) -> None:
    report = access_report()
    raw = render_html(report)
    dom = _load(chromium, report, tmp_path, "access")

    assert dom.find("title")[0].text == "Access report"
    assert_self_contained(dom, raw)
    assert_accessible(dom)
    seen = assert_fields_match(dom, report)
    # every number of the report is on the page (evidence beyond the 50 shown aside)
    numbers = {
        path
        for path, value in _leaves(report)
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    hidden = {f"findings.0.evidence.sequences.{j}" for j in range(50, 60)}
    assert numbers - hidden - seen == set()
    assert not hidden & seen

    banner = dom.find(id="verification")[0]
    assert banner.attrs["data-verified"] == "true" and "VERIFIABLE" in banner.text

    articles = dom.find("article", class_="finding")
    assert len(articles) == len(report["findings"]) == len(KINDS)
    assert {a.attrs["data-kind"] for a in articles} == set(KINDS)
    for i, finding in enumerate(report["findings"]):
        (article,) = dom.find("article", id=f"finding-{finding['id']}")
        assert article.attrs["class"] == "finding"
        assert article.attrs["data-kind"] == finding["kind"]
        assert article.attrs["data-severity"] == finding["severity"]
        assert finding["severity"].upper() in article.text  # readable in greyscale
        assert finding["summary"] in article.text
        assert finding["principal"] in article.text
        seqs = [e.text for e in dom.find(class_="seq", within=article)]
        assert seqs == [str(s) for s in finding["evidence"]["sequences"][:50]]
        assert all(
            e.attrs["data-field"] == f"findings.{i}.evidence.sequences.{j}"
            for j, e in enumerate(dom.find(class_="seq", within=article))
        )
        (proof,) = dom.find("span", class_="proof", within=article)
        for part in ("log", "checkpoint_size", "leaf_index"):
            assert str(finding["proof"][part]) in proof.text
    bulk = dom.find("article", id="finding-F1")[0]
    assert "\u2026 and 350 more" in bulk.text
    assert "\u2026 and 95 more" in articles[1].text  # 5 of 100 sequences kept
    assert not dom.find(class_="more", within=articles[4])  # all 2 of 2 shown

    # caller-controlled text stays text
    assert EVIL not in raw
    evil_cells = [e for e in dom.elements if e.text == EVIL and "data-field" in e.attrs]
    assert len(evil_cells) >= 4  # principal row, two denials, finding F2
    assert dom.find("b") == []  # the denial reason's <b> did not become markup
    assert not dom.find(id="no-findings")
    assert "still open" in dom.find(id="break-glass")[0].text

    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report-access.html").write_text(raw, encoding="utf-8")
    png = ARTIFACTS / "report-access.png"
    screenshot(chromium, tmp_path / "access.html", png)
    assert_png(png)


def test_clean_access_report_in_chromium(chromium: str, tmp_path: Path) -> None:
    report = clean_access_report()
    raw = render_html(report)
    dom = _load(chromium, report, tmp_path, "clean")
    assert_self_contained(dom, raw)
    assert_accessible(dom)
    assert_fields_match(dom, report)
    (empty,) = dom.find(id="no-findings")
    assert empty.text.startswith("No findings")
    assert not dom.find("article")
    banner = dom.find(id="verification")[0]
    assert banner.attrs["data-verified"] == "false"
    assert "NOT YET VERIFIABLE" in banner.text
    assert "no call was denied" in dom.find(id="denials")[0].text
    assert "no break-glass session" in dom.find(id="break-glass")[0].text
    assert "No data" in dom.find(id="denials")[0].text  # the empty chart says so


def test_compliance_report_in_chromium(chromium: str, tmp_path: Path) -> None:
    report = compliance_report()
    raw = render_html(report)
    dom = _load(chromium, report, tmp_path, "compliance")
    assert dom.find("title")[0].text == "Compliance report"
    assert_self_contained(dom, raw)
    assert_accessible(dom)
    seen = assert_fields_match(dom, report)
    numbers = {
        path
        for path, value in _leaves(report)
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    assert numbers - seen == set()

    banner = dom.find(id="verification")[0]
    assert banner.attrs["data-verdict"] == "PASS"
    assert dom.find(class_="verdict", within=banner)[0].text == "PASS"
    assert dom.find(id="no-problems")
    rows = dom.find("tr", within=dom.find("table", id="checkpoint-history")[0])
    assert len(rows) == 1 + len(report["checkpoints"])
    assert len(dom.find("tr", within=dom.find("section", id="keys")[0])) == 1 + 3
    assert "personal data" in dom.find(id="erasures")[0].text
    charts = [t.text for t in dom.find("title") if t.parent and t.parent.tag == "svg"]
    assert charts == ["Outstanding points by state", "Outstanding points by expiry month"]

    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report-compliance.html").write_text(raw, encoding="utf-8")
    png = ARTIFACTS / "report-compliance.png"
    screenshot(chromium, tmp_path / "compliance.html", png)
    assert_png(png)


def test_failed_compliance_report_in_chromium(chromium: str, tmp_path: Path) -> None:
    report = compliance_report(ok=False)
    report["journal"]["head"] = None
    report["witness"]["dir"] = None
    raw = render_html(report)
    dom = _load(chromium, report, tmp_path, "compliance-fail")
    assert_self_contained(dom, raw)
    assert_accessible(dom)
    seen = assert_fields_match(dom, report)
    banner = dom.find(id="verification")[0]
    assert banner.attrs["data-verdict"] == "FAIL"
    assert "FAIL" in banner.text and "13 problem(s)" in banner.text
    failed = {c.attrs["data-check"] for c in dom.find("li", data_ok="false")}
    assert failed == {"Journal hash chain", "Access log"}
    problems = [li.text for li in dom.find("li", within=dom.find("ol", class_="problems")[0])]
    assert problems == [
        "journal: " + report["journal"]["problems"][0],
        "journal: \u2026 and 11 more (of 12)",
        "access_log: " + report["access_log"]["problems"][0],
    ]
    assert not dom.find("img")  # the problem's <img src=x> stayed text
    assert "journal is empty" in raw and "No witness directory" in raw
    numbers = {
        path
        for path, value in _leaves(report)
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    assert numbers - seen == set()
    charts = [t.text for t in dom.find("title") if t.parent and t.parent.tag == "svg"]
    assert charts[-1] == "Outstanding points by partner"
    assert "skyair <miles>" in [t.text for t in dom.find("text", class_="category")]
    (keys,) = dom.find("section", id="keys")
    assert [th.text for th in dom.find("th", scope="col", within=keys)] == [
        "Version",
        "Created",
        "Status",
        "Data keys wrapped",
    ]


# ---------------------------------------------------------------- without a browser


def test_unknown_report_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown report kind"):
        render_html({"report": "nonsense"})
    with pytest.raises(ValueError, match="unknown report kind"):
        render_csv({"report": "nonsense"})


def test_rendering_is_deterministic_and_pure() -> None:
    report = access_report()
    before = copy.deepcopy(report)
    assert render_html(report) == render_html(copy.deepcopy(report))
    assert render_csv(report) == render_csv(copy.deepcopy(report))
    assert report == before


def _blocks(text: str) -> list[list[list[str]]]:
    blocks: list[list[list[str]]] = [[]]
    for row in csv.reader(io.StringIO(text)):
        if not row:
            blocks.append([])
        else:
            blocks[-1].append(row)
    return blocks


def _assert_no_formula(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


def test_access_csv() -> None:
    report = access_report()
    blocks = _blocks(render_csv(report))
    names = [block[1][0] if len(block) > 1 else None for block in blocks]
    assert names == [
        "summary",
        "over_time",
        "by_principal",
        "by_role",
        "by_purpose",
        "denials",
        "break_glass",
        "findings",
    ]
    for block in blocks:
        header, *rows = block
        assert header[0] == "section"
        assert {row[0] for row in rows} == {block[1][0]}
        assert all(len(row) == len(header) for row in rows)
        _assert_no_formula(block)
    by_name = {block[1][0]: block for block in blocks}

    summary = {row[1]: row[2] for row in by_name["summary"][1:]}
    assert summary["totals.records"] == str(report["totals"]["records"])
    assert summary["log.checkpoint.size"] == "5200"

    header, *rows = by_name["findings"]
    assert header[:4] == ["section", "id", "kind", "severity"]
    assert [row[1] for row in rows] == ["F1", "F2", "F3", "F4", "F5"]
    assert [row[2] for row in rows] == [f["kind"] for f in report["findings"]]
    f1 = dict(zip(header, rows[0], strict=True))
    assert f1["count"] == "400" and f1["baseline"] == "12.0" and f1["leaf_index"] == "3000"
    assert f1["sequences"].split() == [str(s) for s in range(3001, 3061)]

    header, *rows = by_name["denials"]
    reasons = [row[header.index("reason")] for row in rows]
    assert "'" + FORMULA_REASON in reasons and "'-1+1" in reasons
    principals = [row[header.index("principal")] for row in rows]
    assert "'@admin" in principals and EVIL in principals

    header, *rows = by_name["break_glass"]
    assert rows[1][header.index("end_seq")] == ""
    header, *rows = by_name["by_principal"]
    assert rows[0][header.index("fields")] == "email=380;phone=401"


def test_clean_access_csv_has_empty_blocks_with_headers() -> None:
    blocks = _blocks(render_csv(clean_access_report()))
    assert len(blocks) == 8
    assert blocks[-1] == [
        [
            "section",
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
        ]
    ]
    assert blocks[5] == [
        ["section", "principal", "role", "method", "reason", "count", "first_seq", "last_seq"]
    ]


def test_compliance_csv() -> None:
    report = compliance_report(ok=False)
    report["erasures"]["by_reason"]["+cmd|' /C calc'!A0"] = 1
    blocks = _blocks(render_csv(report))
    by_name = {block[1][0]: block for block in blocks if len(block) > 1}
    assert list(by_name) == [
        "summary",
        "problems",
        "checkpoints",
        "liability_by_state",
        "liability_by_expiry_month",
        "liability_by_partner",
        "erasures_by_reason",
        "keys",
    ]
    for block in blocks:
        _assert_no_formula(block)
    summary = {row[1]: row[2] for row in by_name["summary"][1:]}
    assert summary["journal.verified"] == "false"
    assert summary["access_log.entries"] == "5200117"
    assert summary["journal.head.hash"] == "3c9a" * 16
    assert summary["liability.breakage_rate"] == "0.0325"
    assert summary["erasures.forfeited_points"] == "5433"
    assert len(by_name["problems"]) == 3
    assert by_name["keys"][2] == ["keys", "2", "", "active", "9120"]
    assert ["erasures_by_reason", "'+cmd|' /C calc'!A0", "1"] in by_name["erasures_by_reason"]


# ---------------------------------------------------------------- SVG helpers


def test_bar_chart() -> None:
    items = [("member_service", 2310), ("<b>&co", 7), ("zero", 0)]
    svg = bar_chart("Calls <per> role", items, fields=["a.0", "a.1", None], value_label="calls")
    assert svg == bar_chart(
        "Calls <per> role", items, fields=["a.0", "a.1", None], value_label="calls"
    )
    assert "<b>" not in svg and "&lt;b&gt;&amp;co" in svg
    dom = parse(svg)
    (root,) = dom.find("svg")
    assert root.attrs["role"] == "img"
    assert dom.find("title")[0].text == "Calls <per> role"
    values = dom.find("text", class_="value")
    assert [v.text for v in values] == ["2,310", "7", "0"]
    assert [v.attrs.get("data-field") for v in values] == ["a.0", "a.1", None]
    assert [t.text for t in dom.find("text", class_="axis-label")] == ["calls"]
    assert "2,310" in dom.find("desc")[0].text
    empty = parse(bar_chart("Nothing", []))
    assert empty.find("text", class_="no-data")


def test_stacked_bars() -> None:
    buckets = [("09h", {"allowed": 10, "denied": 1}), ("10h", {"allowed": 20, "denied": 0})]
    svg = stacked_bars("Accesses", buckets, ["allowed", "denied"], x_label="hour")
    dom = parse(svg)
    assert dom.find("svg")[0].attrs["role"] == "img"
    assert [t.text for t in dom.find("text", class_="value")] == ["11", "20"]
    assert [t.text for t in dom.find("text", class_="legend")] == ["allowed (30)", "denied (1)"]
    assert {t.text for t in dom.find("text", class_="axis-label")} == {"hour", "count"}
    assert len(dom.find("rect")) == 2 + 3  # legend swatches + non-zero segments
    # many narrow bars: only the peak keeps its value label, tick labels thin out
    many = [(f"b{i}", {"allowed": i % 13, "denied": 0}) for i in range(200)]
    dom = parse(stacked_bars("Many", many, ["allowed", "denied"]))
    assert [t.text for t in dom.find("text", class_="value")] == ["12"]
    assert 2 <= len([t for t in dom.find("text", class_="tick") if t.text.startswith("b")]) <= 10
    assert parse(stacked_bars("None", [], ["a"])).find("text", class_="no-data")


def test_nice_scale() -> None:
    assert nice_scale(0) == (1, 1)
    assert nice_scale(7) == (2, 8)
    assert nice_scale(2310) == (500, 2500)
    assert nice_scale(100) == (20, 100)
