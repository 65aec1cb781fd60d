"""TLS with client certificates (``auth="mtls"``), set up by the
``dev-certs`` command: the certificate names the principal, the CA is
enforced at the handshake, and the permission table applies as for tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

from access.certs import make_dev_certs, principal_from_certificate
from access.errors import AuthenticationError
from access.principal import Role
from access.tokens import TokenIssuer, load_or_create_signing_key
from ledger.cli import main as cli
from ledger.config import ServerConfig
from ledger.server import LedgerServer
from tests.conftest import ctx, key


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    out = tmp_path / "certs"
    assert cli(["--log-level", "error", "dev-certs", "--out", str(out)]) == 0
    return out


@pytest.fixture
def mtls_server(db_url: str, tmp_path: Path, certs: Path) -> Iterator[LedgerServer]:
    config = ServerConfig(
        data_dir=tmp_path,
        database_url=db_url,
        listen="127.0.0.1:0",
        auth="mtls",
        tls_cert=certs / "server.pem",
        tls_key=certs / "server.key",
        client_ca=certs / "ca.pem",
    )
    server = LedgerServer(config)
    server.start()
    yield server
    server.stop(grace=1)


def _stub(
    server: LedgerServer, certs: Path, client: str | None
) -> tuple[grpc.Channel, ledger_pb2_grpc.LedgerServiceStub]:
    creds = grpc.ssl_channel_credentials(
        root_certificates=(certs / "ca.pem").read_bytes(),
        private_key=(certs / f"{client}.key").read_bytes() if client else None,
        certificate_chain=(certs / f"{client}.pem").read_bytes() if client else None,
    )
    channel = grpc.secure_channel(f"127.0.0.1:{server.port}", creds)
    return channel, ledger_pb2_grpc.LedgerServiceStub(channel)


def _code(call: object) -> grpc.StatusCode:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def _balance_code(stub: ledger_pb2_grpc.LedgerServiceStub) -> grpc.StatusCode:
    request = pb.GetBalanceRequest(member_account_id="mbr_" + "a" * 26)
    return _code(lambda: stub.GetBalance(request, timeout=5))


def test_channel_certificate_earns_for_its_own_channel_only(
    mtls_server: LedgerServer, certs: Path
) -> None:
    channel, stub = _stub(mtls_server, certs, "pos-demo")
    with channel:
        pos = ctx("pos-demo")
        account = stub.OpenAccount(
            pb.OpenAccountRequest(idempotency_key=key(), context=pos)
        ).member_account_id
        earned = stub.Earn(
            pb.EarnRequest(idempotency_key=key(), context=pos, member_account_id=account, points=7)
        )
        assert earned.balance.points == 7
        other = ctx("pos-test")
        assert (
            _code(
                lambda: stub.Earn(
                    pb.EarnRequest(
                        idempotency_key=key(), context=other, member_account_id=account, points=1
                    )
                )
            )
            == grpc.StatusCode.PERMISSION_DENIED
        )
        assert (
            _code(lambda: stub.GetEntry(pb.GetEntryRequest(sequence=1)))
            == grpc.StatusCode.PERMISSION_DENIED
        )


def test_staff_certificate_gets_its_role(mtls_server: LedgerServer, certs: Path) -> None:
    channel, stub = _stub(mtls_server, certs, "compliance")
    with channel:
        assert (
            _code(lambda: stub.GetEntry(pb.GetEntryRequest(sequence=1)))
            == grpc.StatusCode.NOT_FOUND
        )
        assert (
            _code(
                lambda: stub.OpenAccount(
                    pb.OpenAccountRequest(idempotency_key=key(), context=ctx("pos-demo"))
                )
            )
            == grpc.StatusCode.PERMISSION_DENIED
        )


def test_a_token_on_an_mtls_connection_names_the_principal(
    mtls_server: LedgerServer, certs: Path
) -> None:
    issuer = TokenIssuer(load_or_create_signing_key(mtls_server.config.token_key_path))
    token = issuer.issue(subject="staff-0009", role=Role.MEMBER_SERVICE, ttl_seconds=60).token
    channel, stub = _stub(mtls_server, certs, "pos-demo")
    with channel:
        call = lambda: stub.ListEntries(  # noqa: E731
            pb.ListEntriesRequest(member_account_id="mbr_" + "a" * 26),
            metadata=(("authorization", f"Bearer {token}"),),
        )
        assert (
            _code(call) == grpc.StatusCode.NOT_FOUND
        )  # allowed to member_service, no such account


def test_handshake_refuses_missing_or_foreign_client_certificates(
    mtls_server: LedgerServer, certs: Path, tmp_path: Path
) -> None:
    no_cert, stub = _stub(mtls_server, certs, None)
    with no_cert:
        assert _balance_code(stub) == grpc.StatusCode.UNAVAILABLE
    foreign = tmp_path / "foreign"
    make_dev_certs(foreign)
    creds = grpc.ssl_channel_credentials(
        root_certificates=(certs / "ca.pem").read_bytes(),
        private_key=(foreign / "pos-demo.key").read_bytes(),
        certificate_chain=(foreign / "pos-demo.pem").read_bytes(),
    )
    with grpc.secure_channel(f"127.0.0.1:{mtls_server.port}", creds) as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        assert _balance_code(stub) == grpc.StatusCode.UNAVAILABLE
    with grpc.insecure_channel(f"127.0.0.1:{mtls_server.port}") as plain:
        stub = ledger_pb2_grpc.LedgerServiceStub(plain)
        assert _balance_code(stub) == grpc.StatusCode.UNAVAILABLE


def test_certificate_identities(certs: Path) -> None:
    pos = principal_from_certificate((certs / "pos-demo.pem").read_bytes())
    assert (pos.id, pos.role, pos.channel) == ("pos-0001", Role.CHANNEL, "pos-demo")
    assert (
        principal_from_certificate((certs / "compliance.pem").read_bytes()).role is Role.COMPLIANCE
    )
    with pytest.raises(AuthenticationError, match="certificate: subject needs"):
        principal_from_certificate((certs / "server.pem").read_bytes())
    with pytest.raises(AuthenticationError, match="certificate: malformed"):
        principal_from_certificate(
            b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"
        )


def test_mtls_without_client_ca_is_refused(tmp_path: Path, certs: Path) -> None:
    config = ServerConfig(
        data_dir=tmp_path,
        listen="127.0.0.1:0",
        auth="mtls",
        tls_cert=certs / "server.pem",
        tls_key=certs / "server.key",
    )
    with pytest.raises(ValueError, match="mtls"):
        LedgerServer(config).start()
