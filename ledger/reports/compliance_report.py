"""The compliance report: are the journal and the access log intact and
complete (verified the way an auditor would: an exported bundle checked by
the offline verifier against the logs' public keys), the checkpoint
history and witness copies, the zero-sum and liability numbers, erasures
(counts only) and key rotation history (docs/reports.md)."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from audit.bundle_verify import verify_bundle
from ledger import audit_cli
from ledger.checkpoints import LOG_NAMES, LogKeys
from ledger.config import ServerConfig
from ledger.keys.keyring import FileKeyring
from ledger.service.liability import liability_message
from ledger.storage.database import Database
from ledger.storage.journal_reads import JournalReads, read_head
from ledger.storage.log_reads import LogReads
from ledger.storage.members import MemberStore
from ledger.storage.schema import accounts, member_erasures

MAX_PROBLEMS = 100  # listed per log; the count is exact


def erasure_window(
    by_kek: Sequence[Sequence[Any]], active_versions: Sequence[int]
) -> dict[str, Any]:
    """Erasures whose deleted data keys could still be opened from a copy
    (a backup, a WAL archive, a dead tuple): the keys were wrapped under
    KEK versions up to the recorded one, so a copy stays decryptable while
    any active KEK version is at or below it. ``keys rotate`` then ``keys
    retire`` of every older version closes the window for everything
    erased before the rotation (docs/field-encryption.md)."""
    lowest = min(active_versions) if active_versions else None
    inside, oldest, unknown = 0, None, 0
    for version, count, first_us in by_kek:
        if version is None:
            unknown += count
        elif lowest is not None and lowest <= version:
            inside += count
            oldest = first_us if oldest is None else min(oldest, first_us)
    return {
        "inside": inside,
        "oldest_inside": _iso(oldest) if oldest is not None else None,
        "kek_version_unknown": unknown,
        "lowest_active_kek": lowest,
    }


def _iso(time_us: int) -> str:
    moment = dt.datetime.fromtimestamp(time_us / 1_000_000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_compliance_report(
    db: Database, keyring: FileKeyring, config: ServerConfig, *, now_us: int
) -> dict[str, Any]:
    keys = LogKeys.from_keyring(keyring, config.log_origin)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bundle.jsonl"
        with contextlib.redirect_stdout(io.StringIO()):  # export's own progress lines
            audit_cli.export(db, keys, list(LOG_NAMES), bundle, config)
        trusted = [k for log_id in LOG_NAMES for k in keys.verifier_keys(log_id)]
        result = verify_bundle(bundle, trusted)
    logs: dict[str, dict[str, Any]] = {}
    for name in LOG_NAMES.values():
        summary = result.logs.get(name)
        problems = [str(p) for p in result.problems if p.log in (name, "bundle")]
        logs[name] = {
            "entries": summary.entries if summary else 0,
            "verified": summary is not None and not problems,
            "problems": problems[:MAX_PROBLEMS],
            "problem_count": len(problems),
            "root": summary.root.hex() if summary else "",
            "checkpoints_verified": summary.checkpoints_verified if summary else 0,
        }
    reads = LogReads(db)
    history = []
    for log_id, name in LOG_NAMES.items():
        size, _ = reads.head(log_id)
        for cp in reads.checkpoints(log_id, size):
            history.append(
                {
                    "log": name,
                    "size": cp.size,
                    "root": cp.root.hex(),
                    "created": _iso(cp.created_us),
                }
            )
    witness_files = (
        len(list(config.witness_dir.glob("*")))
        if config.witness_dir and config.witness_dir.exists()
        else 0
    )
    journal = JournalReads(db.reader)
    liability = liability_message(journal.liability())
    with db.reader.connect() as conn:
        total = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(accounts.c.balance), 0))
        ).scalar()
        erasures = conn.execute(
            sa.select(member_erasures.c.reason, sa.func.count()).group_by(member_erasures.c.reason)
        ).all()
        by_kek = conn.execute(
            sa.select(
                member_erasures.c.kek_version,
                sa.func.count(),
                sa.func.min(member_erasures.c.erased_us),
            ).group_by(member_erasures.c.kek_version)
        ).all()
    with journal.snapshot() as conn:
        head = read_head(conn)
    in_use = MemberStore(db).kek_versions_in_use()
    current = keyring.current_version()
    key_rows = [
        {
            "version": v,
            "status": "active" if v == current else ("in use" if in_use.get(v) else "retired"),
            "data_keys": in_use.get(v, 0),
        }
        for v in sorted(set(keyring.versions()) | set(in_use))
    ]
    return {
        "report": "compliance",
        "version": 1,
        "generated_at": _iso(now_us),
        "journal": {
            **logs["journal"],
            "head": {"sequence": head.sequence, "hash": head.hash.hex()},
            "zero_sum": total == 0,
        },
        "access_log": logs["access"],
        "checkpoints": history,
        "witness": {
            "dir": str(config.witness_dir) if config.witness_dir else None,
            "files": witness_files,
        },
        "liability": {
            "outstanding": liability.outstanding,
            "by_state": {b.key: b.points for b in liability.by_state},
            "by_expiry_month": {b.key: b.points for b in liability.by_expiry_month},
            "by_partner": {b.key: b.points for b in liability.by_partner},
            "by_store_shortfall": {b.key: b.points for b in liability.by_store_shortfall},
            "by_partner_gross": {
                g.partner: {"out": g.exchanged_out, "in": g.exchanged_in}
                for g in liability.by_partner_gross
            },
            "issued": liability.issued,
            "redeemed": liability.redeemed,
            "expired": liability.expired,
            "forfeited": liability.forfeited,
            "breakage_rate": round(liability.breakage_rate, 6),
            "redemption_rate": round(liability.redemption_rate, 6),
        },
        "erasures": {
            "count": sum(n for _, n in erasures),
            "by_reason": {reason: n for reason, n in erasures},
            "forfeited_points": liability.forfeited,
            "window": erasure_window(by_kek, keyring.versions()),
        },
        "keys": key_rows,
    }
