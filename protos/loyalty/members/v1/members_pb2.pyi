from loyalty.ledger.v1 import ledger_pb2 as _ledger_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErasureReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERASURE_REASON_UNSPECIFIED: _ClassVar[ErasureReason]
    ERASURE_REASON_MEMBER_REQUEST: _ClassVar[ErasureReason]
    ERASURE_REASON_RETENTION_EXPIRED: _ClassVar[ErasureReason]
    ERASURE_REASON_LEGAL_ORDER: _ClassVar[ErasureReason]
ERASURE_REASON_UNSPECIFIED: ErasureReason
ERASURE_REASON_MEMBER_REQUEST: ErasureReason
ERASURE_REASON_RETENTION_EXPIRED: ErasureReason
ERASURE_REASON_LEGAL_ORDER: ErasureReason

class Profile(_message.Message):
    __slots__ = ("name", "phone", "email", "birth_date", "postal_address", "custom")
    class CustomEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    BIRTH_DATE_FIELD_NUMBER: _ClassVar[int]
    POSTAL_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    name: str
    phone: str
    email: str
    birth_date: str
    postal_address: str
    custom: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., phone: _Optional[str] = ..., email: _Optional[str] = ..., birth_date: _Optional[str] = ..., postal_address: _Optional[str] = ..., custom: _Optional[_Mapping[str, str]] = ...) -> None: ...

class EnrollRequest(_message.Message):
    __slots__ = ("idempotency_key", "context", "profile")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    context: _ledger_pb2.ChannelContext
    profile: Profile
    def __init__(self, idempotency_key: _Optional[str] = ..., context: _Optional[_Union[_ledger_pb2.ChannelContext, _Mapping]] = ..., profile: _Optional[_Union[Profile, _Mapping]] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("member_account_id",)
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    member_account_id: str
    def __init__(self, member_account_id: _Optional[str] = ...) -> None: ...

class UpdateMemberRequest(_message.Message):
    __slots__ = ("member_account_id", "profile", "fields")
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    member_account_id: str
    profile: Profile
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, member_account_id: _Optional[str] = ..., profile: _Optional[_Union[Profile, _Mapping]] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateMemberResponse(_message.Message):
    __slots__ = ("updated_fields",)
    UPDATED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    updated_fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, updated_fields: _Optional[_Iterable[str]] = ...) -> None: ...

class GetMemberRequest(_message.Message):
    __slots__ = ("member_account_id", "purpose")
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    member_account_id: str
    purpose: str
    def __init__(self, member_account_id: _Optional[str] = ..., purpose: _Optional[str] = ...) -> None: ...

class GetMemberResponse(_message.Message):
    __slots__ = ("member_account_id", "purpose", "profile", "masked_fields", "withheld_fields")
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    MASKED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_FIELDS_FIELD_NUMBER: _ClassVar[int]
    member_account_id: str
    purpose: str
    profile: Profile
    masked_fields: _containers.RepeatedScalarFieldContainer[str]
    withheld_fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, member_account_id: _Optional[str] = ..., purpose: _Optional[str] = ..., profile: _Optional[_Union[Profile, _Mapping]] = ..., masked_fields: _Optional[_Iterable[str]] = ..., withheld_fields: _Optional[_Iterable[str]] = ...) -> None: ...

class FindMemberRequest(_message.Message):
    __slots__ = ("phone", "email")
    PHONE_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    phone: str
    email: str
    def __init__(self, phone: _Optional[str] = ..., email: _Optional[str] = ...) -> None: ...

class FindMemberResponse(_message.Message):
    __slots__ = ("member_account_ids",)
    MEMBER_ACCOUNT_IDS_FIELD_NUMBER: _ClassVar[int]
    member_account_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, member_account_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class EraseMemberRequest(_message.Message):
    __slots__ = ("idempotency_key", "member_account_id", "reason")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    member_account_id: str
    reason: ErasureReason
    def __init__(self, idempotency_key: _Optional[str] = ..., member_account_id: _Optional[str] = ..., reason: _Optional[_Union[ErasureReason, str]] = ...) -> None: ...

class EraseMemberResponse(_message.Message):
    __slots__ = ("member_account_id", "forfeited_points", "erasure_sequence")
    MEMBER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    FORFEITED_POINTS_FIELD_NUMBER: _ClassVar[int]
    ERASURE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    member_account_id: str
    forfeited_points: int
    erasure_sequence: int
    def __init__(self, member_account_id: _Optional[str] = ..., forfeited_points: _Optional[int] = ..., erasure_sequence: _Optional[int] = ...) -> None: ...
