"""``loyalty-ledger report access|compliance`` and ``loyalty-ledger export
analytics``: reports for people, from the verifiable logs. Every run is
itself an event in the access log (who ran which report, for what span)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from audit.decisions import AccessDecision
from ledger.appender import Appender
from ledger.checkpoints import LogKeys
from ledger.config import ServerConfig
from ledger.keys.keyring import FileKeyring
from ledger.merkle_logs import ACCESS_LOG
from ledger.storage.database import Database

_LATEST_US = int(dt.datetime(9999, 1, 1, tzinfo=dt.UTC).timestamp()) * 1_000_000


def _time(text: str) -> int:
    """ISO 8601 (a date or a date and time; UTC unless an offset is given)."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    value = int(moment.timestamp() * 1_000_000)
    if not 0 <= value < _LATEST_US:
        raise argparse.ArgumentTypeError(f"must be between 1970 and 9998: {text!r}")
    return value


def _end_time(text: str) -> int:
    """The end of ``text``, exclusive, for a range that includes it: a date
    includes its whole day, a date and time includes that moment."""
    start = _time(text)
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return start + 1  # a moment: up to and including it
    return start + 86_400_000_000


def add_arguments(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    report = sub.add_parser("report", help="reports for security and compliance staff")
    report_sub = report.add_subparsers(dest="report_command", required=True)
    access = report_sub.add_parser("access", help="the security access report")
    common(access)
    access.add_argument(
        "--from",
        dest="from_",
        type=_time,
        required=True,
        metavar="WHEN",
        help="first moment included: an ISO 8601 date or date and time, UTC unless an "
        "offset is given (2026-11-01, 2026-11-01T09:00, 2026-11-01T09:00+08:00)",
    )
    access.add_argument(
        "--to",
        type=_end_time,
        required=True,
        metavar="WHEN",
        help="last moment included, the same forms: a date means to the end of that day "
        "(--from 2026-11-01 --to 2026-11-07 is the whole week)",
    )
    access.add_argument("--format", choices=("html", "json", "csv"), default="html")
    access.add_argument("--out", type=Path, help="default: standard output")
    access.add_argument("--principal", default="cli", help="who runs it (recorded)")
    compliance = report_sub.add_parser("compliance", help="the compliance report")
    common(compliance)
    compliance.add_argument("--format", choices=("html", "json"), default="html")
    compliance.add_argument("--out", type=Path, help="default: standard output")
    compliance.add_argument("--principal", default="cli", help="who runs it (recorded)")
    shortfalls = report_sub.add_parser(
        "shortfalls",
        help="outage redemptions beyond members' points, per store, to settle (docs/outage.md)",
    )
    common(shortfalls)
    shortfalls.add_argument(
        "--from", dest="from_", type=_time, default=0, metavar="WHEN",
        help="first moment included (ISO 8601, as for report access); default: the beginning",
    )  # fmt: skip
    shortfalls.add_argument(
        "--to", type=_end_time, default=_LATEST_US, metavar="WHEN",
        help="last moment included; a date means to the end of that day; default: no end",
    )  # fmt: skip
    shortfalls.add_argument("--store", help="one store (or channel) id; default: every store")
    shortfalls.add_argument("--format", choices=("json", "csv"), default="csv")
    shortfalls.add_argument("--out", type=Path, help="default: standard output")
    shortfalls.add_argument("--principal", default="cli", help="who runs it (recorded)")
    export = sub.add_parser("export", help="de-identified exports for analysts")
    export_sub = export.add_subparsers(dest="export_command", required=True)
    analytics = export_sub.add_parser(
        "analytics", help="per-member rows under a keyed pseudonym, k-anonymous"
    )
    common(analytics)
    analytics.add_argument("--out", type=Path, required=True)
    analytics.add_argument("--k", type=int, default=10, help="smallest group kept (default 10)")
    analytics.add_argument(
        "--link-key-file",
        type=Path,
        help="a file holding a 32-byte key: pseudonyms link across exports made with it; "
        "without it each export gets a fresh key, never stored",
    )
    analytics.add_argument("--principal", default="cli", help="who runs it (recorded)")
    analytics.add_argument(
        "--program", type=Path, help="the program file (its currency unit sets the spend bands)"
    )


def cli_decision(principal: str, role: str, method: str, reason: str) -> AccessDecision:
    """A command-line run (a report, a settlement) as an access-log event."""
    return AccessDecision(
        time_us=time.time_ns() // 1000,
        request_id=f"cli-{time.time_ns()}",
        principal=principal[:128],
        role=role,
        method=method,
        decision="allow",
        reason=reason[:256],
    )


def _record(db: Database, principal: str, role: str, method: str, reason: str) -> None:
    """The run, as an access-log event, durable before anything is written out."""
    appender = Appender(db=db)
    try:
        appender.record_blocking(cli_decision(principal, role, method, reason))
    finally:
        appender.close()


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        print(f"\raccess log: {done}/{total} records", end="", file=sys.stderr, flush=True)
        if done >= total:
            print(file=sys.stderr)


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)


def run(db: Database, keyring: FileKeyring, config: ServerConfig, args: argparse.Namespace) -> int:
    from ledger.reports import render

    now = time.time_ns() // 1000
    if args.command == "export":
        return _export(db, keyring, config, args, now)
    if args.report_command == "access":
        if args.to <= args.from_:
            print("FAILED: --to: must be after --from", file=sys.stderr)
            return 2
        from ledger.reports.access_report import build_access_report

        origin = LogKeys.from_keyring(keyring, config.log_origin).origin(ACCESS_LOG)
        report = build_access_report(
            db, from_us=args.from_, to_us=args.to, origin=origin, now_us=now, progress=_progress
        )
        _record(db, args.principal, "security", "report/access", f"{args.from_}..{args.to}")
    elif args.report_command == "shortfalls":
        from ledger.reports.shortfall_report import build_shortfall_report

        if args.to <= args.from_:
            print("FAILED: --to: must be after --from", file=sys.stderr)
            return 2
        report = build_shortfall_report(
            db, from_us=args.from_, to_us=args.to, store=args.store, now_us=now
        )
        _record(db, args.principal, "compliance", "report/shortfalls", args.store or "")
    else:
        from ledger.reports.compliance_report import build_compliance_report

        report = build_compliance_report(db, keyring, config, now_us=now)
        _record(db, args.principal, "compliance", "report/compliance", "")
    if args.format == "json":
        _write(json.dumps(report, indent=2, sort_keys=True) + "\n", args.out)
    elif args.format == "csv":
        _write(render.render_csv(report), args.out)
    else:
        _write(render.render_html(report), args.out)
    return 0


def _export(
    db: Database, keyring: FileKeyring, config: ServerConfig, args: argparse.Namespace, now: int
) -> int:
    from ledger.members.vault import MemberVault
    from ledger.reports.analytics import export_analytics, summary_json

    if args.k < 2:
        print("FAILED: --k: must be at least 2", file=sys.stderr)
        return 2
    link_key = None
    if args.link_key_file is not None:
        try:
            link_key = args.link_key_file.read_bytes()
        except OSError as err:
            print(f"FAILED: --link-key-file: cannot read it ({err.strerror})", file=sys.stderr)
            return 2
        if len(link_key) < 32:
            print("FAILED: --link-key-file: needs at least 32 bytes of key", file=sys.stderr)
            return 2
    vault = MemberVault.for_keyring(keyring)
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        out_file = args.out.open("w", encoding="utf-8", newline="")
    except OSError as err:
        print(f"FAILED: --out: cannot write it ({err.strerror})", file=sys.stderr)
        return 2
    _record(db, args.principal, "analyst", "export/analytics", f"k={args.k}")
    with out_file as out:
        summary = export_analytics(
            db,
            vault,
            out,
            k=args.k,
            link_key=link_key,
            now_us=now,
            phone_region=config.phone_region,
            minor_per_unit=config.program.earn.minor_per_unit,
        )
    print(summary_json(summary))
    return 0
