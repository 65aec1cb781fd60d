"""The verifiable logs over the wire: signed checkpoints, inclusion and
consistency proofs checked with only the published verifier key, a till's
receipt for its own entry, every call in the access log, and the ledger
refusing to answer when the access log cannot be written (fail closed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from loyalty.audit.v1 import audit_pb2 as upb
from loyalty.ledger.v1 import ledger_pb2 as pb

from access.principal import Role
from audit.merkle import leaf_hash, mth, verify_consistency, verify_inclusion
from audit.note import Verifier, open_checkpoint
from tests.conftest import ctx, head_sequence, key
from tests.test_auth_matrix import Secured
from tests.test_members import code_of, enroll, get, md

JOURNAL, ACCESS = upb.LOG_JOURNAL, upb.LOG_ACCESS


@pytest.fixture
def secured(db_url: str, tmp_path: Path) -> Iterator[Secured]:
    s = Secured(db_url, tmp_path)
    yield s
    s.close()


def earn(s: Secured, account: str, points: int = 10, channel: str = "pos-test") -> pb.EarnResponse:
    return s.stub.Earn(
        pb.EarnRequest(
            idempotency_key=key(),
            context=ctx(channel, store_id="store-0001"),
            member_account_id=account,
            points=points,
        ),
        metadata=md(s, Role.CHANNEL, channel=channel, subject=f"{channel}-till"),
    )


def checkpoint(s: Secured, log: int = JOURNAL, create: bool = True) -> tuple[int, bytes, str]:
    compliance = md(s, Role.COMPLIANCE)
    call = s.audit.CreateCheckpoint if create else s.audit.GetCheckpoint
    request = upb.CreateCheckpointRequest(log=log) if create else upb.GetCheckpointRequest(log=log)
    signed = call(request, metadata=compliance)
    cp, _ = open_checkpoint(signed.signed_note, [Verifier.from_key(signed.verifier_key)])
    assert (cp.origin, cp.size, cp.root) == (signed.origin, signed.tree_size, signed.root_hash)
    return cp.size, cp.root, signed.verifier_key


def test_checkpoint_root_is_the_merkle_root_of_the_entries(secured: Secured) -> None:
    account = enroll(secured)
    for points in (10, 20, 30):
        earn(secured, account, points)
    size, root, vkey = checkpoint(secured)
    assert size == head_sequence(secured.server) == 4  # the enrollment's profile entry, 3 earns
    assert vkey.startswith("loyalty-ledger.local/journal+")
    entries = secured.audit.GetEntries(
        upb.GetEntriesRequest(log=JOURNAL, start=1, count=size),
        metadata=md(secured, Role.COMPLIANCE),
    ).entries
    assert mth(list(entries)) == root
    # the same size again: the stored checkpoint, not a new signature
    assert checkpoint(secured)[:2] == (size, root)


def test_inclusion_and_consistency_proofs_verify(secured: Secured) -> None:
    account = enroll(secured)
    earned = [earn(secured, account, 5 + i) for i in range(5)]
    size1, root1, _ = checkpoint(secured)
    earned += [earn(secured, account, 50 + i) for i in range(6)]
    size2, root2, _ = checkpoint(secured)
    compliance = md(secured, Role.COMPLIANCE)
    for e in earned:
        proof = secured.audit.GetInclusionProof(
            upb.GetInclusionProofRequest(log=JOURNAL, sequence=e.entry.sequence, tree_size=size2),
            metadata=compliance,
        )
        assert proof.checkpoint.tree_size == size2
        verify_inclusion(leaf_hash(proof.entry), proof.leaf_index, size2, list(proof.hashes), root2)
    consistency = secured.audit.GetConsistencyProof(
        upb.GetConsistencyProofRequest(log=JOURNAL, size1=size1, size2=size2), metadata=compliance
    )
    verify_consistency(size1, size2, list(consistency.hashes), root1, root2)


def test_a_till_gets_a_receipt_for_its_own_entries_only(secured: Secured) -> None:
    account = enroll(secured)
    mine = earn(secured, account)
    theirs = earn(secured, account, channel="app-test")
    till = md(secured, Role.CHANNEL, channel="pos-test", subject="pos-test-till")
    receipt = secured.audit.GetInclusionProof(
        upb.GetInclusionProofRequest(log=JOURNAL, sequence=mine.entry.sequence), metadata=till
    )
    cp, _ = open_checkpoint(
        receipt.checkpoint.signed_note, [Verifier.from_key(receipt.checkpoint.verifier_key)]
    )
    assert cp.size >= mine.entry.sequence  # signed on demand to cover the entry
    verify_inclusion(
        leaf_hash(receipt.entry), receipt.leaf_index, cp.size, list(receipt.hashes), cp.root
    )
    for request in (
        upb.GetInclusionProofRequest(log=JOURNAL, sequence=theirs.entry.sequence),
        upb.GetInclusionProofRequest(log=ACCESS, sequence=1),
    ):
        code, _ = code_of(lambda r=request: secured.audit.GetInclusionProof(r, metadata=till))
        assert code == grpc.StatusCode.PERMISSION_DENIED


def test_every_call_is_in_the_access_log_and_provable(secured: Secured) -> None:
    account = enroll(secured)
    earn(secured, account)
    get(secured, account, "customer_support")
    code_of(lambda: get(secured, account, "customer_support", Role.ANALYST))  # denied
    size, root, _ = checkpoint(secured, ACCESS)
    # enroll, earn, get, denied get (the checkpoint call's own record comes after it)
    assert size == 4
    compliance = md(secured, Role.COMPLIANCE)
    records = secured.audit.GetEntries(
        upb.GetEntriesRequest(log=ACCESS, start=1, count=size), metadata=compliance
    ).entries
    assert mth(list(records)) == root
    from audit.access_format import decode_record

    decoded = [decode_record(r) for r in records]
    assert [(r.method.rsplit("/", 1)[1], r.decision) for r in decoded] == [
        ("Enroll", "allow"),
        ("Earn", "allow"),
        ("GetMember", "allow"),
        ("GetMember", "deny"),
    ]
    assert decoded[2].fields == "email,name,phone"  # names of what left, never values
    assert decoded[2].purpose == "customer_support" and decoded[2].member_account_id == account
    proof = secured.audit.GetInclusionProof(
        upb.GetInclusionProofRequest(log=ACCESS, sequence=3, tree_size=size), metadata=compliance
    )
    verify_inclusion(leaf_hash(proof.entry), 2, size, list(proof.hashes), root)


def _refuse_access_records(s: Secured, on: bool) -> None:
    """What a full disk or a broken table looks like to the ledger: every
    insert into access_log fails."""
    assert s.server.db is not None
    with s.server.db.writer.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_access BEFORE INSERT ON access_log "
                "BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END"
                if on
                else "DROP TRIGGER refuse_access"
            )
        elif on:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_access() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'disk full (test)'; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_access BEFORE INSERT ON access_log "
                "FOR EACH ROW EXECUTE FUNCTION refuse_access()"
            )
        else:
            conn.exec_driver_sql("DROP TRIGGER refuse_access ON access_log")


def test_no_answer_without_its_access_record(secured: Secured) -> None:
    account = enroll(secured)
    earn(secured, account)
    seq = head_sequence(secured.server)
    _refuse_access_records(secured, True)
    try:
        with pytest.raises(grpc.RpcError) as read:
            get(secured, account, "legal_request")
        assert read.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "Test Person" not in str(read.value)  # no data left without its record
        with pytest.raises(grpc.RpcError) as write:
            earn(secured, account)
        assert write.value.code() == grpc.StatusCode.UNAVAILABLE
        assert head_sequence(secured.server) == seq  # no entry without its record
        with pytest.raises(grpc.RpcError) as denied:
            get(secured, account, "legal_request", Role.ANALYST)
        assert denied.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        _refuse_access_records(secured, False)
    assert get(secured, account, "legal_request").profile.name == "Test Person"
    earn(secured, account)
    assert head_sequence(secured.server) == seq + 1


def test_checkpoint_refused_when_the_tree_was_tampered_with(secured: Secured) -> None:
    account = enroll(secured)
    for _ in range(4):
        earn(secured, account)
    checkpoint(secured)
    earn(secured, account)
    assert secured.server.db is not None
    with secured.server.db.writer.begin() as conn:  # an attacker with the database
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER merkle_nodes_no_update")
        else:
            conn.exec_driver_sql(
                "ALTER TABLE merkle_nodes DISABLE TRIGGER merkle_nodes_append_only"
            )
        conn.execute(
            sa.text("UPDATE merkle_nodes SET hash = :h WHERE log = 1 AND level = 2 AND idx = 0"),
            {"h": bytes(32)},
        )
    code, details = code_of(
        lambda: secured.audit.CreateCheckpoint(
            upb.CreateCheckpointRequest(log=JOURNAL), metadata=md(secured, Role.COMPLIANCE)
        )
    )
    assert code == grpc.StatusCode.DATA_LOSS and "refusing to sign" in details


def test_unknown_log_is_invalid(secured: Secured) -> None:
    code, details = code_of(
        lambda: secured.audit.GetCheckpoint(
            upb.GetCheckpointRequest(), metadata=md(secured, Role.COMPLIANCE)
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "log:" in details


def test_checkpoints_are_signed_on_a_schedule_and_witnessed(tmp_path: Path) -> None:
    import time

    from ledger.config import ServerConfig
    from ledger.server import LedgerServer

    witness = tmp_path / "witness"
    config = ServerConfig(
        data_dir=tmp_path,
        listen="127.0.0.1:0",
        auth="none",
        plaintext=True,
        checkpoint_interval=0.2,
        witness_dir=witness,
    )
    server = LedgerServer(config)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            from loyalty.ledger.v1 import ledger_pb2_grpc

            stub = ledger_pb2_grpc.LedgerServiceStub(channel)
            account = stub.OpenAccount(
                pb.OpenAccountRequest(idempotency_key=key(), context=ctx())
            ).member_account_id
            for _ in range(3):
                stub.Earn(
                    pb.EarnRequest(
                        idempotency_key=key(), context=ctx(), member_account_id=account, points=1
                    )
                )
        assert server.checkpointer is not None
        deadline = time.monotonic() + 10
        latest = None
        while time.monotonic() < deadline:
            latest = server.checkpointer.latest(1)
            folder = witness / "loyalty-ledger.local_journal"
            # the note is stored, then handed to the witness directory
            if latest is not None and latest.size == 3 and (folder / f"{3:020d}.note").exists():
                break
            time.sleep(0.1)
        assert latest is not None and latest.size == 3
        notes = sorted((witness / "loyalty-ledger.local_journal").iterdir())
        assert notes[-1].name == f"{3:020d}.note"
        assert notes[-1].read_text() == latest.note
    finally:
        server.stop(grace=1)


def test_checkpoint_refused_when_tree_and_stored_root_are_both_rewritten(secured: Secured) -> None:
    """The previous root comes from its signed note, not the unsigned column."""
    account = enroll(secured)
    for _ in range(4):
        earn(secured, account)
    checkpoint(secured)
    earn(secured, account)
    assert secured.server.db is not None
    with secured.server.db.writer.begin() as conn:
        sqlite = conn.dialect.name == "sqlite"
        for table in ("merkle_nodes", "checkpoints"):
            conn.exec_driver_sql(
                f"DROP TRIGGER {table}_no_update"
                if sqlite
                else f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only"
            )
        conn.execute(
            sa.text("UPDATE merkle_nodes SET hash = :h WHERE log = 1 AND level = 2 AND idx = 0"),
            {"h": bytes(32)},
        )
        conn.execute(sa.text("UPDATE checkpoints SET root = :h WHERE log = 1"), {"h": bytes(32)})
    code, details = code_of(
        lambda: secured.audit.CreateCheckpoint(
            upb.CreateCheckpointRequest(log=JOURNAL), metadata=md(secured, Role.COMPLIANCE)
        )
    )
    assert code == grpc.StatusCode.DATA_LOSS and "refusing to sign" in details


def test_update_without_its_record_changes_nothing(secured: Secured) -> None:
    from loyalty.members.v1 import members_pb2 as mpb

    account = enroll(secured)
    _refuse_access_records(secured, True)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            secured.members.UpdateMember(
                mpb.UpdateMemberRequest(
                    member_account_id=account,
                    profile=mpb.Profile(name="Test Renamed"),
                    fields=["name"],
                ),
                metadata=md(secured, Role.MEMBER_SERVICE),
            )
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        _refuse_access_records(secured, False)
    assert get(secured, account, "legal_request").profile.name == "Test Person"


def test_entries_beyond_the_log_are_empty_not_an_error(secured: Secured) -> None:
    response = secured.audit.GetEntries(
        upb.GetEntriesRequest(log=JOURNAL, start=2**63 - 1, count=1000),
        metadata=md(secured, Role.COMPLIANCE),
    )
    assert list(response.entries) == []


def test_anonymous_denials_cannot_grow_the_log_at_will(secured: Secured) -> None:
    """Each refused call without credentials is recorded up to a rate per
    peer; beyond it they are counted and recorded as one summary."""
    import time

    before = secured.server.checkpointer.issue(2).size if secured.server.checkpointer else 0
    for _ in range(200):
        code, _ = code_of(
            lambda: secured.stub.GetBalance(pb.GetBalanceRequest(member_account_id="mbr_x"))
        )
        assert code == grpc.StatusCode.UNAUTHENTICATED
    time.sleep(1.5)  # the summary is written once a second
    assert secured.server.db is not None
    with secured.server.db.reader.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT request_id, reason FROM access_log WHERE seq > :s ORDER BY seq"),
            {"s": before},
        ).all()
    assert len(rows) < 60  # not 200
    summaries = [r for r in rows if r.request_id == "summary"]
    counted = sum(int(r.reason.split()[0]) for r in summaries)
    assert counted + len(rows) - len(summaries) == 200  # every refusal is accounted for
