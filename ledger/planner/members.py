"""Members joining and leaving: enrollment opens an account, erasure
forfeits its balance and closes it for good."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.entry_format import Posting
from ledger.commands import (
    KIND_ERASE,
    PROGRAM_FORFEITED,
    AccountOpened,
    Enroll,
    EntryDetails,
    Erase,
    MemberErased,
)
from ledger.errors import ConflictError, UnavailableError
from ledger.members.freshness import ProfileState, stored_digests
from ledger.planner.profiles import commit_profile
from ledger.program.lots import Family

if TYPE_CHECKING:
    from ledger.planner.batch import BatchPlanner


def enroll(planner: BatchPlanner, cmd: Enroll) -> AccountOpened:
    # one member per phone number and per e-mail address: against the
    # committed members (cmd.taken decrypts and compares) and this batch
    clash = next((k for k in cmd.sealed.lookups if k in planner.lookups), None)
    taken = clash[0] if clash else (cmd.taken() if cmd.taken else None)
    if taken:
        raise ConflictError(f"profile.{taken}: another member is enrolled with it")
    if cmd.account in planner.families:
        # 128 random bits collided: never in practice; nothing was written
        # (the account id is chosen before the batch: ciphertexts bind it)
        raise UnavailableError("member_account_id: generated id is taken; retry")
    planner.families[cmd.account] = Family(cmd.account, {cmd.account: 0})
    planner.opened.append(cmd.account)
    planner.enrolled.append(cmd)
    planner.lookups.update(cmd.sealed.lookups)
    planner.profiles[cmd.account] = ProfileState(cmd.sealed.dek_version, {}, None)
    if cmd.sealed.fields:  # the enrollment's entry: its fields' commitment
        fields = dict(cmd.sealed.fields)
        commit_profile(planner, cmd.account, cmd.meta.channel_id, stored_digests(fields))
    return AccountOpened(cmd.account)


def erase(planner: BatchPlanner, cmd: Erase) -> MemberErased:
    family = planner.family_of(cmd.account)
    postings = [
        Posting(a, PROGRAM_FORFEITED, n) for a, n in sorted(family.accounts.items()) if n > 0
    ]
    balance = sum(p.points for p in postings)
    seq = 0
    if postings:
        appended = planner.post(
            KIND_ERASE, cmd.meta.channel_id, 0, postings, EntryDetails(), cmd.account
        )
        seq = appended.entry.sequence
    for hold in list(family.holds.values()):
        family.holds.pop(hold.sequence)
        planner.holds.pop(hold.sequence, None)
        planner.ended_holds.append((hold.sequence, seq))
        planner.ended[hold.sequence] = (hold.owner, seq)
    family.closed = True
    planner.erased.append((cmd, seq or None))
    planner.head.epoch += 1  # tells other appenders their caches are stale
    return MemberErased(cmd.account, balance, seq)
