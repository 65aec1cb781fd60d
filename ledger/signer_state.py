"""What the log signer has signed, kept outside the database.

A checkpoint is only as good as the check before it is signed: the tree
being signed must extend the last tree signed. Checked only against the
``checkpoints`` table, that lets whoever controls the database (a DBA,
without the keyring) delete the rows and have the real key sign a
rolled-back, truncated, forked or swapped database. So the signer keeps
its own memory, beside the keyring, where the database's owner cannot
write: per log, the note of the last checkpoint it signed (one file,
replaced atomically and fsynced before the new checkpoint is stored or
published). Before every signature, the tree must be at least that size
and a proven extension of that root (ledger/checkpoints.py).

The note is kept as signed, so the state file is checked with the log's
own key when it is read: a damaged or foreign file stops signing (fails
closed) rather than being trusted. A keyring holder can still replace the
file; the witness (and an auditor's saved state) is the check against
that (docs/verification.md, the threat model).

Processes on one host (the writer, its workers, ``audit export``) share
the directory and are serialized by ``flock`` on a lock file per log.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import structlog

from audit.note import Checkpoint, NoteError, Verifier, open_with_any
from ledger.errors import IntegrityError

log = structlog.get_logger(__name__)

STATE_DIR_NAME = "signer-state"


def _safe(origin: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in origin)


class SignerState:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, origin: str) -> Path:
        return self.directory / f"{_safe(origin)}.note"

    @contextlib.contextmanager
    def locked(self, origin: str) -> Iterator[None]:
        """Exclusive across processes and threads (each call opens its own
        file description) while a checkpoint of ``origin`` is decided."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.directory / f"{_safe(origin)}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def load(
        self, origin: str, verifiers: Verifier | Sequence[Verifier]
    ) -> tuple[Checkpoint, str] | None:
        """The last checkpoint signed for ``origin`` and its note; None if
        this signer never signed one. IntegrityError if the file is there
        but does not open with the log's key or names another log."""
        path = self._path(origin)
        try:
            note = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as err:
            raise IntegrityError(
                f"signer state: cannot read {path.name}: {type(err).__name__}"
            ) from None
        try:
            checkpoint = open_with_any(note, verifiers, origin)
        except NoteError as err:
            log.critical("signer_state_invalid", origin=origin, reason=str(err))
            raise IntegrityError(
                f"signer state: {path.name} is not a checkpoint signed by this log's key: {err}"
            ) from None
        return checkpoint, note

    def save(self, origin: str, note: str) -> None:
        """Replace the state with ``note``, durably, before it is used."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_durably(self._path(origin), note)


def write_durably(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (a temporary file, fsync,
    rename, fsync of the directory), mode 0600: the file is either the old
    or the new text, even across a crash."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
