"""A real ledger for the SDK tests: TLS with the dev CA, bearer tokens,
a channel token for pos-test, the logs' published keys, and a way to put
a misbehaving gRPC proxy in front of it (tests/support/grpc_proxy.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import sqlalchemy as sa

from access.certs import make_dev_certs
from access.principal import Role
from access.tokens import TokenIssuer, load_or_create_signing_key
from ledger.config import ServerConfig
from ledger.merkle_logs import ACCESS_LOG, JOURNAL_LOG
from ledger.server import LedgerServer
from loyalty_client import LedgerClient, RetryPolicy, credentials
from tests.support.grpc_proxy import Fault, GrpcProxy

FAST = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.05, total_timeout=10)


@dataclass
class Ledger:
    server: LedgerServer
    certs: Path
    token: str
    journal_key: str
    access_key: str

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def creds(self) -> grpc.ChannelCredentials:
        return credentials(ca_file=self.certs / "ca.pem", token=self.token)

    def client(self, address: str | None = None, **kw: object) -> LedgerClient:
        kw.setdefault("retry", FAST)
        return LedgerClient(
            address or self.address, self.creds(), channel_id="pos-test", store_id="store-test-1",
            **kw,  # type: ignore[arg-type]
        )  # fmt: skip

    def proxy(self, *faults: Fault) -> GrpcProxy:
        upstream = grpc.ssl_channel_credentials((self.certs / "ca.pem").read_bytes())
        served = grpc.ssl_server_credentials(
            [((self.certs / "server.key").read_bytes(), (self.certs / "server.pem").read_bytes())]
        )
        proxy = GrpcProxy(self.address, upstream, server_credentials=served, faults=list(faults))
        proxy.port = proxy.start()  # type: ignore[attr-defined]
        return proxy

    def entries(self, client: LedgerClient, account: str) -> int:
        """Entries of the member, read straight from the database."""
        assert self.server.db is not None
        with self.server.db.reader.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT count(*) FROM account_entries WHERE account_id = :a"),
                    {"a": account},
                ).scalar()
                or 0
            )


@contextmanager
def running_ledger(db_url: str, tmp_path: Path) -> Iterator[Ledger]:
    """A TLS ledger with token auth, a channel token and the log keys."""
    certs = tmp_path / "certs"
    make_dev_certs(certs)
    config = ServerConfig(
        data_dir=tmp_path,
        database_url=db_url,
        listen="127.0.0.1:0",
        auth="tokens",
        tls_cert=certs / "server.pem",
        tls_key=certs / "server.key",
        checkpoint_interval=0,
    )
    issuer = TokenIssuer(load_or_create_signing_key(config.token_key_path))
    token = issuer.issue(
        subject="pos-test-1", role=Role.CHANNEL, ttl_seconds=600, channel="pos-test"
    ).token
    server = LedgerServer(config)
    server.start()
    # the published keys, as `loyalty-ledger audit public-key` prints them
    # (tests/test_readme.py runs that command; in process here, per test)
    assert server.log_keys is not None
    journal_key = server.log_keys.verifier_key(JOURNAL_LOG)
    access_key = server.log_keys.verifier_key(ACCESS_LOG)
    try:
        yield Ledger(server, certs, token, journal_key, access_key)
    finally:
        server.stop(grace=1)
