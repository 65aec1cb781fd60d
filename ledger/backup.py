"""Backups that can be trusted, and restores that refuse what cannot.

``loyalty-ledger backup --out DIR`` takes an online, consistent snapshot
while servers keep serving (SQLite: the backup API; PostgreSQL: pg_dump,
one transaction-consistent snapshot) together with freshly signed
checkpoints of both logs, signed *before* the snapshot, so the snapshot
holds at least what they commit to. DIR gets the snapshot and
``manifest.json``: the format, the backend, the snapshot's file name and
SHA-256, the log origin, and the two checkpoint notes (signed: a manifest
edited to claim a newer or another history does not verify).

``loyalty-ledger restore DIR`` restores into the configured database
(SQLite: a data directory without a ledger; PostgreSQL: an empty database)
and keeps the result only if, on the restored copy:
1. the snapshot file is the one the manifest names (SHA-256);
2. ``verify`` passes: the journal's chain and invariants, the access log,
   every Merkle node and stored checkpoint, members' profiles;
3. each manifest checkpoint opens with this deployment's log keys and the
   restored tree is an extension of it (same root at its size, or a
   consistency proof from the restored nodes);
4. it is not older than what this deployment already vouched for: the
   newest checkpoint the signer signed (signer state beside the keyring)
   and the newest in the witness directory must be covered by the restored
   tree. A restore that would lose signed entries is refused unless
   ``--accept-rollback`` is given (then it is restored and the loss is
   printed; the signer will still refuse to sign a history that is not an
   extension of what it signed, see docs/operations.md).
Whatever fails, nothing is left behind: the SQLite file is never moved into
place, and the PostgreSQL database is emptied again.

The keyring is not in the backup, on purpose: a backup without it opens no
member's profile, and erasure's window (docs/field-encryption.md 8.1)
bounds how long one that has it could.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
import structlog

from audit.merkle import NodeKey, ProofError, consistency_proof, tree_hash, verify_consistency
from audit.note import Checkpoint, NoteError, open_with_any
from ledger.checkpoints import LOG_NAMES, Checkpointer, LogKeys, safe_name
from ledger.config import ServerConfig
from ledger.errors import IntegrityError
from ledger.keys.keyring import FileKeyring
from ledger.signer_state import SignerState
from ledger.storage.database import Database, open_database
from ledger.storage.log_reads import LogReads
from ledger.verify import verify_database
from ledger.verify_logs import verify_logs
from ledger.verify_profiles import verify_profiles
from ledger.verify_vouchers import verify_vouchers

log = structlog.get_logger("ledger.backup")

FORMAT = "loyalty-ledger-backup/1"
MANIFEST = "manifest.json"
SQLITE_FILE = "ledger.db"
PG_FILE = "ledger.pgdump"


class BackupError(Exception):
    """A backup or restore that cannot be done as asked (exit code 2)."""


class RestoreRefused(Exception):
    """The backup does not verify, or is older than what was vouched for
    (exit code 1); ``reasons`` lists why."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True, slots=True)
class Restored:
    sizes: dict[str, int]  # log -> entries restored
    lost: dict[str, int]  # log -> entries signed before but not in the backup (accepted)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fp:
        for block in iter(lambda: fp.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pg_tool(name: str, pg_bin: Path | None = None) -> str:
    """pg_dump or pg_restore: from ``pg_bin``, the PATH, or the newest
    /usr/lib/postgresql/*/bin (Debian)."""
    if pg_bin is not None:
        return str(pg_bin / name)
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise BackupError(f"{name}: not found (install the PostgreSQL client, or give --pg-bin)")
    return candidates[-1]


def _libpq_url(db: Database) -> str:
    """The database URL as libpq tools take it (no SQLAlchemy driver part)."""
    url = db.writer.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _keys(config: ServerConfig) -> LogKeys:
    return LogKeys.from_keyring(FileKeyring.open(config.keyring_path), config.log_origin)


def take_backup(config: ServerConfig, out: Path, pg_bin: Path | None = None) -> dict[str, object]:
    """Write the snapshot and its manifest into ``out`` (new or empty)."""
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"--out: {out} is not empty")
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = open_database(config.resolved_database_url())
    try:
        keys = _keys(config)
        checkpointer = Checkpointer(
            reads=LogReads(db),
            keys=keys,
            clock=lambda: time.time_ns() // 1000,
            state=SignerState(config.signer_state_path),
            witness_dir=config.witness_dir,
            witnesses=config.witnesses,
        )
        # signed before the snapshot: the snapshot holds at least these trees
        notes = {LOG_NAMES[i]: checkpointer.issue(i).note for i in LOG_NAMES}
        if db.is_sqlite:
            name = SQLITE_FILE
            source = sqlite3.connect(db.sqlite_path, timeout=30)
            target = sqlite3.connect(out / name)
            try:
                source.backup(target)  # online: pages copied while writers go on
            finally:
                target.close()
                source.close()
        else:
            name = PG_FILE
            done = subprocess.run(
                [
                    *(pg_tool("pg_dump", pg_bin), "--format=custom"),
                    *("--no-owner", "--no-privileges", "--file", str(out / name)),
                    _libpq_url(db),
                ],
                capture_output=True,
                text=True,
                timeout=24 * 3600,
            )
            if done.returncode != 0:
                raise BackupError(f"pg_dump failed: {done.stderr.strip()[:500]}")
    finally:
        db.dispose()
    manifest: dict[str, object] = {
        "format": FORMAT,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "backend": "sqlite" if name == SQLITE_FILE else "postgresql",
        "file": name,
        "sha256": _sha256(out / name),
        "log_origin": config.log_origin,
        "checkpoints": notes,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.chmod(out / name, 0o600)
    return manifest


def _read_manifest(src: Path) -> dict[str, object]:
    try:
        manifest = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BackupError(f"{src}: no readable {MANIFEST} ({type(err).__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{src}: {MANIFEST} is not a {FORMAT} manifest")
    return manifest


def restore(
    config: ServerConfig,
    src: Path,
    *,
    accept_rollback: bool = False,
    pg_bin: Path | None = None,
) -> Restored:
    """Restore ``src`` into the configured database; RestoreRefused (nothing
    kept) when it does not verify or would lose signed entries."""
    manifest = _read_manifest(src)
    name = str(manifest.get("file", ""))
    if name not in (SQLITE_FILE, PG_FILE) or not (src / name).is_file():
        raise BackupError(f"{src}: the snapshot file the manifest names is missing")
    if _sha256(src / name) != manifest.get("sha256"):
        raise RestoreRefused([f"{name}: its SHA-256 is not the one in the manifest"])
    url = config.resolved_database_url()
    is_sqlite = url.startswith("sqlite")
    if is_sqlite != (name == SQLITE_FILE):
        raise BackupError(
            f"{src}: a {manifest.get('backend')} backup; restore it into a database of that kind"
        )
    if is_sqlite:
        final = Path(str(sa.engine.make_url(url).database))
        if final.exists():
            raise BackupError(f"{final}: a ledger is there already; move it away first")
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = final.with_name(final.name + ".restoring")
        shutil.copyfile(src / name, staging)
        db = open_database(f"sqlite:///{staging}")
        try:
            restored = _check(db, config, manifest, accept_rollback)
        except BaseException:
            db.dispose()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{staging}{suffix}").unlink(missing_ok=True)
            raise
        db.dispose()
        for suffix in ("-wal", "-shm"):
            Path(f"{staging}{suffix}").unlink(missing_ok=True)
        os.replace(staging, final)
        return restored
    db = open_database(url)
    try:
        if sa.inspect(db.writer).get_table_names():
            raise BackupError("--database-url: restore into an empty database")
        done = subprocess.run(
            [
                *(pg_tool("pg_restore", pg_bin), "--no-owner", "--no-privileges"),
                *("--exit-on-error", "--dbname", _libpq_url(db), str(src / name)),
            ],
            capture_output=True,
            text=True,
            timeout=24 * 3600,
        )
        try:
            if done.returncode != 0:
                raise RestoreRefused([f"pg_restore failed: {done.stderr.strip()[:500]}"])
            return _check(db, config, manifest, accept_rollback)
        except BaseException:
            with db.writer.begin() as conn:  # it was empty: empty it again
                conn.exec_driver_sql("DROP SCHEMA public CASCADE")
                conn.exec_driver_sql("CREATE SCHEMA public")
            raise
    finally:
        db.dispose()


def _check(
    db: Database, config: ServerConfig, manifest: dict[str, object], accept_rollback: bool
) -> Restored:
    reasons: list[str] = []
    result = verify_database(db)
    if not result:
        reasons += [f"journal: {p}" for p in result.problems[:20]]
    _, log_problems = verify_logs(db)
    reasons += [str(p) for p in log_problems[:20]]
    _, profile_problems = verify_profiles(db)
    reasons += [str(p) for p in profile_problems[:20]]
    _, voucher_problems = verify_vouchers(db)
    reasons += [str(p) for p in voucher_problems[:20]]
    keys = _keys(config)
    reads = LogReads(db)
    notes = manifest.get("checkpoints")
    sizes: dict[str, int] = {}
    lost: dict[str, int] = {}
    state = SignerState(config.signer_state_path)
    for log_id, log_name in LOG_NAMES.items():
        size, _ = reads.head(log_id)
        sizes[log_name] = size
        tree = _Tree(reads, log_id, size)

        note = notes.get(log_name) if isinstance(notes, dict) else None
        try:
            signed = open_with_any(str(note or ""), keys.verifiers(log_id), keys.origin(log_id))
        except NoteError as err:
            reasons.append(
                f"{log_name}: the manifest's checkpoint does not open with this "
                f"deployment's key: {err}"
            )
        else:
            why = tree.extends(signed, "the manifest's checkpoint")
            if why:
                reasons.append(f"{log_name}: {why}")
        # what this deployment vouched for since: the signer's and the witness's newest
        vouched: list[tuple[Checkpoint, str]] = []
        try:
            remembered = state.load(keys.origin(log_id), keys.verifiers(log_id))
        except IntegrityError as err:
            reasons.append(f"{log_name}: {err}")
            remembered = None
        if remembered is not None:
            vouched.append((remembered[0], "the newest checkpoint this signer signed"))
        held = _newest_witnessed(config, keys, log_id)
        if held is not None:
            vouched.append((held, "the newest checkpoint in the witness directory"))
        for prev, what in vouched:
            if prev.size > size:
                if accept_rollback:
                    lost[log_name] = max(lost.get(log_name, 0), prev.size - size)
                    continue
                reasons.append(
                    f"{log_name}: older than {what} ({prev.size} entries; the backup holds "
                    f"{size}): restoring it loses {prev.size - size} signed entries "
                    "(--accept-rollback restores it anyway)"
                )
                continue
            why = tree.extends(prev, what)
            if why:
                reasons.append(f"{log_name}: {why}")
    if reasons:
        log.critical("restore_refused", reasons=len(reasons))
        raise RestoreRefused(reasons)
    if lost:
        log.critical("restore_rolled_back", lost=lost)
    return Restored(sizes, lost)


class _Tree:
    """The restored tree of one log, at its head."""

    def __init__(self, reads: LogReads, log_id: int, size: int) -> None:
        self._reads = reads
        self._log = log_id
        self.size = size
        self.root = tree_hash(size, self._nodes)

    def _nodes(self, keys: list[NodeKey]) -> dict[NodeKey, bytes]:
        return self._reads.nodes(self._log, keys)

    def extends(self, prev: Checkpoint, what: str) -> str:
        """ "" if this tree extends ``prev``; else why not."""
        if prev.size > self.size:
            return f"{what} is at size {prev.size}, the backup holds {self.size}"
        if prev.size == self.size:
            return "" if prev.root == self.root else f"{what}: another root at size {self.size}"
        proof = consistency_proof(prev.size, self.size, self._nodes)
        try:
            verify_consistency(prev.size, self.size, proof, prev.root, self.root)
        except ProofError:
            return f"not an extension of {what} (size {prev.size}): another history"
        return ""


def _newest_witnessed(config: ServerConfig, keys: LogKeys, log_id: int) -> Checkpoint | None:
    if config.witness_dir is None:
        return None
    folder = config.witness_dir / safe_name(keys.origin(log_id))
    names = sorted(p.name for p in folder.glob("*.note")) if folder.is_dir() else []
    if not names:
        return None
    try:
        return open_with_any(
            (folder / names[-1]).read_text(encoding="utf-8"),
            keys.verifiers(log_id),
            keys.origin(log_id),
        )
    except (OSError, UnicodeDecodeError, NoteError):
        return None
