import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPORT_FORMAT_UNSPECIFIED: _ClassVar[ReportFormat]
    REPORT_FORMAT_HTML: _ClassVar[ReportFormat]
    REPORT_FORMAT_JSON: _ClassVar[ReportFormat]
    REPORT_FORMAT_CSV: _ClassVar[ReportFormat]

class Log(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOG_UNSPECIFIED: _ClassVar[Log]
    LOG_JOURNAL: _ClassVar[Log]
    LOG_ACCESS: _ClassVar[Log]
REPORT_FORMAT_UNSPECIFIED: ReportFormat
REPORT_FORMAT_HTML: ReportFormat
REPORT_FORMAT_JSON: ReportFormat
REPORT_FORMAT_CSV: ReportFormat
LOG_UNSPECIFIED: Log
LOG_JOURNAL: Log
LOG_ACCESS: Log

class GetAccessReportRequest(_message.Message):
    __slots__ = ("to", "format")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    to: _timestamp_pb2.Timestamp
    format: ReportFormat
    def __init__(self, to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., format: _Optional[_Union[ReportFormat, str]] = ..., **kwargs) -> None: ...

class ReportDocument(_message.Message):
    __slots__ = ("content_type", "filename", "body")
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    content_type: str
    filename: str
    body: bytes
    def __init__(self, content_type: _Optional[str] = ..., filename: _Optional[str] = ..., body: _Optional[bytes] = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ("log",)
    LOG_FIELD_NUMBER: _ClassVar[int]
    log: Log
    def __init__(self, log: _Optional[_Union[Log, str]] = ...) -> None: ...

class CreateCheckpointRequest(_message.Message):
    __slots__ = ("log",)
    LOG_FIELD_NUMBER: _ClassVar[int]
    log: Log
    def __init__(self, log: _Optional[_Union[Log, str]] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("log", "origin", "tree_size", "root_hash", "signed_note", "verifier_key")
    LOG_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNED_NOTE_FIELD_NUMBER: _ClassVar[int]
    VERIFIER_KEY_FIELD_NUMBER: _ClassVar[int]
    log: Log
    origin: str
    tree_size: int
    root_hash: bytes
    signed_note: str
    verifier_key: str
    def __init__(self, log: _Optional[_Union[Log, str]] = ..., origin: _Optional[str] = ..., tree_size: _Optional[int] = ..., root_hash: _Optional[bytes] = ..., signed_note: _Optional[str] = ..., verifier_key: _Optional[str] = ...) -> None: ...

class GetInclusionProofRequest(_message.Message):
    __slots__ = ("log", "sequence", "tree_size")
    LOG_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    log: Log
    sequence: int
    tree_size: int
    def __init__(self, log: _Optional[_Union[Log, str]] = ..., sequence: _Optional[int] = ..., tree_size: _Optional[int] = ...) -> None: ...

class InclusionProof(_message.Message):
    __slots__ = ("log", "sequence", "leaf_index", "tree_size", "hashes", "entry", "checkpoint")
    LOG_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    log: Log
    sequence: int
    leaf_index: int
    tree_size: int
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    entry: bytes
    checkpoint: Checkpoint
    def __init__(self, log: _Optional[_Union[Log, str]] = ..., sequence: _Optional[int] = ..., leaf_index: _Optional[int] = ..., tree_size: _Optional[int] = ..., hashes: _Optional[_Iterable[bytes]] = ..., entry: _Optional[bytes] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ...) -> None: ...

class GetConsistencyProofRequest(_message.Message):
    __slots__ = ("log", "size1", "size2")
    LOG_FIELD_NUMBER: _ClassVar[int]
    SIZE1_FIELD_NUMBER: _ClassVar[int]
    SIZE2_FIELD_NUMBER: _ClassVar[int]
    log: Log
    size1: int
    size2: int
    def __init__(self, log: _Optional[_Union[Log, str]] = ..., size1: _Optional[int] = ..., size2: _Optional[int] = ...) -> None: ...

class ConsistencyProof(_message.Message):
    __slots__ = ("log", "size1", "size2", "hashes")
    LOG_FIELD_NUMBER: _ClassVar[int]
    SIZE1_FIELD_NUMBER: _ClassVar[int]
    SIZE2_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    log: Log
    size1: int
    size2: int
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, log: _Optional[_Union[Log, str]] = ..., size1: _Optional[int] = ..., size2: _Optional[int] = ..., hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class GetEntriesRequest(_message.Message):
    __slots__ = ("log", "start", "count")
    LOG_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    log: Log
    start: int
    count: int
    def __init__(self, log: _Optional[_Union[Log, str]] = ..., start: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class GetEntriesResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, entries: _Optional[_Iterable[bytes]] = ...) -> None: ...
