"""gRPC handlers for loyalty.access.v1.AccessService: the purpose registry
and break-glass grants. The rules live in access/ (purposes.py,
break_glass.py); these handlers translate messages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from loyalty.access.v1 import access_pb2 as apb
from loyalty.access.v1 import access_pb2_grpc

from access import scope as call_scope
from access.break_glass import BreakGlass, Grant
from access.purposes import PURPOSES, Show
from audit.decisions import AccessDecision

if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[object, object]

BREAK_GLASS_METHOD = "break-glass"  # method name of start/end events in the access log


def _time(us: int) -> Timestamp:
    return Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


def grant_message(grant: Grant) -> apb.BreakGlassGrant:
    message = apb.BreakGlassGrant(
        grant_id=grant.grant_id,
        grantee=grant.grantee,
        granted_by=grant.granted_by,
        reason=grant.reason,
        starts=_time(grant.starts_us),
        expires=_time(grant.expires_us),
        ended_by=grant.ended_by,
    )
    if grant.ended_us:
        message.ended.CopyFrom(_time(grant.ended_us))
    return message


class GrantEventRecorder:
    """Break-glass start and end, as separate events in the access log.
    The grant's reason stays in break_glass_grants; the event names the
    grant, the grantee and who granted or ended it."""

    def __init__(self, record: Callable[[AccessDecision], None]) -> None:
        self._record_blocking = record  # returns once durable (Appender.record_blocking)

    def _record(self, grant: Grant, decision: str, time_us: int, reason: str) -> None:
        self._record_blocking(
            AccessDecision(
                time_us=time_us,
                request_id=grant.grant_id,
                principal=grant.grantee,
                role="",
                method=BREAK_GLASS_METHOD,
                decision=decision,
                reason=reason[:256],
                purpose="break_glass",
            )
        )

    def started(self, grant: Grant) -> None:
        self._record(
            grant,
            "start",
            grant.starts_us,
            f"grant {grant.grant_id} by {grant.granted_by} until {grant.expires_us}",
        )

    def ended(self, grant: Grant) -> None:
        self._record(
            grant, "end", grant.ended_us, f"grant {grant.grant_id} ended by {grant.ended_by}"
        )


class AccessServicer(access_pb2_grpc.AccessServiceServicer):
    def __init__(self, *, break_glass: BreakGlass) -> None:
        self._break_glass = break_glass

    async def ListPurposes(
        self, request: apb.ListPurposesRequest, context: Context
    ) -> apb.ListPurposesResponse:
        return apb.ListPurposesResponse(
            purposes=[
                apb.Purpose(
                    name=p.name,
                    description=p.description,
                    roles=sorted(r.value for r in p.roles),
                    fields=[
                        apb.PurposeField(field=name, masked=show is Show.MASKED)
                        for name, show in p.fields.items()
                    ],
                    all_fields=p.all_fields,
                )
                for p in PURPOSES.values()
            ]
        )

    async def GrantBreakGlass(
        self, request: apb.GrantBreakGlassRequest, context: Context
    ) -> apb.BreakGlassGrant:
        admin = call_scope.current().require_principal()
        grant = await asyncio.to_thread(
            self._break_glass.grant,
            admin,
            request.grantee,
            request.reason,
            request.duration_seconds,
        )
        return grant_message(grant)

    async def EndBreakGlass(
        self, request: apb.EndBreakGlassRequest, context: Context
    ) -> apb.BreakGlassGrant:
        by = call_scope.current().require_principal()
        grant = await asyncio.to_thread(self._break_glass.end, request.grant_id, by)
        return grant_message(grant)

    async def ListBreakGlass(
        self, request: apb.ListBreakGlassRequest, context: Context
    ) -> apb.ListBreakGlassResponse:
        grants = self._break_glass.grants(active_only=request.active_only)
        return apb.ListBreakGlassResponse(grants=[grant_message(g) for g in grants])
