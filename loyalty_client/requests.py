"""The request messages of each call, built once per logical operation:
the idempotency key is chosen here (a fresh one unless the caller gives
it) and the same message, key included, is what every retry sends."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.members.v1 import members_pb2 as mpb


def new_key(prefix: str = "sdk") -> str:
    """A fresh idempotency key: 122 random bits, valid for the ledger."""
    return f"{prefix}-{uuid.uuid4().hex}"


class Requests:
    """Builds requests for one channel (and store)."""

    def __init__(self, channel_id: str, store_id: str = "") -> None:
        if not channel_id:
            raise ValueError("channel_id: required (the channel this client acts for)")
        self.channel_id = channel_id
        self.store_id = store_id

    def context(self, external_id: str = "") -> pb.ChannelContext:
        return pb.ChannelContext(
            channel_id=self.channel_id, store_id=self.store_id, external_transaction_id=external_id
        )

    def open_account(self, key: str | None) -> pb.OpenAccountRequest:
        return pb.OpenAccountRequest(idempotency_key=key or new_key(), context=self.context())

    def enroll(self, key: str | None, name: str, phone: str, email: str) -> mpb.EnrollRequest:
        return mpb.EnrollRequest(
            idempotency_key=key or new_key(),
            context=self.context(),
            profile=mpb.Profile(name=name, phone=phone, email=email),
        )

    def earn(
        self,
        key: str | None,
        account: str,
        points: int,
        purchase_minor: int | None,
        currency: str,
        categories: Iterable[str],
        external_id: str,
    ) -> pb.EarnRequest:
        request = pb.EarnRequest(
            idempotency_key=key or new_key(),
            context=self.context(external_id),
            member_account_id=account,
            points=points,
            categories=list(categories),
        )
        if purchase_minor is not None:
            request.purchase.CopyFrom(pb.Money(minor_units=purchase_minor, currency_code=currency))
        return request

    def redeem(
        self, key: str | None, account: str, points: int, external_id: str
    ) -> pb.RedeemRequest:
        return pb.RedeemRequest(
            idempotency_key=key or new_key(),
            context=self.context(external_id),
            member_account_id=account,
            points=points,
        )

    def hold(self, key: str | None, account: str, points: int, minutes: int) -> pb.HoldRequest:
        return pb.HoldRequest(
            idempotency_key=key or new_key(),
            context=self.context(),
            member_account_id=account,
            points=points,
            minutes=minutes,
        )

    def capture_hold(
        self, key: str | None, account: str, hold_sequence: int, points: int | None
    ) -> pb.CaptureHoldRequest:
        request = pb.CaptureHoldRequest(
            idempotency_key=key or new_key(),
            context=self.context(),
            member_account_id=account,
            hold_sequence=hold_sequence,
        )
        if points is not None:
            request.points = points
        return request

    def release_hold(
        self, key: str | None, account: str, hold_sequence: int
    ) -> pb.ReleaseHoldRequest:
        return pb.ReleaseHoldRequest(
            idempotency_key=key or new_key(),
            context=self.context(),
            member_account_id=account,
            hold_sequence=hold_sequence,
        )

    def reverse(
        self, key: str | None, account: str, original_sequence: int, points: int | None
    ) -> pb.ReverseRequest:
        request = pb.ReverseRequest(
            idempotency_key=key or new_key(),
            context=self.context(),
            member_account_id=account,
            original_sequence=original_sequence,
        )
        if points is not None:
            request.points = points
        return request
