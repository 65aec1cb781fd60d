"""``loyalty-ledger serve`` as a real child process in its secure default:
TLS with a development CA and bearer tokens (``ServeProcess`` itself starts
plaintext without credentials). Tokens are signed in the test process with
the key the server reads from its data directory."""

from __future__ import annotations

from pathlib import Path

import grpc
import sqlalchemy as sa

from access.certs import make_dev_certs
from access.principal import Role
from access.tokens import TokenIssuer, load_or_create_signing_key
from tests.support.process import ServeProcess

OWN_CONNECTION = ("grpc.use_local_subchannel_pool", 1)


def make_certs(out: Path) -> Path:
    """A development CA and server certificate (once per test)."""
    if not (out / "server.pem").exists():
        make_dev_certs(out)
    return out


class Tokens:
    """Tokens for ``data_dir``'s server, one per role (a channel's bound to
    ``channel``), made before or after the server starts."""

    def __init__(self, data_dir: Path, channel: str = "pos-test") -> None:
        self.channel = channel
        key = load_or_create_signing_key(data_dir / "keys" / "token-signing.pem")
        self._issuer = TokenIssuer(key)
        self._cache: dict[Role, str] = {}

    def __call__(self, role: Role) -> str:
        if role not in self._cache:
            self._cache[role] = self._issuer.issue(
                subject=f"{role.value}-1",
                role=role,
                ttl_seconds=3600,
                channel=self.channel if role is Role.CHANNEL else None,
            ).token
        return self._cache[role]


class SecureServe(ServeProcess):
    """``serve --auth tokens`` with TLS (``env`` may add anything else,
    e.g. ``LOYALTY_LEDGER_WORKERS``)."""

    def __init__(
        self,
        *,
        data_dir: Path,
        certs: Path,
        log_path: Path,
        database_url: str = "",
        env: dict[str, str] | None = None,
    ) -> None:
        secure = {
            "LOYALTY_LEDGER_PLAINTEXT": "0",
            "LOYALTY_LEDGER_AUTH": "tokens",
            "LOYALTY_LEDGER_TLS_CERT": str(certs / "server.pem"),
            "LOYALTY_LEDGER_TLS_KEY": str(certs / "server.key"),
        }
        self.ca = (certs / "ca.pem").read_bytes()
        super().__init__(
            data_dir=data_dir,
            database_url=database_url,
            log_path=log_path,
            env={**secure, **(env or {})},
        )

    def channel(self, token: str | None = None, *, own_connection: bool = False) -> grpc.Channel:
        """A TLS channel that checks the server against the dev CA and, with
        ``token``, sends it on every call."""
        credentials = grpc.ssl_channel_credentials(root_certificates=self.ca)
        if token is not None:
            credentials = grpc.composite_channel_credentials(
                credentials, grpc.access_token_call_credentials(token)
            )
        options = [OWN_CONNECTION] if own_connection else []
        return grpc.secure_channel(self.address, credentials, options=options)

    def health_channel(self) -> grpc.Channel:
        """TLS, checked against the dev CA (health needs no token)."""
        return self.channel()


class JournalRows:
    """Straight SQL on the journal table, beside the server (a reader on
    SQLite's WAL never blocks it): the row count and every (seq, hash)."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM journal_entries")).scalar_one())

    def head(self) -> tuple[int, int]:
        """(rows, largest sequence) of the journal."""
        with self.engine.connect() as conn:
            rows, top = conn.execute(
                sa.text("SELECT count(*), coalesce(max(seq), 0) FROM journal_entries")
            ).one()
        return int(rows), int(top)

    def hashes(self) -> dict[int, bytes]:
        with self.engine.connect() as conn:
            return {
                int(seq): bytes(digest)
                for seq, digest in conn.execute(sa.text("SELECT seq, hash FROM journal_entries"))
            }

    def entries_after(self, seq: int) -> list[tuple[int, str, str, bool]]:
        """(seq, kind, channel_id, has a request digest) of the entries after ``seq``."""
        query = sa.text(
            "SELECT seq, kind, channel_id, request IS NOT NULL FROM journal_entries"
            " WHERE seq > :seq ORDER BY seq"
        )
        with self.engine.connect() as conn:
            return [
                (int(a), str(b), str(c), bool(d))
                for a, b, c, d in conn.execute(query, {"seq": seq})
            ]

    def access_records(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM access_log")).scalar_one())

    def dispose(self) -> None:
        self.engine.dispose()
