"""What the gate decided about the call being handled.

The gate (access/gate.py) admits a call and hands its decision to the
handler as a ``CallScope``: who is calling, the purpose declared (for reads
of personal data) and the break-glass grant used, if any. Handlers read it
through ``current()``; they never decide access themselves. A handler that
returns personal data passes the record through ``CallScope.project``, the
one place where fields are kept, masked or withheld; the scope remembers
which fields left so the access log can name them.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from access.errors import PermissionDeniedError
from access.principal import Principal
from access.purposes import Projection, Purpose, Show, project


@dataclass(slots=True)
class CallScope:
    principal: Principal | None  # None: server running without authentication
    purpose: Purpose | None = None
    grant_id: str = ""  # the break-glass grant this call relies on
    fields: tuple[str, ...] = ()  # personal fields that left with the response
    member: str = ""  # the member the call touched, when the request does not name one

    def project(self, record: Mapping[str, str | None]) -> Projection:
        if self.purpose is None:
            raise PermissionDeniedError("purpose: a read of personal data needs a declared purpose")
        projection = project(self.purpose, record)
        self.fields = projection.fields
        return projection

    def shows(self, field: str) -> bool:
        """Whether the declared purpose shows ``field`` in full."""
        return self.purpose is not None and self.purpose.show(field) is Show.FULL

    def returned(self, field: str) -> None:
        """Note that ``field`` leaves with the response (for the access log)."""
        if field not in self.fields:
            self.fields = (*self.fields, field)

    def require_principal(self) -> Principal:
        if self.principal is None:
            raise PermissionDeniedError("credentials: this call needs an authenticated principal")
        return self.principal


_CURRENT: ContextVar[CallScope | None] = ContextVar("loyalty_call_scope", default=None)


def current() -> CallScope:
    """The scope of the call being handled (an empty one outside the gate)."""
    return _CURRENT.get() or CallScope(None)


def enter(scope: CallScope) -> None:
    """Set by the server's wrapper for the task that handles one call."""
    _CURRENT.set(scope)
