"""The liability view finance needs (IFRS 15): what the program owes in
points, and how points end (redeemed, expired, forfeited)."""

from __future__ import annotations

from loyalty.ledger.v1 import ledger_pb2 as pb

from audit.accounts import (
    ISSUED_PREFIX,
    PARTNER_PREFIX,
    PROGRAM_EXPIRED,
    PROGRAM_SETTLED,
    SHORTFALL_PREFIX,
    VOUCHER_PREFIX,
)
from audit.entry_format import PROGRAM_FORFEITED, PROGRAM_REDEEMED
from ledger.storage.journal_reads import Liability

STATES = ("available", "pending", "held")


def liability_message(found: Liability) -> pb.GetLiabilityResponse:
    program = found.program
    flows = sorted((a.removeprefix(PARTNER_PREFIX), f) for a, f in found.partner_flows.items())
    issued = -sum(n for a, n in program.items() if a.startswith(ISSUED_PREFIX))
    issued += sum(points_in for _, (_, points_in) in flows)
    expired = program.get(PROGRAM_EXPIRED, 0)
    partners = sorted(
        (a.removeprefix(PARTNER_PREFIX), n)
        for a, n in program.items()
        if a.startswith(PARTNER_PREFIX)
    )
    shortfalls = sorted(  # a store's account gives points: owed is minus its balance
        (a.removeprefix(SHORTFALL_PREFIX), -n)
        for a, n in program.items()
        if a.startswith(SHORTFALL_PREFIX) and n
    )
    # members' points redeemed: what stores covered in outages (owed now, or
    # settled since) is not part of it, it was never issued; so issued =
    # outstanding + vouchers outstanding + redeemed + expired + forfeited +
    # partners' clearing holds
    rewards = {
        a.removeprefix(VOUCHER_PREFIX): n
        for a, n in program.items()
        if a.startswith(VOUCHER_PREFIX)
    }
    by_reward = [
        pb.RewardLiability(reward_id=r, open_vouchers=found.open_vouchers.get(r, 0), points=n)
        for r, n in sorted(rewards.items())
    ]
    covered = sum(n for _, n in shortfalls) - program.get(PROGRAM_SETTLED, 0)
    redeemed = program.get(PROGRAM_REDEEMED, 0) - covered
    return pb.GetLiabilityResponse(
        as_of_sequence=found.as_of_sequence,
        outstanding=sum(found.by_state.values()),
        by_state=[pb.LiabilityBucket(key=s, points=found.by_state.get(s, 0)) for s in STATES],
        by_expiry_month=[
            pb.LiabilityBucket(key=k, points=n) for k, n in sorted(found.by_expiry_month.items())
        ],
        by_partner=[pb.LiabilityBucket(key=k, points=n) for k, n in partners],
        by_partner_gross=[
            pb.PartnerExchange(partner=k, exchanged_out=o, exchanged_in=i) for k, (o, i) in flows
        ],
        by_store_shortfall=[pb.LiabilityBucket(key=k, points=n) for k, n in shortfalls],
        vouchers_outstanding=sum(rewards.values()),
        by_reward=by_reward,
        issued=issued,
        redeemed=redeemed,
        expired=expired,
        forfeited=program.get(PROGRAM_FORFEITED, 0),
        breakage_rate=expired / issued if issued > 0 else 0.0,
        redemption_rate=redeemed / issued if issued > 0 else 0.0,
    )
