"""Who is calling: the authenticated principal and its role."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    CHANNEL = "channel"  # a POS, app, mini-program or partner system
    MEMBER_SERVICE = "member_service"  # staff looking one member up, for a purpose
    ANALYST = "analyst"  # aggregates and pseudonymized data only
    COMPLIANCE = "compliance"  # verifies chains, reads audit logs and proofs
    SECURITY = "security"  # access reports
    KEY_CUSTODIAN = "key_custodian"  # key rotation and erasure
    ADMIN = "admin"  # grants and configuration

    @classmethod
    def parse(cls, value: object) -> Role | None:
        """The role named by ``value``, or None for anything else."""
        try:
            return cls(value) if isinstance(value, str) else None
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Principal:
    id: str  # e.g. "pos-0042" or a staff id; never a person's name or e-mail
    role: Role
    channel: str | None = None  # the channel a channel principal acts for
    credential_id: str = ""  # token id (jti) or certificate serial, for the access log
