import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from loyalty.ledger.v1 import ledger_pb2 as _ledger_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VoucherState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VOUCHER_STATE_UNSPECIFIED: _ClassVar[VoucherState]
    VOUCHER_STATE_ISSUED: _ClassVar[VoucherState]
    VOUCHER_STATE_REDEEMED: _ClassVar[VoucherState]
    VOUCHER_STATE_EXPIRED: _ClassVar[VoucherState]
    VOUCHER_STATE_CANCELLED: _ClassVar[VoucherState]
VOUCHER_STATE_UNSPECIFIED: VoucherState
VOUCHER_STATE_ISSUED: VoucherState
VOUCHER_STATE_REDEEMED: VoucherState
VOUCHER_STATE_EXPIRED: VoucherState
VOUCHER_STATE_CANCELLED: VoucherState

class Reward(_message.Message):
    __slots__ = ("reward_id", "name", "points", "unlimited", "stock_left", "offered", "valid_days", "claim_channels", "redeem_channels")
    REWARD_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    UNLIMITED_FIELD_NUMBER: _ClassVar[int]
    STOCK_LEFT_FIELD_NUMBER: _ClassVar[int]
    OFFERED_FIELD_NUMBER: _ClassVar[int]
    VALID_DAYS_FIELD_NUMBER: _ClassVar[int]
    CLAIM_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    REDEEM_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    reward_id: str
    name: str
    points: int
    unlimited: bool
    stock_left: int
    offered: bool
    valid_days: int
    claim_channels: _containers.RepeatedScalarFieldContainer[str]
    redeem_channels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, reward_id: _Optional[str] = ..., name: _Optional[str] = ..., points: _Optional[int] = ..., unlimited: _Optional[bool] = ..., stock_left: _Optional[int] = ..., offered: _Optional[bool] = ..., valid_days: _Optional[int] = ..., claim_channels: _Optional[_Iterable[str]] = ..., redeem_channels: _Optional[_Iterable[str]] = ...) -> None: ...

class Voucher(_message.Message):
    __slots__ = ("voucher_sequence", "reward_id", "reward_name", "member_account_id", "points", "state", "valid_until", "ended_by_sequence", "code", "qr_text")
    VOUCHER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    REWARD_ID_FIELD_NUMBER: _ClassVar[int]
    REWARD_NAME_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    ENDED_BY_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    QR_TEXT_FIELD_NUMBER: _ClassVar[int]
    voucher_sequence: int
    reward_id: str
    reward_name: str
    member_account_id: str
    points: int
    state: VoucherState
    valid_until: _timestamp_pb2.Timestamp
    ended_by_sequence: int
    code: str
    qr_text: str
    def __init__(self, voucher_sequence: _Optional[int] = ..., reward_id: _Optional[str] = ..., reward_name: _Optional[str] = ..., member_account_id: _Optional[str] = ..., points: _Optional[int] = ..., state: _Optional[_Union[VoucherState, str]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_by_sequence: _Optional[int] = ..., code: _Optional[str] = ..., qr_text: _Optional[str] = ...) -> None: ...

class ListRewardsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRewardsResponse(_message.Message):
    __slots__ = ("rewards",)
    REWARDS_FIELD_NUMBER: _ClassVar[int]
    rewards: _containers.RepeatedCompositeFieldContainer[Reward]
    def __init__(self, rewards: _Optional[_Iterable[_Union[Reward, _Mapping]]] = ...) -> None: ...

class ClaimRewardRequest(_message.Message):
    __slots__ = ("idempotency_key", "context", "member_account_id", "reward_id")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    REWARD_ID_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    context: _ledger_pb2.ChannelContext
    member_account_id: str
    reward_id: str
    def __init__(self, idempotency_key: _Optional[str] = ..., context: _Optional[_Union[_ledger_pb2.ChannelContext, _Mapping]] = ..., member_account_id: _Optional[str] = ..., reward_id: _Optional[str] = ...) -> None: ...

class ClaimRewardResponse(_message.Message):
    __slots__ = ("voucher", "entry", "balance")
    VOUCHER_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    voucher: Voucher
    entry: _ledger_pb2.Entry
    balance: _ledger_pb2.Balance
    def __init__(self, voucher: _Optional[_Union[Voucher, _Mapping]] = ..., entry: _Optional[_Union[_ledger_pb2.Entry, _Mapping]] = ..., balance: _Optional[_Union[_ledger_pb2.Balance, _Mapping]] = ...) -> None: ...

class GetVoucherRequest(_message.Message):
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    def __init__(self, code: _Optional[str] = ...) -> None: ...

class GetVoucherResponse(_message.Message):
    __slots__ = ("voucher",)
    VOUCHER_FIELD_NUMBER: _ClassVar[int]
    voucher: Voucher
    def __init__(self, voucher: _Optional[_Union[Voucher, _Mapping]] = ...) -> None: ...

class RedeemVoucherRequest(_message.Message):
    __slots__ = ("idempotency_key", "context", "code")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    context: _ledger_pb2.ChannelContext
    code: str
    def __init__(self, idempotency_key: _Optional[str] = ..., context: _Optional[_Union[_ledger_pb2.ChannelContext, _Mapping]] = ..., code: _Optional[str] = ...) -> None: ...

class RedeemVoucherResponse(_message.Message):
    __slots__ = ("voucher", "entry")
    VOUCHER_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    voucher: Voucher
    entry: _ledger_pb2.Entry
    def __init__(self, voucher: _Optional[_Union[Voucher, _Mapping]] = ..., entry: _Optional[_Union[_ledger_pb2.Entry, _Mapping]] = ...) -> None: ...

class CancelVoucherRequest(_message.Message):
    __slots__ = ("idempotency_key", "context", "member_account_id", "voucher_sequence")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    context: _ledger_pb2.ChannelContext
    member_account_id: str
    voucher_sequence: int
    def __init__(self, idempotency_key: _Optional[str] = ..., context: _Optional[_Union[_ledger_pb2.ChannelContext, _Mapping]] = ..., member_account_id: _Optional[str] = ..., voucher_sequence: _Optional[int] = ...) -> None: ...

class CancelVoucherResponse(_message.Message):
    __slots__ = ("voucher", "entry", "balance")
    VOUCHER_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    voucher: Voucher
    entry: _ledger_pb2.Entry
    balance: _ledger_pb2.Balance
    def __init__(self, voucher: _Optional[_Union[Voucher, _Mapping]] = ..., entry: _Optional[_Union[_ledger_pb2.Entry, _Mapping]] = ..., balance: _Optional[_Union[_ledger_pb2.Balance, _Mapping]] = ...) -> None: ...

class ListVouchersRequest(_message.Message):
    __slots__ = ("member_account_id", "include_ended", "page_size")
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ENDED_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    member_account_id: str
    include_ended: bool
    page_size: int
    def __init__(self, member_account_id: _Optional[str] = ..., include_ended: _Optional[bool] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListVouchersResponse(_message.Message):
    __slots__ = ("vouchers",)
    VOUCHERS_FIELD_NUMBER: _ClassVar[int]
    vouchers: _containers.RepeatedCompositeFieldContainer[Voucher]
    def __init__(self, vouchers: _Optional[_Iterable[_Union[Voucher, _Mapping]]] = ...) -> None: ...
