"""The security access report: who read what, for which purpose, what was
denied, which break-glass sessions ran, and what looks like insider theft,
computed from the verifiable access log (docs/reports.md).

It streams the log in sequence order (bounded memory: counters per
principal, role, purpose and time bucket, and capped evidence lists), so a
report over millions of records needs no more than a few dozen MB. Each
finding names the access-log sequence numbers that support it and the
checkpoint whose inclusion proof covers them, so the report itself can be
checked against the signed log.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ledger.storage.database import Database
from ledger.storage.schema import access_log, account_entries, checkpoints, journal_entries

ACCESS_LOG_ID = 2  # merkle_nodes.log / checkpoints.log of the access log
EVIDENCE_CAP = 50  # sequence numbers kept per finding (the count is exact)
PERSONAL_CHUNK = 5_000  # staff personal reads checked for a business event at a time
MEMBERS_CAP = 100_000  # distinct members remembered per principal and day
BREAK_GLASS_METHOD = "break-glass"
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
MUTATING_SUFFIXES = (
    "/Earn",
    "/Redeem",
    "/Reverse",
    "/Hold",
    "/CaptureHold",
    "/ReleaseHold",
    "/Transfer",
    "/ExchangeOut",
    "/ExchangeIn",
    "/ReplayOffline",
    "/Refer",
    "/Enroll",
    "/OpenAccount",
)
Progress = Callable[[int, int], None]  # (records read, records in range)


@dataclass(frozen=True, slots=True)
class ReportRules:
    """Thresholds of the anomaly findings (docs/reports.md)."""

    bulk_factor: float = 5.0  # distinct members a day > factor x the role's median day
    bulk_min: int = 50  # ... and more than this many
    work_start_hour: int = 7  # working hours [start, end) in utc_offset_hours local time
    work_end_hour: int = 20
    utc_offset_hours: int = 0
    event_window_days: int = 30  # a personal read needs a journal entry of the member this close
    denials_per_hour: int = 5  # this many denials of one principal within an hour


def _iso(time_us: int) -> str:
    moment = dt.datetime.fromtimestamp(time_us / 1_000_000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class _Evidence:
    sequences: list[int] = field(default_factory=list)  # the first EVIDENCE_CAP
    count: int = 0
    last: int = 0  # the last sequence, past the cap too

    def add(self, seq: int) -> None:
        self.count += 1
        self.last = max(self.last, seq)
        if len(self.sequences) < EVIDENCE_CAP:
            self.sequences.append(seq)


@dataclass(slots=True)
class _Principal:
    role: str = ""
    calls: int = 0
    denied: int = 0
    members: set[int] = field(default_factory=set)  # member hashes, capped at MEMBERS_CAP
    fields: Counter[str] = field(default_factory=Counter)
    served: set[int] = field(default_factory=set)  # channels: hashes of members it wrote for
    # channels: reads of members it has not written for (yet): hash -> sequences
    unserved: dict[int, list[int]] = field(default_factory=dict)


class _Scan:
    """One pass over the access log; every table of the report is a counter."""

    def __init__(self, rules: ReportRules, bucket_us: int, db: Database | None = None) -> None:
        self.db = db
        self.no_event: dict[str, _Evidence] = defaultdict(_Evidence)
        self.rules = rules
        self.bucket_us = bucket_us
        self.totals: Counter[str] = Counter()
        # distinct members are counted by their hash: an int costs far less
        # than the id string (collisions at 64 bits: none in practice)
        self.members_read: set[int] = set()
        self.over_time: dict[int, Counter[str]] = defaultdict(Counter)
        self.roles: dict[str, Counter[str]] = defaultdict(Counter)
        self.principals: dict[str, _Principal] = defaultdict(_Principal)
        self.purposes: dict[str, Counter[str]] = defaultdict(Counter)
        self.denials: dict[tuple[str, str, str, str], _Evidence] = {}
        self.grants: dict[str, dict[str, Any]] = {}
        self.daily: dict[tuple[str, int], set[int]] = defaultdict(set)
        self.daily_seqs: dict[tuple[str, int], _Evidence] = defaultdict(_Evidence)
        self.after_hours: dict[str, _Evidence] = defaultdict(_Evidence)
        self.unserved: dict[str, _Evidence] = defaultdict(_Evidence)
        self.denial_times: dict[str, deque[tuple[int, int]]] = defaultdict(deque)
        self.denial_bursts: dict[str, _Evidence] = {}
        self.burst_last: dict[str, int] = {}
        self.personal_reads: list[tuple[int, int, str, str]] = []  # (seq, time, principal, member)
        self.first_seq = 0
        self.last_seq = 0

    def feed(self, row: Any) -> None:
        seq, time_us, principal = row.seq, row.time_us, row.principal or "(anonymous)"
        self.first_seq = self.first_seq or seq
        self.last_seq = seq
        if row.method == BREAK_GLASS_METHOD:
            self._grant(row)
            return
        allowed = row.decision == "allow"
        self.totals["records"] += 1
        self.totals["allowed" if allowed else "denied"] += 1
        self.over_time[time_us // self.bucket_us * self.bucket_us][
            "allowed" if allowed else "denied"
        ] += 1
        self.roles[row.role or "(none)"]["calls"] += 1
        p = self.principals[principal]
        p.role = p.role or row.role
        p.calls += 1
        if not allowed:
            self.roles[row.role or "(none)"]["denied"] += 1
            p.denied += 1
            key = (principal, row.role, row.method, row.reason)
            self.denials.setdefault(key, _Evidence()).add(seq)
            self._burst(principal, seq, time_us)
            return
        member = row.member_account_id
        fields = [f for f in row.fields.split(",") if f]
        if row.purpose:
            self.purposes[row.purpose]["calls"] += 1
            self.purposes[row.purpose].update(f"field:{f}" for f in fields)
        if row.purpose == "break_glass":
            grant_id = row.reason.removeprefix("break_glass:")
            self._grant_entry(grant_id, principal)["reads"] += 1
        p.fields.update(fields)
        if not member:
            return
        tag = hash(member)
        if len(self.members_read) < MEMBERS_CAP:
            self.members_read.add(tag)
        if len(p.members) < MEMBERS_CAP:
            p.members.add(tag)
        if row.method.endswith(MUTATING_SUFFIXES):
            if row.role == "channel":
                p.served.add(tag)
                p.unserved.pop(tag, None)  # a lookup before the sale: it served them
            return
        day = time_us // DAY_US
        seen = self.daily[(principal, day)]
        if len(seen) < MEMBERS_CAP and tag not in seen:
            seen.add(tag)
            self.daily_seqs[(principal, day)].add(seq)
        if row.role == "channel" and tag not in p.served and len(p.unserved) < MEMBERS_CAP:
            p.unserved.setdefault(tag, []).append(seq)
        if fields and row.role != "channel":
            if not self._working_hours(time_us):
                self.after_hours[principal].add(seq)
            self.personal_reads.append((seq, time_us, principal, member))
            if len(self.personal_reads) >= PERSONAL_CHUNK:
                self.flush_personal()

    def flush_personal(self) -> None:
        """Check the buffered personal reads for a business event, keep
        only the evidence (bounded memory however long the log)."""
        if self.personal_reads and self.db is not None:
            window = self.rules.event_window_days * DAY_US
            for principal, ev in _without_business_event(
                self.db, self.personal_reads, window
            ).items():
                mine = self.no_event[principal]
                for s in ev.sequences:
                    mine.add(s)
                mine.count += ev.count - len(ev.sequences)
                mine.last = max(mine.last, ev.last)
        self.personal_reads.clear()

    def _working_hours(self, time_us: int) -> bool:
        r = self.rules
        hour = (time_us // HOUR_US + r.utc_offset_hours) % 24
        return r.work_start_hour <= hour < r.work_end_hour

    def _burst(self, principal: str, seq: int, time_us: int) -> None:
        """Denials that fall in an hour holding ``denials_per_hour`` or more
        denials of the principal: each counted once."""
        need = self.rules.denials_per_hour
        window = self.denial_times[principal]
        window.append((time_us, seq))
        if len(window) > need:
            window.popleft()  # only the last ``need`` denials matter
        if len(window) == need and window[0][0] > time_us - HOUR_US:
            found = self.denial_bursts.setdefault(principal, _Evidence())
            last = self.burst_last.get(principal, 0)
            for _, s in window:  # at most ``need``; each denial counted once
                if s > last:
                    found.add(s)
            self.burst_last[principal] = seq

    def _grant_entry(self, grant_id: str, grantee: str) -> dict[str, Any]:
        """A grant's row; one that started before the span has no start."""
        return self.grants.setdefault(
            grant_id,
            {
                "grant_id": grant_id,
                "grantee": grantee,
                "granted_by": "",
                "reason": "",
                "start_seq": None,
                "end_seq": None,
                "reads": 0,
            },
        )

    def _grant(self, row: Any) -> None:
        grant = self._grant_entry(row.request_id, row.principal)
        if row.decision == "start":
            grant["start_seq"] = row.seq
            grant["reason"] = row.reason
            by = row.reason.split(" by ", 1)[1].split(" ", 1)[0] if " by " in row.reason else ""
            grant["granted_by"] = by
        else:
            grant["end_seq"] = row.seq


def _rows(db: Database, from_us: int, to_us: int) -> Iterator[Any]:
    query = (
        sa.select(access_log)
        .where(access_log.c.time_us >= from_us, access_log.c.time_us < to_us)
        .order_by(access_log.c.seq)
        .execution_options(yield_per=5_000, stream_results=True)
    )
    with db.reader.connect() as conn:
        yield from conn.execute(query)


def _count(db: Database, from_us: int, to_us: int) -> int:
    with db.reader.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(access_log)
                .where(access_log.c.time_us >= from_us, access_log.c.time_us < to_us)
            ).scalar_one()
        )


def _without_business_event(
    db: Database, reads: list[tuple[int, int, str, str]], window_us: int
) -> dict[str, _Evidence]:  # one chunk of reads
    """Personal reads of a member with no journal entry of that member
    within the window around the read."""
    found: dict[str, _Evidence] = defaultdict(_Evidence)
    by_member: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for seq, time_us, principal, member in reads:
        by_member[member].append((seq, time_us, principal))
    times = (
        sa.select(journal_entries.c.time_us)
        .join(account_entries, account_entries.c.seq == journal_entries.c.seq)
        .where(account_entries.c.account_id == sa.bindparam("member"))
        .order_by(journal_entries.c.time_us)
    )
    with db.reader.connect() as conn:
        for member, member_reads in by_member.items():
            events = [t for (t,) in conn.execute(times, {"member": member})]
            for seq, time_us, principal in member_reads:
                if not any(abs(t - time_us) <= window_us for t in events):
                    found[principal].add(seq)
    return found


def _checkpoint_covering(db: Database, seq: int) -> int | None:
    with db.reader.connect() as conn:
        size = conn.execute(
            sa.select(sa.func.min(checkpoints.c.size)).where(
                checkpoints.c.log == ACCESS_LOG_ID, checkpoints.c.size >= seq
            )
        ).scalar()
    return int(size) if size is not None else None


def build_access_report(
    db: Database,
    *,
    from_us: int,
    to_us: int,
    origin: str,
    now_us: int,
    rules: ReportRules | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The report as a JSON-ready dict (the shape ledger/reports/render.py reads)."""
    rules = rules or ReportRules()
    bucket = HOUR_US if to_us - from_us <= 3 * DAY_US else DAY_US
    scan = _Scan(rules, bucket, db)
    total = _count(db, from_us, to_us) if progress else 0
    for n, row in enumerate(_rows(db, from_us, to_us), 1):
        scan.feed(row)
        if progress and n % 10_000 == 0:
            progress(n, total)
    scan.flush_personal()
    if progress:
        progress(total, total)
    findings = _findings(db, scan, rules, origin)
    with db.reader.connect() as conn:
        latest = conn.execute(
            sa.select(checkpoints.c.size, checkpoints.c.root)
            .where(checkpoints.c.log == ACCESS_LOG_ID)
            .order_by(checkpoints.c.size.desc())
            .limit(1)
        ).first()
    denials = sorted(scan.denials.items(), key=lambda kv: (-kv[1].count, kv[0]))
    return {
        "report": "access",
        "version": 1,
        "generated_at": _iso(now_us),
        "from": _iso(from_us),
        "to": _iso(to_us),
        "log": {
            "origin": origin,
            "first_seq": scan.first_seq,
            "last_seq": scan.last_seq,
            "checkpoint": (
                {"size": int(latest.size), "root": bytes(latest.root).hex()} if latest else None
            ),
        },
        "totals": {
            "records": scan.totals["records"],
            "allowed": scan.totals["allowed"],
            "denied": scan.totals["denied"],
            "principals": len(scan.principals),
            "members_read": len(scan.members_read),
        },
        "over_time": [
            {
                "bucket": _iso(b)[: 13 if bucket == HOUR_US else 10]
                + ("Z" if bucket == HOUR_US else ""),
                "allowed": c["allowed"],
                "denied": c["denied"],
            }
            for b, c in sorted(scan.over_time.items())
        ],
        "by_role": [
            {"role": role, "calls": c["calls"], "denied": c["denied"]}
            for role, c in sorted(scan.roles.items(), key=lambda kv: -kv[1]["calls"])
        ],
        "by_principal": [
            {
                "principal": name,
                "role": p.role,
                "calls": p.calls,
                "denied": p.denied,
                "members": len(p.members),
                "fields": dict(sorted(p.fields.items())),
            }
            for name, p in sorted(scan.principals.items(), key=lambda kv: -kv[1].calls)
        ],
        "by_purpose": [
            {
                "purpose": purpose,
                "calls": c["calls"],
                "fields": {k[6:]: v for k, v in sorted(c.items()) if k.startswith("field:")},
            }
            for purpose, c in sorted(scan.purposes.items(), key=lambda kv: -kv[1]["calls"])
        ],
        "denials": [
            {
                "principal": principal,
                "role": role,
                "method": method,
                "reason": reason,
                "count": ev.count,
                "first_seq": ev.sequences[0],
                "last_seq": ev.last,
            }
            for (principal, role, method, reason), ev in denials
        ],
        "break_glass": sorted(scan.grants.values(), key=lambda g: g["start_seq"] or 0),
        "findings": findings,
    }


def _findings(db: Database, scan: _Scan, rules: ReportRules, origin: str) -> list[dict[str, Any]]:
    raw: list[tuple[str, str, str, str, _Evidence, float | None]] = []
    # bulk reads: distinct members a day against the role's usual day
    per_role: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for (principal, _day), members in scan.daily.items():
        per_role[scan.principals[principal].role].append((principal, len(members)))
    for (principal, day), members in sorted(scan.daily.items()):
        role = scan.principals[principal].role
        # the principal's own days are not its baseline: one insider alone in
        # a role, or one of two, is still measured against the others
        others = [n for who, n in per_role[role] if who != principal]
        baseline = float(statistics.median(others)) if others else 0.0
        if len(members) > max(rules.bulk_factor * baseline, rules.bulk_min):
            when = _iso(day * DAY_US)[:10]
            summary = (
                f"read {len(members)} distinct members on {when}; "
                f"the {role or 'unnamed'} role's median day is {baseline:g}"
            )
            raw.append(
                (
                    "bulk_read",
                    "high",
                    principal,
                    summary,
                    scan.daily_seqs[(principal, day)],
                    baseline,
                )
            )
    for principal, ev in sorted(scan.after_hours.items()):
        summary = (
            f"{ev.count} personal-data reads outside working hours "
            f"({rules.work_start_hour:02d}:00-{rules.work_end_hour:02d}:00,"
            f" UTC{rules.utc_offset_hours:+d})"
        )
        raw.append(("after_hours", "medium", principal, summary, ev, None))
    for principal, ev in sorted(scan.no_event.items()):
        summary = (
            f"{ev.count} personal-data reads of members with no journal activity "
            f"within {rules.event_window_days} days"
        )
        raw.append(("no_business_event", "medium", principal, summary, ev, None))
    for name, p in sorted(scan.principals.items()):
        for seq in sorted(seq for seqs in p.unserved.values() for seq in seqs):
            scan.unserved[name].add(seq)
    for principal, ev in sorted(scan.unserved.items()):
        summary = f"{ev.count} reads of members this channel wrote nothing for in the span"
        raw.append(("unserved_member", "medium", principal, summary, ev, None))
    for principal, ev in sorted(scan.denial_bursts.items()):
        severity = "high" if ev.count >= 4 * rules.denials_per_hour else "medium"
        summary = f"{ev.count} denied calls in bursts of {rules.denials_per_hour}+ within an hour"
        raw.append(("repeated_denials", severity, principal, summary, ev, None))
    order = {"high": 0, "medium": 1, "low": 2}
    raw.sort(key=lambda f: (order[f[1]], f[0], f[2]))
    out = []
    for i, (kind, severity, principal, summary, ev, base) in enumerate(raw, 1):
        first = min(ev.sequences)
        evidence: dict[str, Any] = {"sequences": ev.sequences, "count": ev.count}
        if base is not None:
            evidence["baseline"] = base
        out.append(
            {
                "id": f"F{i}",
                "kind": kind,
                "severity": severity,
                "principal": principal,
                "summary": summary,
                "evidence": evidence,
                "proof": {
                    "log": origin,
                    "checkpoint_size": _checkpoint_covering(db, max(ev.sequences)),
                    "leaf_index": first - 1,
                },
            }
        )
    return out
