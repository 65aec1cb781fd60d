"""Translation between loyalty.members.v1 messages and member values.

Validation (through ledger/members/profile.py) happens here. Enroll's
idempotency fingerprint deliberately leaves the personal values out: the
idempotency table is append-only and outlives an erasure, so a hash of a
phone number there would be personal data nobody could erase. It covers
the idempotency key, channel context and which fields were sent; a replay
of the same key returns the first answer.
"""

from __future__ import annotations

import hashlib

from loyalty.members.v1 import members_pb2 as mpb

from ledger import validation as v
from ledger.commands import AccountOpened, MemberErased, Outcome, RequestMeta
from ledger.errors import ValidationError
from ledger.members.profile import STANDARD_FIELDS, ProfileRules

ERASURE_CHANNEL = "erasure"  # channel of erase entries and their idempotency keys
assert ERASURE_CHANNEL in v.RESERVED_CHANNELS  # so no caller can take its keys
ERASURE_REASONS = {
    mpb.ERASURE_REASON_MEMBER_REQUEST: "member_request",
    mpb.ERASURE_REASON_RETENTION_EXPIRED: "retention_expired",
    mpb.ERASURE_REASON_LEGAL_ORDER: "legal_order",
}


def profile_values(profile: mpb.Profile) -> dict[str, str]:
    """Every field of ``profile`` by name, custom ones included (unvalidated)."""
    values = {name: getattr(profile, name) for name in STANDARD_FIELDS}
    for name, value in profile.custom.items():
        if name in values:
            raise ValidationError(f"profile.custom.{name}", "is a standard field; set it directly")
        values[name] = value
    return values


def to_profile(values: dict[str, str]) -> mpb.Profile:
    profile = mpb.Profile()
    for name, value in values.items():
        if name in STANDARD_FIELDS:
            setattr(profile, name, value)
        else:
            profile.custom[name] = value
    return profile


def enroll_values(request: mpb.EnrollRequest, rules: ProfileRules) -> dict[str, str]:
    values = rules.clean(profile_values(request.profile))
    if not values.get("phone") and not values.get("email"):
        raise ValidationError("profile", "needs a phone or an e-mail (how the member is found)")
    return values


def enroll_meta(request: mpb.EnrollRequest) -> RequestMeta:
    shape = mpb.EnrollRequest(idempotency_key=request.idempotency_key, context=request.context)
    sent = ",".join(sorted(n for n, value in profile_values(request.profile).items() if value))
    digest = hashlib.sha256(
        b"Enroll\x00" + shape.SerializeToString(deterministic=True) + b"\x00" + sent.encode()
    )
    channel = v.channel_id(request.context.channel_id)
    return RequestMeta(channel, v.idempotency_key(request.idempotency_key), digest.digest())


def erase_meta(request: mpb.EraseMemberRequest) -> RequestMeta:
    digest = hashlib.sha256(b"EraseMember\x00" + request.SerializeToString(deterministic=True))
    key = v.idempotency_key(request.idempotency_key)
    return RequestMeta(ERASURE_CHANNEL, key, digest.digest())


def erasure_reason(request: mpb.EraseMemberRequest) -> str:
    reason = ERASURE_REASONS.get(request.reason)
    if reason is None:
        raise ValidationError("reason", "must be one of the ErasureReason values, not unspecified")
    return reason


def render_enroll(outcome: Outcome) -> bytes:
    assert isinstance(outcome, AccountOpened)
    response = mpb.EnrollResponse(member_account_id=outcome.account_id)
    return response.SerializeToString(deterministic=True)


def render_erase(outcome: Outcome) -> bytes:
    assert isinstance(outcome, MemberErased)
    response = mpb.EraseMemberResponse(
        member_account_id=outcome.account_id,
        forfeited_points=outcome.forfeited,
        erasure_sequence=outcome.sequence,
    )
    return response.SerializeToString(deterministic=True)
