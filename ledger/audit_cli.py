"""``loyalty-ledger audit ...``: export a bundle of the verifiable logs,
print the log verifier keys, and verify a bundle offline.

Export signs a checkpoint of each log's current size first (so every
bundle ends in a signed checkpoint), then writes, per log, every stored
checkpoint up to that size, every entry (canonical bytes and stored
hash, read in bounded chunks) and, for the journal, the materialized
balances as of that size. A progress line goes to a terminal's stderr.
Verification needs nothing of this server: only the bundle and the
verifier keys (``audit.verify_cli``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from audit.bundle import BundleWriter, LogInfo
from audit.merkle import Frontier
from ledger.checkpoints import LOG_NAMES, Checkpointer, LogKeys
from ledger.config import ServerConfig
from ledger.errors import IntegrityError
from ledger.keys.keyring import FileKeyring
from ledger.merkle_logs import JOURNAL_LOG
from ledger.signer_state import SignerState
from ledger.storage.database import Database
from ledger.storage.journal_reads import JournalReads, read_balances, read_head
from ledger.storage.log_reads import LogReads

CHUNK = 1000
LOG_IDS = {name: log_id for log_id, name in LOG_NAMES.items()}


def add_arguments(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    audit = sub.add_parser("audit", help="verifiable logs: export a bundle, verify one offline")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    export = audit_sub.add_parser("export", help="write a bundle of the logs (JSON Lines)")
    common(export)
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--log", choices=("journal", "access", "all"), default="all")
    export.add_argument(
        "--since",
        type=int,
        default=0,
        help="export only the entries after this size (one --log): the bundle starts with "
        "the tree state at that size, so it verifies on its own; 0: the whole log",
    )
    keys = audit_sub.add_parser("public-key", help="print the verifier key of each log")
    common(keys)
    rotate = audit_sub.add_parser(
        "rotate-key",
        help="give a log a new signing key version (restart the servers; old keys still verify)",
    )
    common(rotate)
    rotate.add_argument("--log", choices=("journal", "access"), required=True)
    verify = audit_sub.add_parser("verify", help="verify a bundle offline with trusted keys")
    verify.add_argument("bundle", type=Path)
    verify.add_argument(
        "--key", action="append", required=True, help="a trusted verifier key (repeatable)"
    )
    verify.add_argument(
        "--state", type=Path, help="directory keeping the last verified checkpoint per log"
    )
    verify.add_argument(
        "--witness-key",
        action="append",
        default=[],
        help="a trusted witness's verifier key ('loyalty-ledger witness key'); repeatable",
    )
    verify.add_argument(
        "--min-witnesses",
        type=int,
        default=None,
        help="cosignatures of trusted witnesses the latest checkpoint of each log needs "
        "(default: 1 when --witness-key is given)",
    )


def run(db: Database, keyring: FileKeyring, config: ServerConfig, args: argparse.Namespace) -> int:
    """export and public-key (verify runs offline, without configuration)."""
    if args.audit_command == "rotate-key":
        log_id = LOG_IDS[args.log]
        version = LogKeys.rotate(keyring, log_id)
        rotated = LogKeys.from_keyring(keyring, config.log_origin)
        print(f"{args.log}: signing key version {version}: {rotated.verifier_key(log_id)}")
        print(
            "restart the servers to sign with it; give it to auditors (audit verify --key) "
            "and witnesses (witness serve --log); the older versions keep verifying"
        )
        return 0
    keys = LogKeys.from_keyring(keyring, config.log_origin)
    if args.audit_command == "public-key":
        # bare keys, one per line, newest first per log: each names its log
        # (<origin>/journal, <origin>/access), and `audit verify --key`,
        # `witness serve --log` take them as printed
        for log_id in LOG_NAMES:
            for key in keys.verifier_keys(log_id):
                print(key)
        return 0
    logs = list(LOG_NAMES) if args.log == "all" else [LOG_IDS[args.log]]
    if args.since and len(logs) != 1:
        print("FAILED: --since: export one log (--log journal or --log access)", file=sys.stderr)
        return 2
    if args.since < 0:
        print("FAILED: --since: must be >= 0", file=sys.stderr)
        return 2
    return export(db, keys, logs, args.out, config, since=args.since)


def export(
    db: Database,
    keys: LogKeys,
    logs: list[int],
    out: Path,
    config: ServerConfig,
    since: int = 0,
) -> int:
    reads = LogReads(db)
    checkpointer = Checkpointer(
        reads=reads,
        keys=keys,
        clock=lambda: time.time_ns() // 1000,
        state=SignerState(config.signer_state_path),
        witness_dir=config.witness_dir,
        witnesses=config.witnesses,
    )
    sizes = {log_id: checkpointer.issue(log_id).size for log_id in logs}
    if any(since > size for size in sizes.values()):
        print(
            f"FAILED: --since {since}: the log has only {max(sizes.values())} entries",
            file=sys.stderr,
        )
        return 2
    tty = sys.stderr.isatty()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as fp:
            writer = BundleWriter(fp)
            writer.header(
                time.time_ns() // 1000,
                {
                    LOG_NAMES[log_id]: LogInfo(
                        keys.origin(log_id), tuple(keys.verifier_keys(log_id))
                    )
                    for log_id in logs
                },
            )
            for log_id in logs:
                name, size = LOG_NAMES[log_id], sizes[log_id]
                for checkpoint in reads.checkpoints(log_id, size):
                    if checkpoint.size >= since:  # earlier ones cannot be checked from a range
                        # the witnesses' cosignatures go with the note, as
                        # more signature lines (C2SP tlog-witness)
                        lines = reads.cosignatures(log_id, checkpoint.size)
                        writer.checkpoint(name, checkpoint.note + "".join(sorted(lines.values())))
                if since:
                    (last,) = reads.entries(log_id, since, since)
                    edge = Frontier.load(since, _node_reader(reads, log_id))
                    writer.start(name, since, last.stored_hash, edge)
                for first in range(since + 1, size + 1, CHUNK):
                    expected = first
                    for entry in reads.entries(log_id, first, min(size, first + CHUNK - 1)):
                        if entry.sequence != expected:
                            raise IntegrityError(
                                f"{name} log: entry {expected} is missing from the database "
                                "(run `loyalty-ledger verify`); no bundle written"
                            )
                        writer.entry(name, entry.sequence, entry.data, entry.stored_hash)
                        expected += 1
                    if expected != min(size, first + CHUNK - 1) + 1:
                        raise IntegrityError(
                            f"{name} log: entry {expected} is missing from the database "
                            "(run `loyalty-ledger verify`); no bundle written"
                        )
                    if tty:
                        done = min(size, first + CHUNK - 1)
                        print(
                            f"\r{name}: {done}/{size} entries", end="", file=sys.stderr, flush=True
                        )
                if tty:
                    print(file=sys.stderr)
                if log_id == JOURNAL_LOG and not since:
                    balances = _balances_at(db, size)
                    if balances is not None:
                        writer.balances(name, size, balances)
    except BaseException:
        out.unlink(missing_ok=True)  # never leave half a bundle behind
        raise
    for log_id in logs:
        print(f"{LOG_NAMES[log_id]}: {sizes[log_id]} entries, checkpoint at {sizes[log_id]}")
    print(f"wrote {out}")
    return 0


def _node_reader(reads: LogReads, log_id: int) -> Callable[[tuple[int, int]], bytes]:
    def read(key: tuple[int, int]) -> bytes:
        return reads.nodes(log_id, [key])[key]

    return read


def _balances_at(db: Database, size: int) -> dict[str, int] | None:
    """Materialized balances, if the journal still ends at ``size`` (a
    server may have appended since the checkpoint: then none are written)."""
    with JournalReads(db.reader).snapshot() as conn:
        if read_head(conn).sequence != size:
            return None
        return read_balances(conn)
