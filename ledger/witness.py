"""``loyalty-ledger witness``: a C2SP tlog-witness (https://c2sp.org/tlog-witness).

A process of its own, run by a second party, with its own key and state:

    POST /add-checkpoint      body: "old <size>\\n" <proof lines, base64> "\\n" <checkpoint note>

For each log it is configured with (by the log's verifier key, whose name is
the log's origin) it keeps the latest checkpoint it cosigned, and cosigns a
new one only when the note verifies under that key and the tree is a proven
extension of it (RFC 6962 consistency proof). Answers, as the protocol says:
404 unknown origin, 403 no trusted signature, 400 malformed or old > size,
409 (body: the size it holds, ``text/x.tlog.size``) when ``old`` is not
that size or the same size has another root, 422 a proof that does not
verify, 200 with the cosignature line. The check and the update of the
state are one step under a lock, and the state is fsynced before the
answer: a witness never cosigns a smaller or forked tree, whoever asks.

State directory: ``witness.key`` (the Ed25519 seed, mode 0600, made on first
start) and one ``<origin>.checkpoint`` file per log (the latest cosigned
note, replaced atomically).
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.cosignature import Cosigner
from audit.merkle import ProofError, verify_consistency
from audit.note import Checkpoint, NoteError, Verifier, open_checkpoint
from ledger.signer_state import write_durably

log = structlog.get_logger(__name__)

MAX_BODY = 64 * 1024
MAX_PROOF_LINES = 63
SIZE_TYPE = "text/x.tlog.size"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"


def _safe(origin: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in origin)


def load_cosigner(state_dir: Path, name: str) -> Cosigner:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "witness.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(os.urandom(32))
            out.flush()
            os.fsync(out.fileno())
    seed = path.read_bytes()
    if len(seed) != 32:
        raise ValueError(f"{path}: expected a 32-byte Ed25519 seed")
    return Cosigner(name, Ed25519PrivateKey.from_private_bytes(seed))


class Witness:
    def __init__(self, cosigner: Cosigner, logs: list[Verifier], state_dir: Path) -> None:
        self.cosigner = cosigner
        self._logs: dict[str, list[Verifier]] = {}
        for verifier in logs:
            self._logs.setdefault(verifier.name, []).append(verifier)
        self._dir = state_dir
        self._lock = threading.Lock()

    def _state_path(self, origin: str) -> Path:
        return self._dir / f"{_safe(origin)}.checkpoint"

    def latest(self, origin: str) -> Checkpoint | None:
        path = self._state_path(origin)
        if not path.exists():
            return None
        checkpoint, _ = open_checkpoint(path.read_text("utf-8"), self._logs[origin], origin=origin)
        return checkpoint

    def _save(self, origin: str, note: str) -> None:
        write_durably(self._state_path(origin), note)

    def add_checkpoint(self, body: bytes) -> Answer:
        try:
            old, proof, note = _parse(body)
        except ValueError as err:
            return Answer(400, f"{err}\n".encode())
        origin = note.split("\n", 1)[0]
        verifiers = self._logs.get(origin)
        if verifiers is None:
            return Answer(404, b"unknown log origin\n")
        try:
            checkpoint, _ = open_checkpoint(note, verifiers, origin=origin)
        except NoteError:
            return Answer(403, b"no signature by a trusted log key verifies\n")
        if old > checkpoint.size:
            return Answer(400, b"old size is larger than the checkpoint's\n")
        with self._lock:
            latest = self.latest(origin)
            held = latest.size if latest else 0
            if old != held:
                return Answer(409, f"{held}\n".encode(), SIZE_TYPE)
            if latest is not None and old == checkpoint.size:
                if latest.root != checkpoint.root:
                    log.critical("witness_fork", origin=origin, size=old)
                    return Answer(409, f"{held}\n".encode(), SIZE_TYPE)
            elif old == 0:
                if proof:
                    return Answer(422, b"the proof must be empty from size 0\n")
            else:
                assert latest is not None
                try:
                    verify_consistency(old, checkpoint.size, proof, latest.root, checkpoint.root)
                except ProofError:
                    log.critical(
                        "witness_inconsistent", origin=origin, old=old, size=checkpoint.size
                    )
                    return Answer(422, b"the consistency proof does not verify\n")
            text = note[: note.rfind("\n\n") + 1]
            self._save(origin, note)
            line = self.cosigner.cosign(text, int(time.time()))
        log.info("witness_cosigned", origin=origin, size=checkpoint.size)
        return Answer(200, line.encode())


def _parse(body: bytes) -> tuple[int, list[bytes], str]:
    if len(body) > MAX_BODY:
        raise ValueError("request too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("request is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise ValueError("expected an empty line before the checkpoint")
    lines = head.split("\n")
    first = lines[0]
    number = first.removeprefix("old ")
    if first == number or not number.isdigit() or (number != "0" and number.startswith("0")):
        raise ValueError("expected 'old <size>' first")
    proof_lines = lines[1:]
    if len(proof_lines) > MAX_PROOF_LINES:
        raise ValueError("too many proof lines")
    proof = []
    for line in proof_lines:
        try:
            value = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a proof line is not base64") from None
        if len(value) != 32:
            raise ValueError("a proof line is not a 32-byte hash")
        proof.append(value)
    return int(number), proof, note


def serve(witness: Witness, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/add-checkpoint":
                answer = Answer(404, b"not found\n")
            else:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    answer = Answer(400, b"request too large\n")
                else:
                    answer = witness.add_checkpoint(self.rfile.read(length))
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format: str, *args: object) -> None:
            return  # structlog lines above, no access log of peers

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
