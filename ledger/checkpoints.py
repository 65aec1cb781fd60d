"""Signed checkpoints of the two logs (C2SP tlog-checkpoint signed notes).

A checkpoint names the log (its origin), a tree size and the root hash, and
is signed with the log's key: an Ed25519 key whose seed is the keyring's
named secret ``log-<journal|access>-<version>`` (LogKeys), so it lives
with the other keys, outside the database. The signer's name is the origin, so each log has its own
verifier key (``verifier_key``), which is what an auditor trusts.

Never signed for an inconsistent tree. Before signing size n:
- n is at least the size of the last checkpoint this signer signed, and
  the tree is a proven extension of that root: kept outside the database,
  beside the keyring (ledger/signer_state.py), so deleting or rewriting
  the ``checkpoints`` table cannot make the key sign a rolled-back,
  truncated, forked or swapped database;
- likewise of the newest checkpoint the witness directory holds;
- the root is computed from the stored nodes;
- the stored leaf n-1 is the hash of entry n's canonical bytes, and entry
  n's hash is the log head's;
- the tree of the latest earlier checkpoint is proven to be a prefix
  (a consistency proof from the stored nodes, verified against both roots).
Any failure raises IntegrityError and nothing is signed. A checkpoint of a
size already signed is returned as stored (two servers may race; the
first one stored wins, and a different root for the same size is a fork,
refused loudly).

The witness hook hands every checkpoint to a directory a second party
controls (``witness_dir``): one file per checkpoint, never overwritten;
before signing a size, a checkpoint of that size the witness already holds
must have the same root (a failed write is retried on the next issue).
The C2SP tlog-witness protocol (HTTP add-checkpoint with a consistency
proof) is the target for a networked witness; docs/verification.md.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.merkle import (
    ProofError,
    consistency_proof,
    leaf_hash,
    tree_hash,
    verify_consistency,
)
from audit.note import Checkpoint, NoteError, Signer, Verifier, open_with_any, sign_checkpoint
from ledger.errors import IntegrityError
from ledger.keys.keyring import Keyring
from ledger.merkle_logs import ACCESS_LOG, JOURNAL_LOG
from ledger.signer_state import SignerState
from ledger.storage.log_reads import LogReads, StoredCheckpoint
from ledger.witness_client import (
    WitnessConfig,
    WitnessConflict,
    WitnessError,
    request_cosignature,
)

log = structlog.get_logger(__name__)

LOG_NAMES = {JOURNAL_LOG: "journal", ACCESS_LOG: "access"}
_ROWS_PER_READ = 2000  # entries checked per read before a signature
START_CHECK_ROWS = 100_000  # newest unsigned rows a writer checks before it starts
SIGNING_SECRET = "log-signing"
DEFAULT_ORIGIN = "loyalty-ledger.local"
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(origin: str) -> str:
    return _SAFE.sub("_", origin)


def _secret_name(log_id: int, version: int) -> str:
    return f"log-{LOG_NAMES[log_id]}-{version}"


def _versions(keyring: Keyring, log_id: int) -> list[int]:
    pattern = re.compile(rf"log-{LOG_NAMES[log_id]}-([1-9][0-9]*)")
    return sorted(
        int(m.group(1)) for n in keyring.secret_names() if (m := pattern.fullmatch(n)) is not None
    )


@dataclass(frozen=True, slots=True)
class LogKeys:
    """Each log's signing keys, by version, and its origin; public parts for
    auditors.

    Each log has its own Ed25519 key, the keyring's secret
    ``log-<journal|access>-<version>``; the highest version signs, every
    version still verifies (old checkpoints, the signer state, witness
    notes). A keyring from before per-log keys holds one ``log-signing``
    seed: it is version 1 of *both* logs until ``audit rotate-key`` gives
    each its own. The key name is the origin, and a note's signature line
    carries its key id, so a checkpoint names the key that signed it."""

    origin_prefix: str
    keys: Mapping[int, tuple[tuple[int, Ed25519PrivateKey], ...]]  # log -> (version, key)

    @classmethod
    def from_keyring(cls, keyring: Keyring, origin_prefix: str = DEFAULT_ORIGIN) -> LogKeys:
        legacy = SIGNING_SECRET in keyring.secret_names()
        keys: dict[int, tuple[tuple[int, Ed25519PrivateKey], ...]] = {}
        for log_id in LOG_NAMES:
            versions = _versions(keyring, log_id)
            if not versions and not legacy:
                versions = [1]  # a new keyring: this log's own first key
            found = [
                (v, Ed25519PrivateKey.from_private_bytes(keyring.secret(_secret_name(log_id, v))))
                for v in versions
            ]
            if legacy and 1 not in versions:
                seed = keyring.secret(SIGNING_SECRET)
                found.insert(0, (1, Ed25519PrivateKey.from_private_bytes(seed)))
            keys[log_id] = tuple(found)
        return cls(origin_prefix, keys)

    @staticmethod
    def rotate(keyring: Keyring, log_id: int) -> int:
        """A new signing key version for the log (the servers use it once
        restarted); the old versions keep verifying."""
        legacy = SIGNING_SECRET in keyring.secret_names()
        current = max(_versions(keyring, log_id) or [1 if legacy else 0])
        keyring.secret(_secret_name(log_id, current + 1))
        return current + 1

    def origin(self, log_id: int) -> str:
        return f"{self.origin_prefix}/{LOG_NAMES[log_id]}"

    def version(self, log_id: int) -> int:
        return self.keys[log_id][-1][0]

    def signer(self, log_id: int) -> Signer:
        """The current (highest) version's signer."""
        return Signer(self.origin(log_id), self.keys[log_id][-1][1])

    def verifiers(self, log_id: int) -> list[Verifier]:
        """Every version's verifier, newest first."""
        return [
            Signer(self.origin(log_id), key).verifier() for _, key in reversed(self.keys[log_id])
        ]

    def verifier_key(self, log_id: int) -> str:
        return self.signer(log_id).verifier_key()

    def verifier_keys(self, log_id: int) -> list[str]:
        """Every version's verifier key, newest first."""
        return [v.key() for v in self.verifiers(log_id)]

    def signed_by(self, log_id: int, note: str) -> str:
        """The verifier key (of this log's versions) that signed ``note``."""
        for verifier in self.verifiers(log_id):
            try:
                open_with_any(note, verifier, self.origin(log_id))
            except NoteError:
                continue
            return verifier.key()
        return ""


class Checkpointer:
    def __init__(
        self,
        *,
        reads: LogReads,
        keys: LogKeys,
        clock: Callable[[], int],
        state: SignerState,
        witness_dir: Path | None = None,
        witnesses: Sequence[WitnessConfig] = (),
    ) -> None:
        self._reads = reads
        self._keys = keys
        self._clock = clock
        self._state = state
        self._witness_dir = witness_dir
        self._witnesses = tuple(witnesses)

    def latest(self, log_id: int) -> StoredCheckpoint | None:
        return self._reads.latest_checkpoint(log_id)

    def issue(self, log_id: int) -> StoredCheckpoint:
        """A signed checkpoint of the log's current size (the stored one if
        that size is signed already and checks out); IntegrityError if the
        tree does not check out."""
        origin = self._keys.origin(log_id)
        with self._state.locked(origin):
            return self._issue(log_id, origin)

    def _issue(self, log_id: int, origin: str) -> StoredCheckpoint:
        remembered = self._state.load(origin, self._keys.verifiers(log_id))
        # the latest checkpoint first, then the head: read the other way
        # round, a checkpoint another server signs in between looks newer
        # than the head (a false "log shrank")
        latest = self._reads.latest_checkpoint(log_id)
        size, last_hash = self._reads.head(log_id)
        if remembered is not None and size < remembered[0].size:
            raise self._refuse(
                log_id,
                f"the database holds {size} entries, fewer than the {remembered[0].size} "
                "this signer has signed: rolled back, truncated or another database",
            )
        if latest is not None and latest.size > size:
            raise self._refuse(log_id, f"log shrank: checkpoint at {latest.size}, head at {size}")
        root = tree_hash(size, lambda keys: self._reads.nodes(log_id, keys))
        self._check_last_leaf(log_id, size, last_hash)
        if remembered is not None:
            self._check_extends(log_id, remembered[0], size, root, "the last one signed")
        self._check_witnessed(log_id, size, root)
        if latest is not None and latest.size == size:
            # stored already: published only if it is what this key signed
            # over this very tree (a DBA can put back an old, valid note)
            stored = self._open_stored(log_id, latest)
            if stored.root != root:
                raise self._refuse(log_id, f"checkpoint {size}: stored root differs from the tree")
            if remembered is None or remembered[0].size < size:
                self._state.save(origin, latest.note)
            self._witness(log_id, latest)  # a witness write that failed earlier: again
            self._cosign(log_id, latest)
            return latest
        if latest is not None:
            self._check_extends(log_id, self._open_stored(log_id, latest), size, root, "stored")
        # the rows added since the last signature must be what the tree
        # commits to: a row rewritten under intact nodes is never signed over
        checked = max(remembered[0].size if remembered else 0, latest.size if latest else 0)
        self._check_rows(log_id, checked, size)
        if remembered is None and latest is not None:
            log.warning("signer_state_started", log=LOG_NAMES[log_id], from_size=latest.size)
        note = sign_checkpoint(Checkpoint(origin, size, root), self._keys.signer(log_id))
        self._state.save(origin, note)  # durable before the note is stored or published
        stored_cp = self._reads.add_checkpoint(
            StoredCheckpoint(log_id, size, root, note, self._clock())
        )
        if stored_cp.root != root:
            raise self._refuse(log_id, f"fork: size {size} signed with another root")
        if stored_cp.note == note:
            log.info("checkpoint_signed", log=LOG_NAMES[log_id], size=size, root=root.hex())
        else:  # another server stored its note of this size first: same tree
            self._state.save(origin, stored_cp.note)
        self._witness(log_id, stored_cp)
        self._cosign(log_id, stored_cp)
        return stored_cp

    def check_tail(self, log_id: int, max_rows: int = START_CHECK_ROWS) -> int:
        """At start: the newest unsigned rows (at most ``max_rows``) must be
        what the tree commits to, and the last leaf the head's entry;
        IntegrityError otherwise, before anything is served or written
        (rows rewritten under intact nodes). A database that is not an
        extension of what this signer signed (rolled back, forked, another
        one) is logged critically here and never signed (``issue``).
        Returns the rows checked."""
        origin = self._keys.origin(log_id)
        size, last_hash = self._reads.head(log_id)
        if size == 0:
            return 0
        self._check_last_leaf(log_id, size, last_hash)
        root = tree_hash(size, lambda keys: self._reads.nodes(log_id, keys))
        signed = 0
        try:
            with self._state.locked(origin):
                remembered = self._state.load(origin, self._keys.verifiers(log_id))
            latest = self._reads.latest_checkpoint(log_id)
            if remembered is not None:
                self._check_extends(log_id, remembered[0], size, root, "the last one signed")
                signed = remembered[0].size
            if latest is not None and latest.size <= size:
                self._check_extends(log_id, self._open_stored(log_id, latest), size, root, "stored")
                signed = max(signed, latest.size)
        except IntegrityError:  # logged by _refuse; every signature will refuse too
            log.critical("started_on_an_unsigned_history", log=LOG_NAMES[log_id])
            signed = 0
        first = max(signed, size - max_rows)
        self._check_rows(log_id, first, size)
        return size - first

    def issue_if_grown(self, log_id: int) -> StoredCheckpoint | None:
        """The scheduled issue: sign if the log grew (and hand the latest
        checkpoint to the witness again if that failed before)."""
        latest = self._reads.latest_checkpoint(log_id)
        size, _ = self._reads.head(log_id)
        if size == 0:
            return None
        if latest is not None and latest.size == size:
            self._witness(log_id, latest)
            if self._witnesses and len(self._reads.cosignatures(log_id, size)) < len(
                self._witnesses
            ):
                self.issue(log_id)  # checks the tree again, then asks the witnesses missing
            return None
        return self.issue(log_id)

    def _check_last_leaf(self, log_id: int, size: int, last_hash: bytes) -> None:
        if size == 0:
            return
        (entry,) = self._reads.entries(log_id, size, size)
        stored_leaf = self._reads.nodes(log_id, [(0, size - 1)])[(0, size - 1)]
        if entry.stored_hash != last_hash or leaf_hash(entry.data) != stored_leaf:
            raise self._refuse(log_id, f"entry {size} does not match the head or its tree leaf")

    def _check_rows(self, log_id: int, after: int, size: int) -> None:
        """Entries ``after + 1 .. size``: each row's canonical bytes hash to
        its stored hash and to its tree leaf (level 0), and none is missing."""
        for lo in range(after + 1, size + 1, _ROWS_PER_READ):
            hi = min(size, lo + _ROWS_PER_READ - 1)
            entries = self._reads.entries(log_id, lo, hi)
            if [e.sequence for e in entries] != list(range(lo, hi + 1)):
                found = {e.sequence for e in entries}
                missing = next(n for n in range(lo, hi + 1) if n not in found)
                raise self._refuse(log_id, f"entry {missing} is missing from the database")
            leaves = self._reads.nodes(log_id, [(0, n - 1) for n in range(lo, hi + 1)])
            for entry in entries:
                if hashlib.sha256(entry.data).digest() != entry.stored_hash:
                    raise self._refuse(
                        log_id, f"entry {entry.sequence}: its row does not match its stored hash"
                    )
                if leaf_hash(entry.data) != leaves.get((0, entry.sequence - 1)):
                    raise self._refuse(
                        log_id, f"entry {entry.sequence}: its row does not match its tree leaf"
                    )

    def _open_stored(self, log_id: int, stored: StoredCheckpoint) -> Checkpoint:
        """A stored checkpoint as its signed note says (the root column is
        not signed: whoever rewrites the tree could rewrite that too)."""
        try:
            signed = open_with_any(
                stored.note, self._keys.verifiers(log_id), self._keys.origin(log_id)
            )
        except NoteError as err:
            raise self._refuse(log_id, f"checkpoint {stored.size} does not open: {err}") from None
        if (signed.size, signed.root) != (stored.size, stored.root):
            raise self._refuse(log_id, f"checkpoint {stored.size}: stored root differs from signed")
        return signed

    def _check_extends(
        self, log_id: int, prev: Checkpoint, size: int, root: bytes, which: str
    ) -> None:
        """The tree of ``size`` and ``root`` extends ``prev``: the same root
        at the same size, else a consistency proof from the stored nodes,
        verified against both roots."""
        if prev.size > size:
            raise self._refuse(log_id, f"the tree ({size}) is smaller than {which} ({prev.size})")
        if prev.size == size:
            if prev.root != root:
                raise self._refuse(log_id, f"another root than {which} at size {size}: a fork")
            return
        proof = consistency_proof(prev.size, size, lambda keys: self._reads.nodes(log_id, keys))
        try:
            verify_consistency(prev.size, size, proof, prev.root, root)
        except ProofError as err:
            raise self._refuse(
                log_id, f"not an extension of {which} (size {prev.size}): {err}"
            ) from None

    def _refuse(self, log_id: int, why: str) -> IntegrityError:
        log.critical("checkpoint_refused", log=LOG_NAMES[log_id], reason=why)
        return IntegrityError(f"checkpoint: refusing to sign the {LOG_NAMES[log_id]} log: {why}")

    def _witness_path(self, log_id: int, size: int) -> Path | None:
        if self._witness_dir is None:
            return None
        folder = self._witness_dir / safe_name(self._keys.origin(log_id))
        return folder / f"{size:020d}.note"

    def _check_witnessed(self, log_id: int, size: int, root: bytes) -> None:
        """Before signing: the tree extends the newest checkpoint the
        witness directory holds (a witness that saw a larger tree, or
        another root at some size, means the database is not the one the
        witness saw)."""
        if self._witness_dir is None:
            return
        folder = self._witness_dir / safe_name(self._keys.origin(log_id))
        try:
            names = sorted(p.name for p in folder.glob("*.note"))
        except OSError:
            return
        if not names:
            return
        newest = folder / names[-1]
        try:
            held = open_with_any(
                newest.read_text(encoding="utf-8"),
                self._keys.verifiers(log_id),
                self._keys.origin(log_id),
            )
        except (OSError, UnicodeDecodeError, NoteError):
            raise self._refuse(
                log_id, f"the witness's checkpoint {newest.name} does not open"
            ) from None
        self._check_extends(log_id, held, size, root, "the newest witnessed checkpoint")

    def _cosign(self, log_id: int, checkpoint: StoredCheckpoint) -> None:
        """Submit the checkpoint to each configured tlog-witness that has not
        cosigned it yet, and keep the cosignature. A witness that is down or
        refuses is logged and asked again at the next issue; one that holds
        a larger tree of this log raises the alarm (``witness_conflict``)."""
        if not self._witnesses:
            return
        have = self._reads.cosignatures(log_id, checkpoint.size)

        def proof_from(old: int) -> list[bytes]:
            return consistency_proof(
                old, checkpoint.size, lambda keys: self._reads.nodes(log_id, keys)
            )

        for witness in self._witnesses:
            name = witness.key.name
            if name in have:
                continue
            known = self._reads.cosigned_size(log_id, name)
            try:
                line = request_cosignature(
                    witness, checkpoint.note, checkpoint.size, proof_from, known
                )
            except WitnessConflict as err:
                log.critical(
                    "witness_conflict",
                    log=LOG_NAMES[log_id],
                    witness=name,
                    held=err.held,
                    size=checkpoint.size,
                )
                continue
            except WitnessError as err:
                log.error("witness_not_cosigned", log=LOG_NAMES[log_id], witness=name, why=str(err))
                continue
            self._reads.add_cosignature(log_id, checkpoint.size, name, line, self._clock())
            log.info(
                "checkpoint_cosigned", log=LOG_NAMES[log_id], size=checkpoint.size, witness=name
            )

    def _witness(self, log_id: int, checkpoint: StoredCheckpoint) -> None:
        """Hand the note to the witness directory: one file per checkpoint,
        created exclusively, never overwritten. A write that fails is logged
        and tried again with the next issue of that size."""
        path = self._witness_path(log_id, checkpoint.size)
        if path is None or path.exists():
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as out:
                out.write(checkpoint.note.encode())
                out.flush()
                os.fsync(out.fileno())
        except FileExistsError:
            return  # another server handed it over first
        except OSError:
            log.error("witness_write_failed", log=LOG_NAMES[log_id], size=checkpoint.size)
