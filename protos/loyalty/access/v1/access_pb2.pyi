import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListPurposesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PurposeField(_message.Message):
    __slots__ = ("field", "masked")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MASKED_FIELD_NUMBER: _ClassVar[int]
    field: str
    masked: bool
    def __init__(self, field: _Optional[str] = ..., masked: _Optional[bool] = ...) -> None: ...

class Purpose(_message.Message):
    __slots__ = ("name", "description", "roles", "fields", "all_fields")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    fields: _containers.RepeatedCompositeFieldContainer[PurposeField]
    all_fields: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., fields: _Optional[_Iterable[_Union[PurposeField, _Mapping]]] = ..., all_fields: _Optional[bool] = ...) -> None: ...

class ListPurposesResponse(_message.Message):
    __slots__ = ("purposes",)
    PURPOSES_FIELD_NUMBER: _ClassVar[int]
    purposes: _containers.RepeatedCompositeFieldContainer[Purpose]
    def __init__(self, purposes: _Optional[_Iterable[_Union[Purpose, _Mapping]]] = ...) -> None: ...

class GrantBreakGlassRequest(_message.Message):
    __slots__ = ("grantee", "reason", "duration_seconds")
    GRANTEE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    grantee: str
    reason: str
    duration_seconds: int
    def __init__(self, grantee: _Optional[str] = ..., reason: _Optional[str] = ..., duration_seconds: _Optional[int] = ...) -> None: ...

class BreakGlassGrant(_message.Message):
    __slots__ = ("grant_id", "grantee", "granted_by", "reason", "starts", "expires", "ended", "ended_by")
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTEE_FIELD_NUMBER: _ClassVar[int]
    GRANTED_BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STARTS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    ENDED_BY_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    grantee: str
    granted_by: str
    reason: str
    starts: _timestamp_pb2.Timestamp
    expires: _timestamp_pb2.Timestamp
    ended: _timestamp_pb2.Timestamp
    ended_by: str
    def __init__(self, grant_id: _Optional[str] = ..., grantee: _Optional[str] = ..., granted_by: _Optional[str] = ..., reason: _Optional[str] = ..., starts: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_by: _Optional[str] = ...) -> None: ...

class EndBreakGlassRequest(_message.Message):
    __slots__ = ("grant_id",)
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    def __init__(self, grant_id: _Optional[str] = ...) -> None: ...

class ListBreakGlassRequest(_message.Message):
    __slots__ = ("active_only",)
    ACTIVE_ONLY_FIELD_NUMBER: _ClassVar[int]
    active_only: bool
    def __init__(self, active_only: _Optional[bool] = ...) -> None: ...

class ListBreakGlassResponse(_message.Message):
    __slots__ = ("grants",)
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    grants: _containers.RepeatedCompositeFieldContainer[BreakGlassGrant]
    def __init__(self, grants: _Optional[_Iterable[_Union[BreakGlassGrant, _Mapping]]] = ...) -> None: ...
