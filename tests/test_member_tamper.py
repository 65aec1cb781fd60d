"""Hostile edits of the member tables fail closed: the read is refused with
DATA_LOSS, nothing personal is returned or echoed. Named after the attack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from loyalty.members.v1 import members_pb2 as mpb

from access.principal import Role
from ledger.members import rotation
from ledger.storage.members import MemberStore
from tests.test_auth_matrix import Secured
from tests.test_members import enroll, get

ALICE = mpb.Profile(name="Test Alpha", email="alpha@example.invalid", postal_address="1 Test Row")
BOB = mpb.Profile(name="Test Bravo", email="bravo@example.invalid", postal_address="2 Test Row")


@pytest.fixture
def secured(db_url: str, tmp_path: Path) -> Iterator[Secured]:
    s = Secured(db_url, tmp_path)
    yield s
    s.close()


def _sql(s: Secured, text: str, **params: object) -> list[sa.Row]:
    assert s.server.db is not None
    with s.server.db.writer.begin() as conn:
        result = conn.execute(sa.text(text), params)
        return list(result) if result.returns_rows else []


def _field(s: Secured, account: str, field: str) -> bytes:
    ((blob,),) = _sql(
        s,
        "SELECT ciphertext FROM member_fields WHERE account_id = :a AND field = :f",
        a=account,
        f=field,
    )
    return bytes(blob)


def _set_field(s: Secured, account: str, field: str, blob: bytes) -> None:
    _sql(
        s,
        "UPDATE member_fields SET ciphertext = :b WHERE account_id = :a AND field = :f",
        b=blob,
        a=account,
        f=field,
    )


STALE = "not the one the journal last committed"  # profile freshness (ledger/members/freshness.py)


def _refused(s: Secured, account: str, why: str = STALE) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        get(s, account, "legal_request")
    assert caught.value.code() == grpc.StatusCode.DATA_LOSS
    details = caught.value.details() or ""
    assert why in details
    for value in ("Test Alpha", "Test Bravo", "alpha@", "bravo@", "Test Row"):
        assert value not in details


def test_ciphertext_swapped_between_members(secured: Secured) -> None:
    a, b = enroll(secured, ALICE), enroll(secured, BOB)
    blob_a, blob_b = _field(secured, a, "name"), _field(secured, b, "name")
    _set_field(secured, a, "name", blob_b)
    _set_field(secured, b, "name", blob_a)
    _refused(secured, a)
    _refused(secured, b)


def test_ciphertext_swapped_between_fields(secured: Secured) -> None:
    a = enroll(secured, ALICE)
    name, address = _field(secured, a, "name"), _field(secured, a, "postal_address")
    _set_field(secured, a, "name", address)
    _set_field(secured, a, "postal_address", name)
    _refused(secured, a)


def test_bit_flip_in_ciphertext(secured: Secured) -> None:
    a = enroll(secured, ALICE)
    blob = bytearray(_field(secured, a, "email"))
    blob[-5] ^= 0x01
    _set_field(secured, a, "email", bytes(blob))
    _refused(secured, a)


def test_old_ciphertext_replayed_after_data_key_rotation(secured: Secured) -> None:
    a = enroll(secured, ALICE)
    old = _field(secured, a, "name")
    assert secured.server.db is not None and secured.server.vault is not None
    store = MemberStore(secured.server.db)
    assert secured.server.appender is not None
    assert rotation.rotate_member_key(secured.server.appender, store, secured.server.vault, a) == 2
    assert get(secured, a, "legal_request").profile.name == "Test Alpha"  # rotated: still reads
    assert _field(secured, a, "name") != old
    _set_field(secured, a, "name", old)  # the v1 key still exists (journal details)
    _refused(secured, a)


def test_wrapped_data_key_swapped_between_members(secured: Secured) -> None:
    a, b = enroll(secured, ALICE), enroll(secured, BOB)
    rows = {
        r.account_id: bytes(r.wrapped)
        for r in _sql(secured, "SELECT account_id, wrapped FROM member_keys")
    }
    _sql(secured, "UPDATE member_keys SET wrapped = :w WHERE account_id = :a", w=rows[b], a=a)
    _refused(secured, a, "decrypt")
    assert get(secured, b, "legal_request").profile.name == "Test Bravo"  # b untouched


def test_retired_kek_fails_closed(secured: Secured) -> None:
    a = enroll(secured, ALICE)
    assert secured.server.vault is not None
    keyring = secured.server.vault.keyring
    keyring.rotate()
    keyring.retire(1)  # retired although a data key still uses it (the CLI refuses this)
    _refused(secured, a, "decrypt")


def test_find_member_does_not_reveal_tampered_rows(secured: Secured) -> None:
    a = enroll(secured, ALICE)
    blob = bytearray(_field(secured, a, "email"))
    blob[-1] ^= 0x80
    _set_field(secured, a, "email", bytes(blob))
    pos = (("authorization", f"Bearer {secured.token(Role.CHANNEL)}"),)
    with pytest.raises(grpc.RpcError) as caught:
        secured.members.FindMember(
            mpb.FindMemberRequest(email="alpha@example.invalid"), metadata=pos
        )
    assert caught.value.code() == grpc.StatusCode.DATA_LOSS
