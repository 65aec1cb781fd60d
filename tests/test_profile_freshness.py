"""Profile freshness (issue 13, item 6): a DBA who puts back an older
ciphertext of a member's field, or adds or deletes a field row, is caught.
Every profile write commits the digests of the member's ciphertexts to the
journal (a ``profile`` entry); reads and writes compare the stored fields
with the newest commitment, and ``loyalty-ledger verify`` checks every
member and the commitment index. Over the wire, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.members.v1 import members_pb2 as mpb

from access.principal import Role
from audit.profile_format import ProfileCommitment, field_digest
from ledger.cli import main as cli
from ledger.errors import IntegrityError
from ledger.members import rotation
from ledger.members.freshness import LEGACY_TASK
from ledger.storage.members import MemberStore
from ledger.verify import verify_database
from tests.conftest import key
from tests.test_auth_matrix import Secured
from tests.test_member_tamper import _field, _set_field
from tests.test_members import enroll, get, md
from tests.test_tamper import _drop_triggers

PROFILE = mpb.Profile(name="Test Fresh", phone="+86 138 0013 8111", postal_address="1 Test Row")
STALE = "not the one the journal last committed"


@pytest.fixture
def secured(db_url: str, tmp_path: Path) -> Iterator[Secured]:
    s = Secured(db_url, tmp_path)
    yield s
    s.close()


def _dba(s: Secured, text: str, **params: object) -> list[sa.Row]:
    """A statement run by a DBA who can drop the append-only triggers."""
    assert s.server.db is not None
    with s.server.db.writer.begin() as conn:
        _drop_triggers(conn)
        result = conn.execute(sa.text(text), params)
        return list(result) if result.returns_rows else []


def _update(s: Secured, account: str, profile: mpb.Profile, fields: list[str]) -> None:
    s.members.UpdateMember(
        mpb.UpdateMemberRequest(member_account_id=account, profile=profile, fields=fields),
        metadata=md(s, Role.MEMBER_SERVICE),
    )


def _code(call) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    try:
        call()
    except grpc.RpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


def _head(s: Secured) -> int:
    ((seq,),) = _dba(s, "SELECT seq FROM journal_head")
    return int(seq)


def _profile_entries(s: Secured, account: str) -> list[tuple[int, ProfileCommitment]]:
    rows = _dba(s, "SELECT seq, details FROM journal_entries WHERE kind = 'profile' ORDER BY seq")
    found = [(int(q), ProfileCommitment.decode(bytes(d))) for q, d in rows]
    return [(q, c) for q, c in found if c.account == account]


def _verify_cli(s: Secured, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    url = s.server.config.resolved_database_url()
    code = cli(["--log-level", "error", "verify", "--database-url", url])
    return code, capsys.readouterr().out


def test_every_profile_write_commits_its_ciphertexts(secured: Secured) -> None:
    account = enroll(secured, PROFILE)
    _update(secured, account, mpb.Profile(name="Test Fresh Two"), ["name", "postal_address"])
    entries = _profile_entries(secured, account)
    assert len(entries) == 2
    (_, first), (seq, second) = entries
    assert [n for n, _ in first.fields] == ["name", "phone", "postal_address"]
    assert [n for n, _ in second.fields] == ["name", "phone"]  # postal_address cleared
    assert second.digests["name"] == field_digest(_field(secured, account, "name"))
    assert second.digests["phone"] == first.digests["phone"]
    # the entry is part of the journal a verifier checks, and readable over the API
    assert verify_database(secured.server.db)  # type: ignore[arg-type]
    entry = secured.stub.GetEntry(
        pb.GetEntryRequest(sequence=seq), metadata=md(secured, Role.COMPLIANCE)
    ).entry
    assert entry.kind == pb.ENTRY_KIND_PROFILE and not entry.postings and not entry.details_withheld
    assert ProfileCommitment.decode(entry.details) == second
    assert get(secured, account, "legal_request").profile.name == "Test Fresh Two"


def test_an_older_ciphertext_put_back_is_refused(
    secured: Secured, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's attack: the value before an update, restored by a DBA,
    decrypts fine (same member, field and key) but is not the current one."""
    account = enroll(secured, PROFILE)
    old_phone = _field(secured, account, "phone")
    _update(secured, account, mpb.Profile(phone="+86 137 0013 7111"), ["phone"])
    assert get(secured, account, "legal_request").profile.phone == "+8613700137111"
    assert _verify_cli(secured, capsys)[0] == 0
    _set_field(secured, account, "phone", old_phone)

    code, details = _code(lambda: get(secured, account, "legal_request"))
    assert code == grpc.StatusCode.DATA_LOSS and STALE in details and "field phone" in details
    assert "138" not in details and "137" not in details
    # a lookup that reaches the member (by the current number's token) is refused too
    pos = md(secured, Role.CHANNEL)
    code, _ = _code(
        lambda: secured.members.FindMember(
            mpb.FindMemberRequest(phone="+86 137 0013 7111"), metadata=pos
        )
    )
    assert code == grpc.StatusCode.DATA_LOSS
    # an update of another field does not launder it into a new commitment
    before = _head(secured)
    code, _ = _code(lambda: _update(secured, account, mpb.Profile(name="Test Other"), ["name"]))
    assert code == grpc.StatusCode.DATA_LOSS
    assert _head(secured) == before and _field(secured, account, "phone") == old_phone
    # nor does a data-key rotation
    assert secured.server.db is not None and secured.server.vault is not None
    assert secured.server.appender is not None
    store = MemberStore(secured.server.db)
    with pytest.raises(IntegrityError):
        rotation.rotate_member_key(secured.server.appender, store, secured.server.vault, account)
    assert _head(secured) == before
    code, out = _verify_cli(secured, capsys)
    assert code == 1
    assert f"member {account}: profile: field phone differs from the committed ciphertext" in out


@pytest.mark.parametrize("attack", ["delete", "add"])
def test_a_field_row_deleted_or_added_is_refused(secured: Secured, attack: str) -> None:
    account = enroll(secured, PROFILE)
    address = _field(secured, account, "postal_address")
    if attack == "delete":
        _dba(
            secured, "DELETE FROM member_fields WHERE account_id = :a AND field = 'name'", a=account
        )
    else:  # the address the member cleared, put back
        _update(secured, account, mpb.Profile(), ["postal_address"])
        assert get(secured, account, "legal_request").profile.postal_address == ""
        _dba(
            secured,
            "INSERT INTO member_fields (account_id, field, ciphertext, updated_us)"
            " VALUES (:a, 'postal_address', :b, 0)",
            a=account,
            b=address,
        )
    code, details = _code(lambda: get(secured, account, "legal_request"))
    assert code == grpc.StatusCode.DATA_LOSS and STALE in details


def test_rollback_with_the_newest_commitment_hidden_is_found_by_verify(
    secured: Secured, capsys: pytest.CaptureFixture[str]
) -> None:
    """A DBA who also deletes the index row of the newest commitment makes
    the rolled-back field look current to readers (the journal itself is
    append-only and signed, the index is not); verify finds it."""
    account = enroll(secured, PROFILE)
    old_name = _field(secured, account, "name")
    _update(secured, account, mpb.Profile(name="Test Newer"), ["name"])
    (_, _), (newest, _) = _profile_entries(secured, account)
    _set_field(secured, account, "name", old_name)
    _dba(secured, "DELETE FROM profile_commitments WHERE seq = :q", q=newest)
    assert get(secured, account, "legal_request").profile.name == "Test Fresh"  # the gap
    code, out = _verify_cli(secured, capsys)
    assert code == 1
    assert "profile entries, the index" in out and "a commitment hidden from readers?" in out


def test_all_commitments_deleted_is_refused_once_older_profiles_were_committed(
    secured: Secured, capsys: pytest.CaptureFixture[str]
) -> None:
    account = enroll(secured, PROFILE)
    _dba(secured, "DELETE FROM profile_commitments WHERE account_id = :a", a=account)
    code, details = _code(lambda: get(secured, account, "legal_request"))
    assert code == grpc.StatusCode.DATA_LOSS and "no profile commitment" in details
    code, out = _verify_cli(secured, capsys)
    assert code == 1 and "holds fields the journal never committed to" in out


def test_an_index_row_pointing_elsewhere_is_refused(secured: Secured) -> None:
    a = enroll(secured, PROFILE)
    b = enroll(secured, mpb.Profile(name="Test Bee", email="bee@example.invalid"))
    ((b_seq,),) = _dba(secured, "SELECT seq FROM profile_commitments WHERE account_id = :b", b=b)
    _dba(secured, "INSERT INTO profile_commitments VALUES (:a, :q)", a=a, q=int(b_seq) + 100)
    code, details = _code(lambda: get(secured, a, "legal_request"))
    assert code == grpc.StatusCode.DATA_LOSS and "is not a profile entry of this member" in details


def test_rotation_commits_and_an_older_key_version_put_back_is_refused(secured: Secured) -> None:
    account = enroll(secured, PROFILE)
    before = _field(secured, account, "name")
    assert secured.server.db is not None and secured.server.vault is not None
    assert secured.server.appender is not None
    store = MemberStore(secured.server.db)
    version = rotation.rotate_member_key(
        secured.server.appender, store, secured.server.vault, account
    )
    assert version == 2
    entries = _profile_entries(secured, account)
    assert len(entries) == 2 and entries[1][1].digests["name"] != entries[0][1].digests["name"]
    assert get(secured, account, "legal_request").profile.name == "Test Fresh"
    # an update after the rotation seals under the new key and reads back
    _update(secured, account, mpb.Profile(name="Test Rotated"), ["name"])
    assert get(secured, account, "legal_request").profile.name == "Test Rotated"
    _set_field(secured, account, "name", before)
    code, _ = _code(lambda: get(secured, account, "legal_request"))
    assert code == grpc.StatusCode.DATA_LOSS


def test_erased_members_keep_their_commitments_and_verify(
    secured: Secured, capsys: pytest.CaptureFixture[str]
) -> None:
    account = enroll(secured, PROFILE)
    secured.members.EraseMember(
        mpb.EraseMemberRequest(
            idempotency_key=key("erase"),
            member_account_id=account,
            reason=mpb.ERASURE_REASON_MEMBER_REQUEST,
        ),
        metadata=md(secured, Role.KEY_CUSTODIAN),
    )
    assert len(_profile_entries(secured, account)) == 1  # digests only: nothing personal left
    code, details = _code(
        lambda: _update(secured, account, mpb.Profile(name="Test Ghost"), ["name"])
    )
    assert code == grpc.StatusCode.NOT_FOUND and "erased" in details
    assert _verify_cli(secured, capsys)[0] == 0


def test_profiles_stored_before_commitments_are_committed_at_start(
    db_url: str, tmp_path: Path
) -> None:
    """A database from before this release: members with fields, no
    commitment, no task marker. The next start commits them (one entry
    each) and records the task; from then on the check applies."""
    s = Secured(db_url, tmp_path)
    try:
        account = enroll(s, PROFILE)
        _dba(s, "DELETE FROM profile_commitments")
        _dba(s, "DELETE FROM done_tasks WHERE name = :n", n=LEGACY_TASK)
        assert get(s, account, "legal_request").profile.name == "Test Fresh"  # legacy: read
    finally:
        s.close()
    s = Secured(db_url, tmp_path)  # the restart
    try:
        entries = _profile_entries(s, account)
        assert len(entries) == 2  # the enrollment's, and the start-up's
        assert _dba(s, "SELECT seq FROM profile_commitments WHERE account_id = :a", a=account)
        assert _dba(s, "SELECT 1 FROM done_tasks WHERE name = :n", n=LEGACY_TASK)
        assert get(s, account, "legal_request").profile.name == "Test Fresh"
        _dba(s, "DELETE FROM member_fields WHERE account_id = :a AND field = 'name'", a=account)
        code, _ = _code(lambda: get(s, account, "legal_request"))
        assert code == grpc.StatusCode.DATA_LOSS
    finally:
        s.close()


def test_an_exported_journal_with_profile_entries_verifies_offline(
    db_url: str, tmp_path: Path
) -> None:
    """The offline verifier (audit verify, from a bundle and the public key)
    accepts profile entries as the docs define them."""
    from tests.support.process import run_cli

    if not db_url.startswith("sqlite"):
        pytest.skip("the bundle path is the same on both backends; SQLite is enough here")
    s = Secured(db_url, tmp_path)
    try:
        account = enroll(s, PROFILE)
        _update(s, account, mpb.Profile(name="Test Exported"), ["name"])
        assert len(_profile_entries(s, account)) == 2
        data = str(s.server.config.data_dir)
    finally:
        s.close()
    bundle = tmp_path / "journal.jsonl"
    run_cli("audit", "export", "--data-dir", data, "--log", "journal", "--out", str(bundle))
    keys = run_cli("audit", "public-key", "--data-dir", data).stdout.split()
    journal_key = next(k for k in keys if "+" in k and k.split("+")[0].endswith("/journal"))
    done = run_cli("audit", "verify", str(bundle), "--key", journal_key)
    assert done.stdout.rstrip().endswith("OK"), done.stdout
