"""gRPC handlers for loyalty.audit.v1.AuditService: checkpoints, proofs and
entries of the two verifiable logs (docs/verification.md).

Proofs are computed from the stored tree nodes in O(log n) reads. A channel
principal may ask for inclusion proofs of its own journal entries only (a
receipt a till can keep); the rule is the access layer's
(``check_entry_channel``), applied here because only the handler knows the
entry's channel.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from loyalty.audit.v1 import audit_pb2 as upb
from loyalty.audit.v1 import audit_pb2_grpc

from access import scope as call_scope
from access.permissions import check_entry_channel
from audit.merkle import consistency_proof, inclusion_proof
from ledger.checkpoints import Checkpointer, LogKeys
from ledger.errors import NotFoundError, ValidationError
from ledger.merkle_logs import ACCESS_LOG, JOURNAL_LOG
from ledger.storage.database import Database
from ledger.storage.log_reads import LogReads, StoredCheckpoint

if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[object, object]

LOGS: dict[int, int] = {int(upb.LOG_JOURNAL): JOURNAL_LOG, int(upb.LOG_ACCESS): ACCESS_LOG}
MAX_ENTRIES = 1000
MAX_REPORT_SPAN_US = 31 * 86_400_000_000


def _log(value: int) -> int:
    found = LOGS.get(int(value))
    if found is None:
        raise ValidationError("log", "must be LOG_JOURNAL or LOG_ACCESS")
    return found


def _proto_log(log_id: int) -> upb.Log:
    return upb.LOG_JOURNAL if log_id == JOURNAL_LOG else upb.LOG_ACCESS


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(
        self,
        *,
        reads: LogReads,
        checkpointer: Checkpointer,
        keys: LogKeys,
        db: Database | None = None,
        clock: Callable[[], int] = lambda: time.time_ns() // 1000,
    ) -> None:
        self._db = db
        self._clock = clock
        self._reads = reads
        self._checkpointer = checkpointer
        self._keys = keys

    def _message(self, stored: StoredCheckpoint) -> upb.Checkpoint:
        return upb.Checkpoint(
            log=_proto_log(stored.log),
            origin=self._keys.origin(stored.log),
            tree_size=stored.size,
            root_hash=stored.root,
            signed_note=stored.note,
            verifier_key=self._keys.signed_by(stored.log, stored.note),
        )

    async def GetCheckpoint(
        self, request: upb.GetCheckpointRequest, context: Context
    ) -> upb.Checkpoint:
        log_id = _log(request.log)
        stored = await asyncio.to_thread(self._checkpointer.latest, log_id)
        if stored is None:  # none yet: sign one now (on demand)
            stored = await asyncio.to_thread(self._checkpointer.issue, log_id)
        return self._message(stored)

    async def CreateCheckpoint(
        self, request: upb.CreateCheckpointRequest, context: Context
    ) -> upb.Checkpoint:
        log_id = _log(request.log)
        return self._message(await asyncio.to_thread(self._checkpointer.issue, log_id))

    async def GetInclusionProof(
        self, request: upb.GetInclusionProofRequest, context: Context
    ) -> upb.InclusionProof:
        log_id = _log(request.log)
        return await asyncio.to_thread(self._inclusion, log_id, request.sequence, request.tree_size)

    def _inclusion(self, log_id: int, sequence: int, tree_size: int) -> upb.InclusionProof:
        size, _ = self._reads.head(log_id)
        if not 1 <= sequence <= size:
            raise NotFoundError(f"sequence: no entry {sequence} in the log (size {size})")
        entries = self._reads.entries(log_id, sequence, sequence)
        if not entries:
            raise NotFoundError(f"sequence: no entry {sequence} in the log")
        entry = entries[0]
        # a channel proves its own journal entries only (access records have no channel)
        check_entry_channel(call_scope.current().principal, entry.channel_id)
        checkpoint: StoredCheckpoint | None
        if tree_size == 0:  # the latest checkpoint, signing one that covers the entry
            checkpoint = self._checkpointer.latest(log_id)
            if checkpoint is None or checkpoint.size < sequence:
                checkpoint = self._checkpointer.issue(log_id)
            tree_size = checkpoint.size
        elif not sequence <= tree_size <= size:
            raise ValidationError("tree_size", f"must be {sequence}..{size} (or 0: latest)")
        else:
            checkpoint = self._reads.checkpoint(log_id, tree_size)
        hashes = inclusion_proof(
            sequence - 1, tree_size, lambda keys: self._reads.nodes(log_id, keys)
        )
        proof = upb.InclusionProof(
            log=_proto_log(log_id),
            sequence=sequence,
            leaf_index=sequence - 1,
            tree_size=tree_size,
            hashes=hashes,
            entry=entry.data,
        )
        if checkpoint is not None:
            proof.checkpoint.CopyFrom(self._message(checkpoint))
        return proof

    async def GetConsistencyProof(
        self, request: upb.GetConsistencyProofRequest, context: Context
    ) -> upb.ConsistencyProof:
        log_id = _log(request.log)
        return await asyncio.to_thread(self._consistency, log_id, request.size1, request.size2)

    def _consistency(self, log_id: int, size1: int, size2: int) -> upb.ConsistencyProof:
        if size2 == 0:
            latest = self._checkpointer.latest(log_id) or self._checkpointer.issue(log_id)
            size2 = latest.size
        size, _ = self._reads.head(log_id)
        if not 0 <= size1 <= size2 <= size:
            raise ValidationError("size1", f"must be 0 <= size1 <= size2 <= {size}")
        hashes = consistency_proof(size1, size2, lambda keys: self._reads.nodes(log_id, keys))
        return upb.ConsistencyProof(
            log=_proto_log(log_id),
            size1=size1,
            size2=size2,
            hashes=hashes,
        )

    async def GetEntries(
        self, request: upb.GetEntriesRequest, context: Context
    ) -> upb.GetEntriesResponse:
        log_id = _log(request.log)
        if request.start < 1:
            raise ValidationError("start", "must be >= 1")
        if not 1 <= request.count <= MAX_ENTRIES:
            raise ValidationError("count", f"must be 1..{MAX_ENTRIES}")
        size, _ = await asyncio.to_thread(self._reads.head, log_id)
        if request.start > size:
            return upb.GetEntriesResponse()
        last = min(size, request.start + request.count - 1)
        entries = await asyncio.to_thread(self._reads.entries, log_id, request.start, last)
        return upb.GetEntriesResponse(entries=[e.data for e in entries])

    async def GetAccessReport(
        self, request: upb.GetAccessReportRequest, context: Context
    ) -> upb.ReportDocument:
        from ledger.reports.access_report import build_access_report
        from ledger.reports.render import render_csv, render_html

        if request.format not in _REPORT_FORMATS:  # an unknown enum number from a newer client
            raise ValidationError("format", "must be HTML, JSON or CSV (or unset: HTML)")
        if not request.HasField("from") or not request.HasField("to"):
            raise ValidationError("from", "from and to must both be set")
        start = _micros(getattr(request, "from"), "from")
        end = _micros(request.to, "to")
        if end <= start:
            raise ValidationError("to", "must be after from")
        if end - start > MAX_REPORT_SPAN_US:
            raise ValidationError("to", "at most 31 days after from (use the CLI for longer spans)")
        assert self._db is not None
        report = await asyncio.to_thread(
            build_access_report,
            self._db,
            from_us=start,
            to_us=end,
            origin=self._keys.origin(ACCESS_LOG),
            now_us=self._clock(),
        )
        if request.format == upb.REPORT_FORMAT_JSON:
            body, kind, ext = (
                json.dumps(report, sort_keys=True).encode(),
                "application/json",
                "json",
            )
        elif request.format == upb.REPORT_FORMAT_CSV:
            body, kind, ext = render_csv(report).encode(), "text/csv", "csv"
        else:
            body, kind, ext = (
                render_html(report).encode(),
                "text/html; charset=utf-8",
                "html",
            )
        return upb.ReportDocument(content_type=kind, filename=f"access-report.{ext}", body=body)


_MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
_REPORT_FORMATS = frozenset(
    {
        upb.REPORT_FORMAT_UNSPECIFIED,
        upb.REPORT_FORMAT_HTML,
        upb.REPORT_FORMAT_JSON,
        upb.REPORT_FORMAT_CSV,
    }
)


def _micros(stamp: Timestamp, field: str) -> int:
    if not 0 <= stamp.seconds <= _MAX_SECONDS or not 0 <= stamp.nanos < 1_000_000_000:
        raise ValidationError(field, "must be a time between 1970 and 9999")
    return int(stamp.seconds) * 1_000_000 + stamp.nanos // 1000
