"""gRPC handlers for loyalty.members.v1.MemberService (grpc.aio).

Enroll and EraseMember go through the appender (they open and close a
journal account in the same transaction as the member rows); the others
run in a worker thread. Personal values are decrypted only for the fields
the declared purpose shows, and leave only through the call's scope
(``access.scope.current().project``), which the gate set up; handlers never
decide who may see what.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import structlog
from loyalty.members.v1 import members_pb2 as mpb
from loyalty.members.v1 import members_pb2_grpc

from access import scope as call_scope
from access.purposes import fields_needed
from ledger import validation as v
from ledger.appender import Journal
from ledger.commands import Enroll, Erase, WriteProfile, new_member_account_id
from ledger.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    ProfileChangedError,
    ValidationError,
)
from ledger.keys.blind_index import EMAIL, PHONE
from ledger.keys.errors import DecryptionError
from ledger.keys.field_cipher import FieldCipher
from ledger.members.profile import ProfileRules
from ledger.members.vault import LOOKUP_KINDS, MemberVault
from ledger.service import member_messages as mm
from ledger.service.messages import entry_details
from ledger.service.observe import take_pending_record
from ledger.storage.members import MemberRecord, MemberStore

if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[object, object]

log = structlog.get_logger(__name__)

PROFILE_CHANNEL = "members"  # the channel of profile entries UpdateMember makes
_SEAL_ATTEMPTS = 3  # a data-key rotation between sealing and writing: seal again


def _opened(
    vault: MemberVault, record: MemberRecord, wanted: frozenset[str] | None
) -> dict[str, str | None]:
    try:
        return vault.open(record.account_id, record.keys, record.fields, wanted)
    except DecryptionError:
        log.error("member_data_undecryptable", member_account_id=record.account_id)
        raise IntegrityError("member data: a stored ciphertext failed to decrypt") from None


def taken_by_other(
    store: MemberStore, vault: MemberVault, values: dict[str, str], account: str = ""
) -> str | None:
    """The first of phone, e-mail that another member (not ``account``)
    already holds: candidates by blind index, then decrypt and compare."""
    for kind in LOOKUP_KINDS:
        value = values.get(kind)
        if not value:
            continue
        for record in store.candidates(kind, vault.token(kind, value)):
            if record.account_id == account or kind not in record.fields:
                continue
            if _opened(vault, record, frozenset({kind})).get(kind) == value:
                return kind
    return None


@dataclass
class EnrollChecks:
    """What the planner asks of an Enroll under the writers' lock: whether
    another member holds its phone or e-mail, and whether a replayed
    request is the first one's member. An object rather than closures, so
    the command pickles to the writer process (ledger/service/writer_link.py);
    the store and the vault do not travel: the writer attaches its own
    (``attach``) before the command is planned."""

    values: dict[str, str]
    store: MemberStore | None = None
    vault: MemberVault | None = None

    def __getstate__(self) -> dict[str, object]:
        return {"values": self.values, "store": None, "vault": None}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)

    def attach(self, store: MemberStore, vault: MemberVault) -> None:
        self.store, self.vault = store, vault

    def taken(self) -> str | None:
        assert self.store is not None and self.vault is not None, "attach() first"
        return taken_by_other(self.store, self.vault, self.values)

    def same_member(self, response: bytes) -> bool:
        """On a replay of Enroll: the first request's member holds these
        values (so a reused key with another person's data is a conflict,
        not a silent merge). An erased member cannot be compared: a replay."""
        assert self.store is not None and self.vault is not None, "attach() first"
        account = mpb.EnrollResponse.FromString(response).member_account_id
        try:
            record = self.store.load(account)
        except NotFoundError:
            return True
        try:
            stored = self.vault.open(account, record.keys, record.fields)
        except DecryptionError:
            return False
        return {n: value for n, value in stored.items() if value} == self.values


def attach_member_checks(command: object, store: MemberStore, vault: MemberVault) -> None:
    """In the writer process: give an arriving Enroll's checks this
    process's store and vault."""
    if isinstance(command, Enroll) and command.taken is not None:
        checks = getattr(command.taken, "__self__", None)
        if isinstance(checks, EnrollChecks):
            checks.attach(store, vault)


class MemberServicer(members_pb2_grpc.MemberServiceServicer):
    def __init__(
        self,
        *,
        appender: Journal,
        store: MemberStore,
        vault: MemberVault,
        rules: ProfileRules,
    ) -> None:
        self._appender = appender
        self._store = store
        self._vault = vault
        self._rules = rules

    async def Enroll(self, request: mpb.EnrollRequest, context: Context) -> bytes:
        meta = mm.enroll_meta(request)
        entry_details(request.context)  # store and order ids: scanned for personal data
        values = mm.enroll_values(request, self._rules)
        account = new_member_account_id()
        sealed = self._vault.seal_new(account, values)
        checks = EnrollChecks(values, self._store, self._vault)
        command = Enroll(
            meta,
            account,
            sealed,
            render=mm.render_enroll,
            same_member=checks.same_member,
            taken=checks.taken,
        )
        return await self._appender.append(command, take_pending_record())

    def _taken(self, values: dict[str, str], account: str = "") -> str | None:
        return taken_by_other(self._store, self._vault, values, account)

    async def EraseMember(self, request: mpb.EraseMemberRequest, context: Context) -> bytes:
        meta = mm.erase_meta(request)
        account = v.member_account_id(request.member_account_id)
        reason = mm.erasure_reason(request)
        command = Erase(meta, account, reason, render=mm.render_erase)
        return await self._appender.append(command, take_pending_record())

    async def GetMember(
        self, request: mpb.GetMemberRequest, context: Context
    ) -> mpb.GetMemberResponse:
        account = v.member_account_id(request.member_account_id)
        scope = call_scope.current()
        purpose = scope.purpose
        if purpose is None:  # the gate sets it for every GetMember
            raise ValidationError("purpose", "a read of personal data needs a declared purpose")
        record = await asyncio.to_thread(self._store.load, account)
        values = _opened(self._vault, record, fields_needed(purpose))
        shown = scope.project(values)
        return mpb.GetMemberResponse(
            member_account_id=account,
            purpose=purpose.name,
            profile=mm.to_profile(shown.values),
            masked_fields=shown.masked,
            withheld_fields=shown.withheld,
        )

    async def FindMember(
        self, request: mpb.FindMemberRequest, context: Context
    ) -> mpb.FindMemberResponse:
        kind = request.WhichOneof("key")
        if kind not in (PHONE, EMAIL):
            raise ValidationError("key", "set exactly one of phone or email")
        normalized = self._rules.clean_value(kind, getattr(request, kind), kind)
        token = self._vault.token(kind, normalized)
        records = await asyncio.to_thread(self._store.candidates, kind, token)
        matches = []
        for record in records:  # tokens are 32 bits: drop the false positives
            found = _opened(self._vault, record, frozenset({kind})) if kind in record.fields else {}
            if found.get(kind) == normalized:
                matches.append(record.account_id)
        if len(matches) == 1:
            call_scope.current().member = matches[0]  # the access record names who was found
        return mpb.FindMemberResponse(member_account_ids=matches)

    async def UpdateMember(
        self, request: mpb.UpdateMemberRequest, context: Context
    ) -> mpb.UpdateMemberResponse:
        account = v.member_account_id(request.member_account_id)
        if not request.fields:
            raise ValidationError("fields", "name at least one field to update")
        names = self._rules.check_names(request.fields, where="fields")
        sent = mm.profile_values(request.profile)
        unnamed = sorted(n for n, value in sent.items() if value and n not in names)
        if unnamed:  # minimization: nothing beyond what the update names
            raise ValidationError(f"profile.{unnamed[0]}", "is set but not named in fields")
        values = self._rules.clean({n: sent.get(n, "") for n in names})
        cleared = [n for n in names if n not in values]
        taken = await asyncio.to_thread(self._taken, values, account)
        if taken:
            raise ConflictError(f"profile.{taken}: another member is enrolled with it")

        record = take_pending_record()
        for attempt in range(_SEAL_ATTEMPTS):
            # sealed under the member's newest key; the writer checks it is
            # still the newest, and that the stored fields are the committed ones
            member = await asyncio.to_thread(self._store.load, account)
            cipher = _cipher(self._vault, member)
            command = WriteProfile(
                account,
                PROFILE_CHANNEL,
                fields=tuple((n, cipher.encrypt(n, value)) for n, value in sorted(values.items())),
                cleared=tuple(cleared),
                lookup_kinds=tuple(k for k in LOOKUP_KINDS if k in names),
                lookups=self._vault.lookups(values),
                dek_version=cipher.current,
            )
            try:
                # the access record is durable with the change, or neither is
                await self._appender.append(command, record)
                break
            except ProfileChangedError:
                record = None  # written with the first attempt
                if attempt == _SEAL_ATTEMPTS - 1:
                    raise
        return mpb.UpdateMemberResponse(updated_fields=names)


def _cipher(vault: MemberVault, record: MemberRecord) -> FieldCipher:
    try:
        return vault.cipher(record.account_id, record.keys)
    except DecryptionError:
        log.error("member_key_unwrap_failed", member_account_id=record.account_id)
        raise IntegrityError("member data: a wrapped data key failed to open") from None
