"""Receipts: proof, checked on the client, that an entry is in the journal
the ledger publishes.

A receipt is the entry's canonical bytes, an RFC 9162 inclusion proof and
the signed C2SP checkpoint it leads to. ``verify_receipt`` trusts nothing
the server says about itself: the checkpoint must open with the journal's
*published* verifier key (``loyalty-ledger audit public-key``, given to the
channel out of band), the proof must lead from the entry's bytes to that
checkpoint's root, and the bytes must be the entry the write answered with
(its sequence, and its hash when given). A receipt kept with a sale is
evidence a store can show later, whatever happens to the database.

The checks reuse the project's offline verifier modules (audit/), which
ship in this distribution and need no server.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from loyalty.audit.v1 import audit_pb2 as apb

from audit.entry_format import EncodingError, JournalEntry, decode_entry
from audit.merkle import ProofError, leaf_hash, verify_inclusion
from audit.note import NoteError, Verifier, open_checkpoint


class ReceiptError(Exception):
    """The receipt does not prove what it claims: never trust the entry."""


@dataclass(frozen=True, slots=True)
class Receipt:
    sequence: int
    entry: JournalEntry  # decoded from the proven bytes
    entry_hash: bytes  # SHA-256 of the canonical bytes, as in Entry.hash
    leaf_index: int
    tree_size: int
    root: bytes
    proof: tuple[bytes, ...]
    checkpoint: str  # the signed note, byte for byte
    entry_bytes: bytes

    def to_json(self) -> str:
        """What to keep with the sale (verify again with ``Receipt.from_json``)."""
        return json.dumps(
            {
                "sequence": self.sequence,
                "entry": self.entry_bytes.hex(),
                "leaf_index": self.leaf_index,
                "tree_size": self.tree_size,
                "proof": [h.hex() for h in self.proof],
                "checkpoint": self.checkpoint,
            },
            sort_keys=True,
        )

    @staticmethod
    def from_json(text: str, public_key: str, origin: str | None = None) -> Receipt:
        """Parse a kept receipt and verify it again."""
        data = json.loads(text)
        return verify(
            entry_bytes=bytes.fromhex(data["entry"]),
            sequence=int(data["sequence"]),
            leaf_index=int(data["leaf_index"]),
            tree_size=int(data["tree_size"]),
            proof=[bytes.fromhex(h) for h in data["proof"]],
            checkpoint=str(data["checkpoint"]),
            public_key=public_key,
            origin=origin,
        )


def verify(
    *,
    entry_bytes: bytes,
    sequence: int,
    leaf_index: int,
    tree_size: int,
    proof: Sequence[bytes],
    checkpoint: str,
    public_key: str,
    origin: str | None = None,
    entry_hash: bytes | None = None,
) -> Receipt:
    try:
        verifier = Verifier.from_key(public_key.strip())
    except NoteError as err:
        raise ReceiptError(f"public_key: {err}") from None
    try:
        cp, _ = open_checkpoint(checkpoint, [verifier], origin)
    except NoteError as err:
        raise ReceiptError(f"checkpoint: not signed by the published key ({err})") from None
    if cp.size != tree_size:
        raise ReceiptError(f"checkpoint: signs size {cp.size}, the proof is for {tree_size}")
    if leaf_index != sequence - 1 or not 0 <= leaf_index < tree_size:
        raise ReceiptError(f"proof: leaf {leaf_index} is not entry {sequence} of {tree_size}")
    try:
        verify_inclusion(leaf_hash(entry_bytes), leaf_index, tree_size, list(proof), cp.root)
    except (ProofError, ValueError) as err:
        raise ReceiptError(f"proof: the entry is not in the signed tree ({err})") from None
    try:
        entry = decode_entry(entry_bytes)
    except EncodingError as err:
        raise ReceiptError(f"entry: not canonical entry bytes ({err})") from None
    digest = hashlib.sha256(entry_bytes).digest()
    if entry.sequence != sequence:
        raise ReceiptError(f"entry: is sequence {entry.sequence}, not {sequence}")
    if entry_hash is not None and digest != entry_hash:
        raise ReceiptError("entry: its hash differs from the one the write answered with")
    return Receipt(
        sequence=sequence,
        entry=entry,
        entry_hash=digest,
        leaf_index=leaf_index,
        tree_size=tree_size,
        root=cp.root,
        proof=tuple(proof),
        checkpoint=checkpoint,
        entry_bytes=entry_bytes,
    )


def verify_receipt(
    proof: apb.InclusionProof,
    public_key: str,
    *,
    sequence: int,
    entry_hash: bytes | None = None,
    origin: str | None = None,
) -> Receipt:
    """Verify an InclusionProof the ledger sent for ``sequence``."""
    if not proof.HasField("checkpoint"):
        raise ReceiptError("proof: no signed checkpoint for its tree size")
    return verify(
        entry_bytes=proof.entry,
        sequence=sequence,
        leaf_index=proof.leaf_index,
        tree_size=proof.tree_size,
        proof=list(proof.hashes),
        checkpoint=proof.checkpoint.signed_note,
        public_key=public_key,
        origin=origin,
        entry_hash=entry_hash,
    )
