"""Receipts of the client SDK (loyalty_client.receipts) against a real
ledger over TLS with a channel token: what a till keeps with a sale and can
show later, verified with nothing but the journal's published key.

test_client_sdk.py checks a good receipt and a proof, note or size altered
on the wire; here the forgeries a dishonest server (or a tampered receipt
file) would try: a checkpoint signed by a key that is not the published one
under the journal's own name, an altered signature or root, an entry with
inflated points proven against a forged root, another entry's proof, a
kept receipt edited on disk, the wrong log's origin, a malformed key; and
who may ask for a receipt at all (a channel proves only its own entries).
All data is fake."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from loyalty.audit.v1 import audit_pb2 as apb

from access.principal import Role
from access.tokens import TokenIssuer, load_or_create_signing_key
from audit.entry_format import decode_entry
from audit.merkle import leaf_hash, root_from_inclusion
from audit.note import Checkpoint, Signer, sign_checkpoint
from loyalty_client import LedgerClient, PermissionDenied, ReceiptError, credentials
from loyalty_client.receipts import Receipt, verify_receipt
from tests.support.sdk import FAST, Ledger, running_ledger


@pytest.fixture
def ledger(db_url: str, tmp_path: Path) -> Iterator[Ledger]:
    with running_ledger(db_url, tmp_path) as found:
        yield found


@pytest.fixture
def sale(ledger: Ledger) -> tuple[str, int, apb.InclusionProof, Receipt]:
    """A member with a few entries, the proof and receipt of the middle earn."""
    with ledger.client() as c:
        account = c.open_account()
        c.earn(account, 5)
        earned = c.earn(account, 70, external_id="ORD-TEST-0042")
        c.earn(account, 6)
        receipt = c.receipt(earned.entry, public_key=ledger.journal_key)
        proof = c.call(
            c.audit.GetInclusionProof,
            apb.GetInclusionProofRequest(log=apb.LOG_JOURNAL, sequence=earned.entry.sequence),
        )
    return account, earned.entry.sequence, proof, receipt


def _copy(proof: apb.InclusionProof) -> apb.InclusionProof:
    out = apb.InclusionProof()
    out.CopyFrom(proof)
    return out


def test_a_receipt_proves_the_entry_the_write_answered_with(
    ledger: Ledger, sale: tuple[str, int, apb.InclusionProof, Receipt]
) -> None:
    account, seq, _, receipt = sale
    assert receipt.sequence == seq and receipt.leaf_index == seq - 1
    assert receipt.entry.member_account() == account
    assert any(p.points == 70 and p.to_account.startswith(account) for p in receipt.entry.postings)
    # by sequence alone (no hash to compare): still proven against the key
    with ledger.client() as c:
        again = c.receipt(seq, public_key=ledger.journal_key)
        assert again.entry_hash == receipt.entry_hash
        # the log grows; a kept receipt still verifies, and a newer one too
        c.earn(account, 1)
        newer = c.receipt(seq, public_key=ledger.journal_key)
    assert newer.entry_hash == receipt.entry_hash
    assert Receipt.from_json(receipt.to_json(), ledger.journal_key).tree_size == receipt.tree_size


def test_a_checkpoint_signed_by_another_key_under_the_journals_name_is_refused(
    ledger: Ledger, sale: tuple[str, int, apb.InclusionProof, Receipt]
) -> None:
    _, seq, proof, receipt = sale
    # a dishonest server inflates the entry, recomputes the root from the
    # real siblings and signs that tree with a key of its own, same origin
    entry = decode_entry(proof.entry)
    inflated = dataclasses.replace(
        entry, postings=tuple(dataclasses.replace(p, points=p.points * 100) for p in entry.postings)
    )
    forged_bytes = inflated.encode()
    origin = Checkpoint.parse(receipt.checkpoint.split("\n\n")[0] + "\n").origin
    forged_root = root_from_inclusion(
        leaf_hash(forged_bytes), proof.leaf_index, proof.tree_size, list(proof.hashes)
    )
    forger = Signer.generate(origin)
    forged = _copy(proof)
    forged.entry = forged_bytes
    forged.checkpoint.signed_note = sign_checkpoint(
        Checkpoint(origin, proof.tree_size, forged_root), forger
    )
    # the forgery is internally consistent: it verifies with the forger's key...
    verify_receipt(forged, forger.verifier_key(), sequence=seq)
    # ...and never with the published one
    with pytest.raises(ReceiptError, match="published key"):
        verify_receipt(forged, ledger.journal_key, sequence=seq)
    # nor does the genuine note over the inflated bytes
    mixed = _copy(forged)
    mixed.checkpoint.signed_note = proof.checkpoint.signed_note
    with pytest.raises(ReceiptError, match="not in the signed tree"):
        verify_receipt(mixed, ledger.journal_key, sequence=seq)


def test_an_altered_signature_or_root_is_refused(
    ledger: Ledger, sale: tuple[str, int, apb.InclusionProof, Receipt]
) -> None:
    _, seq, proof, _ = sale
    text, _, signatures = proof.checkpoint.signed_note.partition("\n\n")
    name, sig = signatures.rstrip("\n").split(" ", 2)[1:]
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 0x01  # one bit of the Ed25519 signature
    flipped = _copy(proof)
    flipped.checkpoint.signed_note = (
        f"{text}\n\n\u2014 {name} {base64.b64encode(bytes(raw)).decode()}\n"
    )
    cp = Checkpoint.parse(text + "\n")
    other_root = dataclasses.replace(cp, root=bytes(32))
    rerooted = _copy(proof)
    rerooted.checkpoint.signed_note = other_root.text() + "\n" + signatures
    unsigned = _copy(proof)
    unsigned.checkpoint.signed_note = text + "\n\n"
    missing = _copy(proof)
    missing.ClearField("checkpoint")
    for bad in (flipped, rerooted, unsigned, missing):
        with pytest.raises(ReceiptError):
            verify_receipt(bad, ledger.journal_key, sequence=seq)


def test_another_entrys_proof_is_not_this_entrys_receipt(
    ledger: Ledger, sale: tuple[str, int, apb.InclusionProof, Receipt]
) -> None:
    _, seq, proof, receipt = sale
    with ledger.client() as c:
        neighbour = c.call(
            c.audit.GetInclusionProof,
            apb.GetInclusionProofRequest(
                log=apb.LOG_JOURNAL, sequence=seq - 1, tree_size=proof.tree_size
            ),
        )
    # a genuine proof of entry seq - 1, presented as entry seq's receipt
    with pytest.raises(ReceiptError):
        verify_receipt(neighbour, ledger.journal_key, sequence=seq)
    with pytest.raises(ReceiptError, match="hash differs"):
        verify_receipt(
            neighbour, ledger.journal_key, sequence=seq - 1, entry_hash=receipt.entry_hash
        )
    # the right bytes at the wrong position in the same tree
    shifted = _copy(proof)
    shifted.leaf_index = neighbour.leaf_index
    shifted.ClearField("hashes")
    shifted.hashes.extend(neighbour.hashes)
    with pytest.raises(ReceiptError):
        verify_receipt(shifted, ledger.journal_key, sequence=seq)


def test_a_kept_receipt_edited_on_disk_is_refused(
    ledger: Ledger, sale: tuple[str, int, apb.InclusionProof, Receipt], tmp_path: Path
) -> None:
    _, _, _, receipt = sale
    kept = tmp_path / "receipt.json"
    kept.write_text(receipt.to_json())
    assert Receipt.from_json(kept.read_text(), ledger.journal_key).root == receipt.root
    data = json.loads(kept.read_text())

    def edited(**change: object) -> str:
        return json.dumps({**data, **change})

    entry = bytearray(bytes.fromhex(data["entry"]))
    entry[-1] ^= 0x01
    proof = [bytes(32).hex(), *data["proof"][1:]] if data["proof"] else [bytes(32).hex()]
    for text in (
        edited(entry=entry.hex()),
        edited(proof=proof),
        edited(sequence=data["sequence"] + 1),
        edited(tree_size=data["tree_size"] + 1),
        edited(checkpoint=data["checkpoint"].replace("\n\n", "\nextra\n\n", 1)),
    ):
        with pytest.raises(ReceiptError):
            Receipt.from_json(text, ledger.journal_key)


def test_wrong_origin_and_malformed_keys_are_refused(
    ledger: Ledger, sale: tuple[str, int, apb.InclusionProof, Receipt]
) -> None:
    _, seq, proof, receipt = sale
    text = receipt.checkpoint.split("\n\n")[0] + "\n"
    origin = Checkpoint.parse(text).origin
    assert origin.endswith("/journal")
    verify_receipt(proof, ledger.journal_key, sequence=seq, origin=origin)
    with pytest.raises(ReceiptError):
        verify_receipt(proof, ledger.journal_key, sequence=seq, origin=origin + "-other")
    for key in ("", "not a key", ledger.journal_key + "x", ledger.journal_key.split("+")[0]):
        with pytest.raises(ReceiptError):
            verify_receipt(proof, key, sequence=seq)


def test_a_channel_may_prove_only_its_own_entries(
    ledger: Ledger, sale: tuple[str, int, apb.InclusionProof, Receipt]
) -> None:
    _, seq, _, _ = sale
    issuer = TokenIssuer(load_or_create_signing_key(ledger.server.config.token_key_path))
    other = issuer.issue(
        subject="app-test-1", role=Role.CHANNEL, ttl_seconds=600, channel="app-test"
    ).token
    creds = credentials(ca_file=ledger.certs / "ca.pem", token=other)
    with LedgerClient(ledger.address, creds, channel_id="app-test", retry=FAST) as app:
        with pytest.raises(PermissionDenied) as denied:
            app.receipt(seq, public_key=ledger.journal_key)
        assert denied.value.field in ("", "sequence")
        account = app.open_account()
        own = app.earn(account, 3)
        assert app.receipt(own.entry, public_key=ledger.journal_key).sequence == own.entry.sequence
