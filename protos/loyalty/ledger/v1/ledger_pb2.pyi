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
ENTRY_KIND_UNSPECIFIED: EntryKind
ENTRY_KIND_EARN: EntryKind
ENTRY_KIND_REDEEM: EntryKind
ENTRY_KIND_REVERSE: EntryKind
ENTRY_KIND_ERASE: EntryKind

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
    __slots__ = ("member_account_id", "points", "as_of_sequence")
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    member_account_id: str
    points: int
    as_of_sequence: int
    def __init__(self, member_account_id: _Optional[str] = ..., points: _Optional[int] = ..., as_of_sequence: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("idempotency_key", "context", "member_account_id", "points", "purchase")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    context: ChannelContext
    member_account_id: str
    points: int
    purchase: Money
    def __init__(self, idempotency_key: _Optional[str] = ..., context: _Optional[_Union[ChannelContext, _Mapping]] = ..., member_account_id: _Optional[str] = ..., points: _Optional[int] = ..., purchase: _Optional[_Union[Money, _Mapping]] = ...) -> None: ...

class EarnResponse(_message.Message):
    __slots__ = ("entry", "balance")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    entry: Entry
    balance: Balance
    def __init__(self, entry: _Optional[_Union[Entry, _Mapping]] = ..., balance: _Optional[_Union[Balance, _Mapping]] = ...) -> None: ...

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
    __slots__ = ("entry", "balance")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    entry: Entry
    balance: Balance
    def __init__(self, entry: _Optional[_Union[Entry, _Mapping]] = ..., balance: _Optional[_Union[Balance, _Mapping]] = ...) -> None: ...

class ReverseRequest(_message.Message):
    __slots__ = ("idempotency_key", "context", "original_sequence", "points")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    context: ChannelContext
    original_sequence: int
    points: int
    def __init__(self, idempotency_key: _Optional[str] = ..., context: _Optional[_Union[ChannelContext, _Mapping]] = ..., original_sequence: _Optional[int] = ..., points: _Optional[int] = ...) -> None: ...

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
