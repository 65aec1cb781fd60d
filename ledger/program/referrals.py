"""Referral anti-abuse: whether a referral may be registered, and why not.

Pure. The appender loads the facts (counts within the window, shared
lookup tokens, the device the referrer was referred with); the planner
adds what its own batch registered, and asks ``refusal``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.program.config import Program
from ledger.program.lots import Family

SELF_REFERRAL = "SELF_REFERRAL"
REFERRAL_CYCLE = "REFERRAL_CYCLE"
ALREADY_REFERRED = "ALREADY_REFERRED"
NOT_NEW_MEMBER = "NOT_NEW_MEMBER"
REFERRER_LIMIT = "REFERRER_LIMIT"
DEVICE_LIMIT = "DEVICE_LIMIT"

EXPLAINED = {
    SELF_REFERRAL: "the referrer and the referred member look like one person "
    "(same phone, e-mail or device)",
    REFERRAL_CYCLE: "the referred member referred the referrer",
    ALREADY_REFERRED: "the member was referred already",
    NOT_NEW_MEMBER: "the member has bought before: only new members can be referred",
    REFERRER_LIMIT: "the referrer reached the program's referrals per window",
    DEVICE_LIMIT: "this device reached the program's referrals per window",
}


@dataclass(frozen=True, slots=True)
class ReferralFacts:
    referrer_recent: int  # referrals the referrer made within the window
    device_recent: int  # referrals made with the referred device within the window
    shared_lookup: bool  # referrer and referred share a phone or e-mail token
    referrer_device: bytes  # device token the referrer was referred with (b"": none)


def refusal(
    program: Program,
    referrer: Family,
    referred: Family,
    facts: ReferralFacts,
    device: bytes,
    referrer_device: bytes,
) -> str | None:
    """The reason code that refuses this referral, or None."""
    rules = program.referrals
    if facts.shared_lookup or (
        device and device in {referrer_device, facts.referrer_device} - {b""}
    ):
        return SELF_REFERRAL
    if referrer.stats.referrer == referred.owner:
        return REFERRAL_CYCLE
    if referred.stats.referrer:
        return ALREADY_REFERRED
    if referred.stats.bought:
        return NOT_NEW_MEMBER
    if facts.referrer_recent >= rules.max_per_referrer:
        return REFERRER_LIMIT
    if device and facts.device_recent >= rules.max_per_device:
        return DEVICE_LIMIT
    return None
