"""How a batch writes members' profiles: the ``profile`` entries.

Every write of a member's fields (enrollment with fields, UpdateMember, a
data-key rotation) appends one ``profile`` entry committing to the digests
of all the member's field ciphertexts after the write
(audit/profile_format.py), in the same transaction as the rows. Before
it commits anew, the batch checks the stored fields against the newest
commitment (ledger/members/freshness.py), so a write never launders a
field someone put back outside the ledger into a new commitment.

Functions over a ``BatchPlanner`` (its state is the batch's), like every
family of commands in ledger/planner/.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from audit.profile_format import KIND_PROFILE, ProfileCommitment, field_digest
from ledger.commands import WriteProfile
from ledger.errors import ConflictError, MemberErasedError, NotFoundError, ProfileChangedError
from ledger.members.freshness import ProfileState, check_fresh

if TYPE_CHECKING:
    from ledger.planner.batch import BatchPlanner


def write_profile(planner: BatchPlanner, cmd: WriteProfile) -> bytes:
    """Apply one profile write; b"" (the servicer answers by itself)."""
    state = planner.profiles.get(cmd.account)
    if (state is not None and state.closed) or planner.closed_in_batch(cmd.account):
        raise MemberErasedError()
    if state is None or state.dek_version == 0:  # every member has a data key
        raise NotFoundError("member_account_id: no such member")
    check_fresh(
        cmd.account,
        state.stored,
        state.committed,
        committed_seq=state.committed_seq,
        legacy_ok=planner.legacy_ok,
    )
    if cmd.new_wrapped:  # rotation: every field, under the next key version
        if state.dek_version != cmd.dek_version - 1 or dict(cmd.replaces) != state.stored:
            raise ProfileChangedError()
        stored = {n: field_digest(b) for n, b in cmd.fields}
    elif cmd.fields or cmd.cleared:
        if cmd.fields and state.dek_version != cmd.dek_version:
            raise ProfileChangedError()  # sealed under a key rotated meanwhile
        stored = dict(state.stored)
        for name in cmd.cleared:
            stored.pop(name, None)
        stored.update((n, field_digest(b)) for n, b in cmd.fields)
    elif state.committed is not None:
        return b""  # a commitment of what is committed already: nothing to do
    else:
        stored = dict(state.stored)  # commit a profile stored before commitments
    clash = next((k for k in cmd.lookups if k in planner.lookups), None)
    if clash:
        raise ConflictError(f"profile.{clash[0]}: another member is enrolled with it")
    planner.lookups.update(cmd.lookups)
    commit_profile(planner, cmd.account, cmd.channel_id, stored)
    if cmd.new_wrapped:
        state.dek_version = cmd.dek_version
    planner.profile_writes.append(cmd)
    return b""


def commit_profile(
    planner: BatchPlanner, account: str, channel_id: str, stored: Mapping[str, bytes]
) -> int:
    """Append the ``profile`` entry for ``stored`` (field -> ciphertext
    digest) and index it; returns its sequence."""
    data = ProfileCommitment(account, tuple(sorted(stored.items()))).encode()
    seq = planner.post_entry(KIND_PROFILE, channel_id, data)
    planner.commitments.append((account, seq))
    state = planner.profiles.setdefault(account, ProfileState(0, {}, None))
    state.stored = dict(stored)
    state.committed = dict(stored)
    state.committed_seq = seq
    return seq
