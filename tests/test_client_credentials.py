"""The SDK's one credentials helper (loyalty_client.credentials) against
real servers: TLS trusting only the given CA, mTLS with a client
certificate (the certificate names the channel principal), a bearer token;
what each refusal looks like (typed, never retried when it is an answer),
and the per-call deadline. All identities are development fakes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from access.certs import make_dev_certs
from ledger.config import ServerConfig
from ledger.server import LedgerServer
from loyalty_client import (
    LedgerClient,
    PermissionDenied,
    RetryPolicy,
    Unauthenticated,
    Unavailable,
    credentials,
)
from tests.support.sdk import FAST, Ledger, running_ledger

ONCE = RetryPolicy(max_attempts=1)


@pytest.fixture
def ledger(db_url: str, tmp_path: Path) -> Iterator[Ledger]:
    with running_ledger(db_url, tmp_path) as found:
        yield found


@pytest.fixture
def mtls_server(tmp_path: Path) -> Iterator[tuple[LedgerServer, Path]]:
    certs = tmp_path / "certs"
    make_dev_certs(certs)  # pos-demo.pem: channel principal pos-0001 of channel pos-demo
    srv = LedgerServer(
        ServerConfig(
            data_dir=tmp_path,
            database_url=f"sqlite:///{tmp_path / 'ledger.db'}",
            listen="127.0.0.1:0",
            auth="mtls",
            tls_cert=certs / "server.pem",
            tls_key=certs / "server.key",
            client_ca=certs / "ca.pem",
            checkpoint_interval=0,
        )
    )
    srv.start()
    yield srv, certs
    srv.stop(grace=1)


def test_mtls_client_certificate_names_the_channel(
    mtls_server: tuple[LedgerServer, Path],
) -> None:
    srv, certs = mtls_server
    address = f"127.0.0.1:{srv.port}"
    creds = credentials(
        ca_file=certs / "ca.pem", cert_file=certs / "pos-demo.pem", key_file=certs / "pos-demo.key"
    )
    with LedgerClient(address, creds, channel_id="pos-demo", retry=FAST) as c:
        account = c.open_account()
        assert c.earn(account, 11).balance.points == 11
    # the certificate binds channel pos-demo: acting for another is refused
    with LedgerClient(address, creds, channel_id="pos-other", retry=FAST) as c:
        with pytest.raises(PermissionDenied) as denied:
            c.open_account()
        assert denied.value.message.startswith("context.channel_id")  # no BadRequest here
    # a staff certificate is not a channel: it may not earn
    staff = credentials(
        ca_file=certs / "ca.pem",
        cert_file=certs / "member-service.pem",
        key_file=certs / "member-service.key",
    )
    with (
        LedgerClient(address, staff, channel_id="staff", retry=FAST) as c,
        pytest.raises(PermissionDenied),
    ):
        c.earn(account, 1)
    # without a client certificate the TLS handshake itself fails: no answer
    # came, so it is Unavailable (retried within the policy, then raised)
    bare = credentials(ca_file=certs / "ca.pem")
    with (
        LedgerClient(address, bare, channel_id="pos-demo", retry=ONCE) as c,
        pytest.raises((Unavailable, Unauthenticated)),
    ):
        c.open_account()


def test_tokens_are_checked_and_refusals_are_not_retried(ledger: Ledger) -> None:
    retries: list[int] = []
    for token in ("not-a-jwt", ledger.token[:-4] + "AAAA"):  # malformed; altered signature
        creds = credentials(ca_file=ledger.certs / "ca.pem", token=token)
        with LedgerClient(
            ledger.address,
            creds,
            channel_id="pos-test",
            retry=FAST,
            on_retry=lambda _m, n, _e, _w: retries.append(n),
        ) as c:
            with pytest.raises(Unauthenticated) as refused:
                c.open_account()
            assert refused.value.message  # names the check that failed
            assert token not in str(refused.value)
    no_token = credentials(ca_file=ledger.certs / "ca.pem")
    with (
        LedgerClient(ledger.address, no_token, channel_id="pos-test", retry=FAST) as c,
        pytest.raises(Unauthenticated),
    ):
        c.open_account()
    assert retries == []


def test_a_server_outside_the_trusted_ca_is_not_talked_to(ledger: Ledger, tmp_path: Path) -> None:
    other = tmp_path / "other-ca"
    make_dev_certs(other)  # another CA: the ledger's certificate does not chain to it
    creds = credentials(ca_file=other / "ca.pem", token=ledger.token)
    with (
        LedgerClient(ledger.address, creds, channel_id="pos-test", retry=ONCE) as c,
        pytest.raises(Unavailable),
    ):
        c.open_account()


def test_the_default_deadline_and_a_per_call_one(ledger: Ledger) -> None:
    with ledger.client(timeout=0.001, retry=ONCE) as c:  # too short for any call
        started = time.monotonic()
        with pytest.raises(Exception) as late:
            c.open_account()
        assert type(late.value).__name__ == "DeadlineExceeded"
        assert time.monotonic() - started < 2
        # one call may take longer than the client's default
        request = c.requests.open_account(None)
        assert c.call(c.ledger.OpenAccount, request, timeout=5).member_account_id


def test_credentials_input_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cert_file and key_file"):
        credentials(key_file=tmp_path / "a.key")
    with pytest.raises(ValueError, match="token"):
        credentials(token="  ")
    with pytest.raises(FileNotFoundError):
        credentials(ca_file=tmp_path / "missing-ca.pem")
