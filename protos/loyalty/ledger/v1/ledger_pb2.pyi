import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EntryKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTRY_KIND_UNSPECIFIED: _ClassVar[EntryKind]
    ENTRY_KIND_EARN: _ClassVar[EntryKind]
    ENTRY_KIND_REDEEM: _ClassVar[EntryKind]
    ENTRY_KIND_REVERSE: _ClassVar[EntryKind]
    ENTRY_KIND_ERASE: _ClassVar[EntryKind]
    ENTRY_KIND_HOLD: _ClassVar[EntryKind]
    ENTRY_KIND_CAPTURE: _ClassVar[EntryKind]
    ENTRY_KIND_RELEASE: _ClassVar[EntryKind]
    ENTRY_KIND_MATURE: _ClassVar[EntryKind]
    ENTRY_KIND_EXPIRE: _ClassVar[EntryKind]
    ENTRY_KIND_TRANSFER: _ClassVar[EntryKind]
    ENTRY_KIND_EXCHANGE_OUT: _ClassVar[EntryKind]
    ENTRY_KIND_EXCHANGE_IN: _ClassVar[EntryKind]
    ENTRY_KIND_PROFILE: _ClassVar[EntryKind]
    ENTRY_KIND_SHORTFALL: _ClassVar[EntryKind]
    ENTRY_KIND_SETTLEMENT: _ClassVar[EntryKind]
    ENTRY_KIND_VOUCHER_ISSUE: _ClassVar[EntryKind]
    ENTRY_KIND_VOUCHER_REDEEM: _ClassVar[EntryKind]
    ENTRY_KIND_VOUCHER_EXPIRE: _ClassVar[EntryKind]
    ENTRY_KIND_VOUCHER_CANCEL: _ClassVar[EntryKind]
ENTRY_KIND_UNSPECIFIED: EntryKind
ENTRY_KIND_EARN: EntryKind
ENTRY_KIND_REDEEM: EntryKind
ENTRY_KIND_REVERSE: EntryKind
ENTRY_KIND_ERASE: EntryKind
ENTRY_KIND_HOLD: EntryKind
ENTRY_KIND_CAPTURE: EntryKind
ENTRY_KIND_RELEASE: EntryKind
ENTRY_KIND_MATURE: EntryKind
ENTRY_KIND_EXPIRE: EntryKind
ENTRY_KIND_TRANSFER: EntryKind
ENTRY_KIND_EXCHANGE_OUT: EntryKind
ENTRY_KIND_EXCHANGE_IN: EntryKind
ENTRY_KIND_PROFILE: EntryKind
ENTRY_KIND_SHORTFALL: EntryKind
ENTRY_KIND_SETTLEMENT: EntryKind
ENTRY_KIND_VOUCHER_ISSUE: EntryKind
ENTRY_KIND_VOUCHER_REDEEM: EntryKind
ENTRY_KIND_VOUCHER_EXPIRE: EntryKind
ENTRY_KIND_VOUCHER_CANCEL: EntryKind

class ChannelContext(_message.Message):
    __slots__ = ("channel_id", "store_id", "external_transaction_id")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    store_id: str
    external_transaction_id: str
    def __init__(self, channel_id: _Optional[str] = ..., store_id: _Optional[str] = ..., external_transaction_id: _Optional[str] = ...) -> None: ...

class Money(_message.Message):
    __slots__ = ("minor_units", "currency_code")
    MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    minor_units: int
    currency_code: str
    def __init__(self, minor_units: _Optional[int] = ..., currency_code: _Optional[str] = ...) -> None: ...

class Posting(_message.Message):
    __slots__ = ("from_account", "to_account", "points")
    FROM_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    TO_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    from_account: str
    to_account: str
    points: int
    def __init__(self, from_account: _Optional[str] = ..., to_account: _Optional[str] = ..., points: _Optional[int] = ...) -> None: ...

class Entry(_message.Message):
    __slots__ = ("sequence", "time", "kind", "postings", "channel_id", "store_id", "external_transaction_id", "purchase", "reverses_sequence", "prev_hash", "hash", "details", "details_withheld")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    POSTINGS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_FIELD_NUMBER: _ClassVar[int]
    REVERSES_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    DETAILS_WITHHELD_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    time: _timestamp_pb2.Timestamp
    kind: EntryKind
    postings: _containers.RepeatedCompositeFieldContainer[Posting]
    channel_id: str
    store_id: str
    external_transaction_id: str
    purchase: Money
    reverses_sequence: int
    prev_hash: bytes
    hash: bytes
    details: bytes
    details_withheld: bool
    def __init__(self, sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[_Union[EntryKind, str]] = ..., postings: _Optional[_Iterable[_Union[Posting, _Mapping]]] = ..., channel_id: _Optional[str] = ..., store_id: _Optional[str] = ..., external_transaction_id: _Optional[str] = ..., purchase: _Optional[_Union[Money, _Mapping]] = ..., reverses_sequence: _Optional[int] = ..., prev_hash: _Optional[bytes] = ..., hash: _Optional[bytes] = ..., details: _Optional[bytes] = ..., details_withheld: _Optional[bool] = ...) -> None: ...

class Balance(_message.Message):
    __slots__ = ("member_account_id", "points", "as_of_sequence", "available", "pending", "held", "expiring")
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    EXPIRING_FIELD_NUMBER: _ClassVar[int]
    member_account_id: str
    points: int
    as_of_sequence: int
    available: int
    pending: int
    held: int
    expiring: _containers.RepeatedCompositeFieldContainer[ExpiringPoints]
    def __init__(self, member_account_id: _Optional[str] = ..., points: _Optional[int] = ..., as_of_sequence: _Optional[int] = ..., available: _Optional[int] = ..., pending: _Optional[int] = ..., held: _Optional[int] = ..., expiring: _Optional[_Iterable[_Union[ExpiringPoints, _Mapping]]] = ...) -> None: ...

class ExpiringPoints(_message.Message):
    __slots__ = ("expires", "points")
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    expires: _timestamp_pb2.Timestamp
    points: int
    def __init__(self, expires: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., points: _Optional[int] = ...) -> None: ...

class AppliedRule(_message.Message):
    __slots__ = ("rule_id", "points")
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    points: int
    def __init__(self, rule_id: _Optional[str] = ..., points: _Optional[int] = ...) -> None: ...

class OpenAccountRequest(_message.Message):
    __slots__ = ("idempotency_key", "context")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    context: ChannelContext
    def __init__(self, idempotency_key: _Optional[str] = ..., context: _Optional[_Union[ChannelContext, _Mapping]] = ...) -> None: ...

class OpenAccountResponse(_message.Message):
    __slots__ = ("member_account_id",)
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    member_account_id: str
    def __init__(self, member_account_id: _Optional[str] = ...) -> None: ...

class EarnRequest(_message.Message):
    __slots__ = ("idempotency_key", "context", "member_account_id", "points", "purchase", "categories")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    context: ChannelContext
    member_account_id: str
    points: int
    purchase: Money
    categories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, idempotency_key: _Optional[str] = ..., context: _Optional[_Union[ChannelContext, _Mapping]] = ..., member_account_id: _Optional[str] = ..., points: _Optional[int] = ..., purchase: _Optional[_Union[Money, _Mapping]] = ..., categories: _Optional[_Iterable[str]] = ...) -> None: ...

class EarnResponse(_message.Message):
    __slots__ = ("entry", "balance", "rules")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    entry: Entry
    balance: Balance
    rules: _containers.RepeatedCompositeFieldContainer[AppliedRule]
    def __init__(self, entry: _Optional[_Union[Entry, _Mapping]] = ..., balance: _Optional[_Union[Balance, _Mapping]] = ..., rules: _Optional[_Iterable[_Union[AppliedRule, _Mapping]]] = ...) -> None: ...

class RedeemRequest(_message.Message):
    __slots__ = ("idempotency_key", "context", "member_account_id", "points")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    context: ChannelContext
    member_account_id: str
    points: int
    def __init__(self, idempotency_key: _Optional[str] = ..., context: _Optional[_Union[ChannelContext, _Mapping]] = ..., member_account_id: _Optional[str] = ..., points: _Optional[int] = ...) -> None: ...

class RedeemResponse(_message.Message):
    __slots__ = ("entry", "balance", "shortfall_points", "shortfall_account")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    SHORTFALL_POINTS_FIELD_NUMBER: _ClassVar[int]
    SHORTFALL_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    entry: Entry
    balance: Balance
    shortfall_points: int
    shortfall_account: str
    def __init__(self, entry: _Optional[_Union[Entry, _Mapping]] = ..., balance: _Optional[_Union[Balance, _Mapping]] = ..., shortfall_points: _Optional[int] = ..., shortfall_account: _Optional[str] = ...) -> None: ...

class ReverseRequest(_message.Message):
    __slots__ = ("idempotency_key", "context", "original_sequence", "points", "member_account_id")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    context: ChannelContext
    original_sequence: int
    points: int
    member_account_id: str
    def __init__(self, idempotency_key: _Optional[str] = ..., context: _Optional[_Union[ChannelContext, _Mapping]] = ..., original_sequence: _Optional[int] = ..., points: _Optional[int] = ..., member_account_id: _Optional[str] = ...) -> None: ...

class ReverseResponse(_message.Message):
    __slots__ = ("entry", "balance")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    entry: Entry
    balance: Balance
    def __init__(self, entry: _Optional[_Union[Entry, _Mapping]] = ..., balance: _Optional[_Union[Balance, _Mapping]] = ...) -> None: ...

class GetBalanceRequest(_message.Message):
    __slots__ = ("member_account_id",)
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    member_account_id: str
    def __init__(self, member_account_id: _Optional[str] = ...) -> None: ...

class GetBalanceResponse(_message.Message):
    __slots__ = ("balance",)
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    balance: Balance
    def __init__(self, balance: _Optional[_Union[Balance, _Mapping]] = ...) -> None: ...

class GetEntryRequest(_message.Message):
    __slots__ = ("sequence", "purpose")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    purpose: str
    def __init__(self, sequence: _Optional[int] = ..., purpose: _Optional[str] = ...) -> None: ...

class GetEntryResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: Entry
    def __init__(self, entry: _Optional[_Union[Entry, _Mapping]] = ...) -> None: ...

class ListEntriesRequest(_message.Message):
    __slots__ = ("member_account_id", "page_size", "page_token", "purpose")
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    member_account_id: str
    page_size: int
    page_token: str
    purpose: str
    def __init__(self, member_account_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., purpose: _Optional[str] = ...) -> None: ...

class ListEntriesResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class HoldRequest(_message.Message):
    __slots__ = ("idempotency_key", "context", "member_account_id", "points", "minutes")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    MINUTES_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    context: ChannelContext
    member_account_id: str
    points: int
    minutes: int
    def __init__(self, idempotency_key: _Optional[str] = ..., context: _Optional[_Union[ChannelContext, _Mapping]] = ..., member_account_id: _Optional[str] = ..., points: _Optional[int] = ..., minutes: _Optional[int] = ...) -> None: ...

class HoldResponse(_message.Message):
    __slots__ = ("entry", "balance", "hold_sequence", "expires")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    HOLD_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    entry: Entry
    balance: Balance
    hold_sequence: int
    expires: _timestamp_pb2.Timestamp
    def __init__(self, entry: _Optional[_Union[Entry, _Mapping]] = ..., balance: _Optional[_Union[Balance, _Mapping]] = ..., hold_sequence: _Optional[int] = ..., expires: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CaptureHoldRequest(_message.Message):
    __slots__ = ("idempotency_key", "context", "hold_sequence", "points", "member_account_id")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    HOLD_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    context: ChannelContext
    hold_sequence: int
    points: int
    member_account_id: str
    def __init__(self, idempotency_key: _Optional[str] = ..., context: _Optional[_Union[ChannelContext, _Mapping]] = ..., hold_sequence: _Optional[int] = ..., points: _Optional[int] = ..., member_account_id: _Optional[str] = ...) -> None: ...

class CaptureHoldResponse(_message.Message):
    __slots__ = ("entry", "balance")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    entry: Entry
    balance: Balance
    def __init__(self, entry: _Optional[_Union[Entry, _Mapping]] = ..., balance: _Optional[_Union[Balance, _Mapping]] = ...) -> None: ...

class ReleaseHoldRequest(_message.Message):
    __slots__ = ("idempotency_key", "context", "hold_sequence", "member_account_id")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    HOLD_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    context: ChannelContext
    hold_sequence: int
    member_account_id: str
    def __init__(self, idempotency_key: _Optional[str] = ..., context: _Optional[_Union[ChannelContext, _Mapping]] = ..., hold_sequence: _Optional[int] = ..., member_account_id: _Optional[str] = ...) -> None: ...

class ReleaseHoldResponse(_message.Message):
    __slots__ = ("entry", "balance")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    entry: Entry
    balance: Balance
    def __init__(self, entry: _Optional[_Union[Entry, _Mapping]] = ..., balance: _Optional[_Union[Balance, _Mapping]] = ...) -> None: ...

class TransferRequest(_message.Message):
    __slots__ = ("idempotency_key", "context", "member_account_id", "to_member_account_id", "points")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TO_MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    context: ChannelContext
    member_account_id: str
    to_member_account_id: str
    points: int
    def __init__(self, idempotency_key: _Optional[str] = ..., context: _Optional[_Union[ChannelContext, _Mapping]] = ..., member_account_id: _Optional[str] = ..., to_member_account_id: _Optional[str] = ..., points: _Optional[int] = ...) -> None: ...

class TransferResponse(_message.Message):
    __slots__ = ("entry", "balance")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    entry: Entry
    balance: Balance
    def __init__(self, entry: _Optional[_Union[Entry, _Mapping]] = ..., balance: _Optional[_Union[Balance, _Mapping]] = ...) -> None: ...

class ExchangeOutRequest(_message.Message):
    __slots__ = ("idempotency_key", "context", "member_account_id", "partner_id", "points")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    context: ChannelContext
    member_account_id: str
    partner_id: str
    points: int
    def __init__(self, idempotency_key: _Optional[str] = ..., context: _Optional[_Union[ChannelContext, _Mapping]] = ..., member_account_id: _Optional[str] = ..., partner_id: _Optional[str] = ..., points: _Optional[int] = ...) -> None: ...

class ExchangeOutResponse(_message.Message):
    __slots__ = ("entry", "balance", "partner_units")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    PARTNER_UNITS_FIELD_NUMBER: _ClassVar[int]
    entry: Entry
    balance: Balance
    partner_units: int
    def __init__(self, entry: _Optional[_Union[Entry, _Mapping]] = ..., balance: _Optional[_Union[Balance, _Mapping]] = ..., partner_units: _Optional[int] = ...) -> None: ...

class ExchangeInRequest(_message.Message):
    __slots__ = ("idempotency_key", "context", "member_account_id", "partner_id", "partner_units")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_UNITS_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    context: ChannelContext
    member_account_id: str
    partner_id: str
    partner_units: int
    def __init__(self, idempotency_key: _Optional[str] = ..., context: _Optional[_Union[ChannelContext, _Mapping]] = ..., member_account_id: _Optional[str] = ..., partner_id: _Optional[str] = ..., partner_units: _Optional[int] = ...) -> None: ...

class ExchangeInResponse(_message.Message):
    __slots__ = ("entry", "balance")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    entry: Entry
    balance: Balance
    def __init__(self, entry: _Optional[_Union[Entry, _Mapping]] = ..., balance: _Optional[_Union[Balance, _Mapping]] = ...) -> None: ...

class ReplayItem(_message.Message):
    __slots__ = ("occurred_at", "earn", "redeem", "hold", "capture_hold", "release_hold", "reverse")
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    EARN_FIELD_NUMBER: _ClassVar[int]
    REDEEM_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_HOLD_FIELD_NUMBER: _ClassVar[int]
    RELEASE_HOLD_FIELD_NUMBER: _ClassVar[int]
    REVERSE_FIELD_NUMBER: _ClassVar[int]
    occurred_at: _timestamp_pb2.Timestamp
    earn: EarnRequest
    redeem: RedeemRequest
    hold: HoldRequest
    capture_hold: CaptureHoldRequest
    release_hold: ReleaseHoldRequest
    reverse: ReverseRequest
    def __init__(self, occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., earn: _Optional[_Union[EarnRequest, _Mapping]] = ..., redeem: _Optional[_Union[RedeemRequest, _Mapping]] = ..., hold: _Optional[_Union[HoldRequest, _Mapping]] = ..., capture_hold: _Optional[_Union[CaptureHoldRequest, _Mapping]] = ..., release_hold: _Optional[_Union[ReleaseHoldRequest, _Mapping]] = ..., reverse: _Optional[_Union[ReverseRequest, _Mapping]] = ...) -> None: ...

class ReplayOfflineRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ReplayItem]
    def __init__(self, items: _Optional[_Iterable[_Union[ReplayItem, _Mapping]]] = ...) -> None: ...

class ReplayResult(_message.Message):
    __slots__ = ("index", "code", "message", "earn", "redeem", "hold", "capture_hold", "release_hold", "reverse")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EARN_FIELD_NUMBER: _ClassVar[int]
    REDEEM_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_HOLD_FIELD_NUMBER: _ClassVar[int]
    RELEASE_HOLD_FIELD_NUMBER: _ClassVar[int]
    REVERSE_FIELD_NUMBER: _ClassVar[int]
    index: int
    code: int
    message: str
    earn: EarnResponse
    redeem: RedeemResponse
    hold: HoldResponse
    capture_hold: CaptureHoldResponse
    release_hold: ReleaseHoldResponse
    reverse: ReverseResponse
    def __init__(self, index: _Optional[int] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., earn: _Optional[_Union[EarnResponse, _Mapping]] = ..., redeem: _Optional[_Union[RedeemResponse, _Mapping]] = ..., hold: _Optional[_Union[HoldResponse, _Mapping]] = ..., capture_hold: _Optional[_Union[CaptureHoldResponse, _Mapping]] = ..., release_hold: _Optional[_Union[ReleaseHoldResponse, _Mapping]] = ..., reverse: _Optional[_Union[ReverseResponse, _Mapping]] = ...) -> None: ...

class ReplayOfflineResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ReplayResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ReplayResult, _Mapping]]] = ...) -> None: ...

class GetLiabilityRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LiabilityBucket(_message.Message):
    __slots__ = ("key", "points")
    KEY_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    key: str
    points: int
    def __init__(self, key: _Optional[str] = ..., points: _Optional[int] = ...) -> None: ...

class GetLiabilityResponse(_message.Message):
    __slots__ = ("as_of_sequence", "outstanding", "by_state", "by_expiry_month", "by_partner", "issued", "redeemed", "expired", "forfeited", "breakage_rate", "redemption_rate", "by_partner_gross", "by_store_shortfall", "vouchers_outstanding", "by_reward")
    AS_OF_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_FIELD_NUMBER: _ClassVar[int]
    BY_STATE_FIELD_NUMBER: _ClassVar[int]
    BY_EXPIRY_MONTH_FIELD_NUMBER: _ClassVar[int]
    BY_PARTNER_FIELD_NUMBER: _ClassVar[int]
    ISSUED_FIELD_NUMBER: _ClassVar[int]
    REDEEMED_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    FORFEITED_FIELD_NUMBER: _ClassVar[int]
    BREAKAGE_RATE_FIELD_NUMBER: _ClassVar[int]
    REDEMPTION_RATE_FIELD_NUMBER: _ClassVar[int]
    BY_PARTNER_GROSS_FIELD_NUMBER: _ClassVar[int]
    BY_STORE_SHORTFALL_FIELD_NUMBER: _ClassVar[int]
    VOUCHERS_OUTSTANDING_FIELD_NUMBER: _ClassVar[int]
    BY_REWARD_FIELD_NUMBER: _ClassVar[int]
    as_of_sequence: int
    outstanding: int
    by_state: _containers.RepeatedCompositeFieldContainer[LiabilityBucket]
    by_expiry_month: _containers.RepeatedCompositeFieldContainer[LiabilityBucket]
    by_partner: _containers.RepeatedCompositeFieldContainer[LiabilityBucket]
    issued: int
    redeemed: int
    expired: int
    forfeited: int
    breakage_rate: float
    redemption_rate: float
    by_partner_gross: _containers.RepeatedCompositeFieldContainer[PartnerExchange]
    by_store_shortfall: _containers.RepeatedCompositeFieldContainer[LiabilityBucket]
    vouchers_outstanding: int
    by_reward: _containers.RepeatedCompositeFieldContainer[RewardLiability]
    def __init__(self, as_of_sequence: _Optional[int] = ..., outstanding: _Optional[int] = ..., by_state: _Optional[_Iterable[_Union[LiabilityBucket, _Mapping]]] = ..., by_expiry_month: _Optional[_Iterable[_Union[LiabilityBucket, _Mapping]]] = ..., by_partner: _Optional[_Iterable[_Union[LiabilityBucket, _Mapping]]] = ..., issued: _Optional[int] = ..., redeemed: _Optional[int] = ..., expired: _Optional[int] = ..., forfeited: _Optional[int] = ..., breakage_rate: _Optional[float] = ..., redemption_rate: _Optional[float] = ..., by_partner_gross: _Optional[_Iterable[_Union[PartnerExchange, _Mapping]]] = ..., by_store_shortfall: _Optional[_Iterable[_Union[LiabilityBucket, _Mapping]]] = ..., vouchers_outstanding: _Optional[int] = ..., by_reward: _Optional[_Iterable[_Union[RewardLiability, _Mapping]]] = ...) -> None: ...

class RewardLiability(_message.Message):
    __slots__ = ("reward_id", "open_vouchers", "points")
    REWARD_ID_FIELD_NUMBER: _ClassVar[int]
    OPEN_VOUCHERS_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    reward_id: str
    open_vouchers: int
    points: int
    def __init__(self, reward_id: _Optional[str] = ..., open_vouchers: _Optional[int] = ..., points: _Optional[int] = ...) -> None: ...

class PartnerExchange(_message.Message):
    __slots__ = ("partner", "exchanged_out", "exchanged_in")
    PARTNER_FIELD_NUMBER: _ClassVar[int]
    EXCHANGED_OUT_FIELD_NUMBER: _ClassVar[int]
    EXCHANGED_IN_FIELD_NUMBER: _ClassVar[int]
    partner: str
    exchanged_out: int
    exchanged_in: int
    def __init__(self, partner: _Optional[str] = ..., exchanged_out: _Optional[int] = ..., exchanged_in: _Optional[int] = ...) -> None: ...

class ReferRequest(_message.Message):
    __slots__ = ("idempotency_key", "context", "member_account_id", "referred_member_account_id", "device_id", "referrer_device_id")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    REFERRED_MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REFERRER_DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    context: ChannelContext
    member_account_id: str
    referred_member_account_id: str
    device_id: str
    referrer_device_id: str
    def __init__(self, idempotency_key: _Optional[str] = ..., context: _Optional[_Union[ChannelContext, _Mapping]] = ..., member_account_id: _Optional[str] = ..., referred_member_account_id: _Optional[str] = ..., device_id: _Optional[str] = ..., referrer_device_id: _Optional[str] = ...) -> None: ...

class ReferResponse(_message.Message):
    __slots__ = ("member_account_id", "referred_member_account_id")
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    REFERRED_MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    member_account_id: str
    referred_member_account_id: str
    def __init__(self, member_account_id: _Optional[str] = ..., referred_member_account_id: _Optional[str] = ...) -> None: ...

class GetTierRequest(_message.Message):
    __slots__ = ("member_account_id",)
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    member_account_id: str
    def __init__(self, member_account_id: _Optional[str] = ...) -> None: ...

class TierChange(_message.Message):
    __slots__ = ("time", "from_tier", "to_tier", "reason")
    TIME_FIELD_NUMBER: _ClassVar[int]
    FROM_TIER_FIELD_NUMBER: _ClassVar[int]
    TO_TIER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    from_tier: str
    to_tier: str
    reason: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., from_tier: _Optional[str] = ..., to_tier: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GetTierResponse(_message.Message):
    __slots__ = ("tier", "super_fan", "referrals", "next_review", "history", "pending_referrals")
    TIER_FIELD_NUMBER: _ClassVar[int]
    SUPER_FAN_FIELD_NUMBER: _ClassVar[int]
    REFERRALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_REVIEW_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    PENDING_REFERRALS_FIELD_NUMBER: _ClassVar[int]
    tier: str
    super_fan: bool
    referrals: int
    next_review: _timestamp_pb2.Timestamp
    history: _containers.RepeatedCompositeFieldContainer[TierChange]
    pending_referrals: int
    def __init__(self, tier: _Optional[str] = ..., super_fan: _Optional[bool] = ..., referrals: _Optional[int] = ..., next_review: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., history: _Optional[_Iterable[_Union[TierChange, _Mapping]]] = ..., pending_referrals: _Optional[int] = ...) -> None: ...
