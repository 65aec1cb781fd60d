"""The SDK's offline queue (loyalty_client.OfflineQueue, docs/outage.md)
against a real ledger over TLS with a channel token: items queued while
the ledger is unreachable survive the till restarting, replay in the order
of the sales, apply exactly once however often replay runs (also when the
answer to a replay is lost), report a shortfall for a redemption the
member's points no longer covered, and keep refused items for a person."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from loyalty_client import OfflineQueue, Unavailable
from tests.support.grpc_proxy import Fault
from tests.support.sdk import Ledger, running_ledger

REPLAY = "/loyalty.ledger.v1.LedgerService/ReplayOffline"


@pytest.fixture
def ledger(db_url: str, tmp_path: Path) -> Iterator[Ledger]:
    with running_ledger(db_url, tmp_path) as found:
        yield found


def _minutes_ago(n: int) -> int:
    return time.time_ns() // 1000 - n * 60_000_000


def test_queued_sales_survive_a_restart_and_replay_once(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "till" / "queue.db"
    with ledger.client() as c:
        account = c.open_account()
        c.earn(account, 10)
    # the ledger is unreachable: the till queues, then is restarted
    with OfflineQueue(path, channel_id="pos-test", store_id="store-test-1") as q:
        earn_key = q.earn(account, 40, external_id="ORD-TEST-0001", occurred_us=_minutes_ago(30))
        spend_key = q.redeem(account, 45, occurred_us=_minutes_ago(20))  # after the earn
        assert q.pending() == 2
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with OfflineQueue(path, channel_id="pos-test", store_id="store-test-1") as q:
        assert q.pending() == 2
        with ledger.client() as c:
            outcomes = q.replay(c)
            assert [(o.key, o.code) for o in outcomes] == [(earn_key, 0), (spend_key, 0)]
            assert q.pending() == 0 and q.replay(c) == []  # nothing left to send
            assert c.get_balance(account).points == 5
        assert [o.key for o in q.applied()] == [earn_key, spend_key]
    # a till that lost its queue state re-queues the same sales: applied once
    with OfflineQueue(tmp_path / "copy.db", channel_id="pos-test", store_id="store-test-1") as q2:
        q2.earn(account, 40, external_id="ORD-TEST-0001", key=earn_key)  # the same sale
        with ledger.client() as c:
            (again,) = q2.replay(c)
            assert again.code == 0 and again.entry_sequence == outcomes[0].entry_sequence
            assert c.get_balance(account).points == 5


def test_a_lost_replay_answer_is_retried_and_applies_once(ledger: Ledger, tmp_path: Path) -> None:
    with ledger.client() as c:
        account = c.open_account()
    proxy = ledger.proxy(Fault(REPLAY, grpc.StatusCode.UNAVAILABLE, after=True))
    try:
        with OfflineQueue(tmp_path / "q.db", channel_id="pos-test") as q:
            for n in range(5):
                q.earn(account, 2, occurred_us=_minutes_ago(10 - n))
            address = f"127.0.0.1:{proxy.port}"  # type: ignore[attr-defined]
            with ledger.client(address) as c:
                outcomes = q.replay(c)
            assert [o.code for o in outcomes] == [0] * 5
            assert proxy.forwarded.count(REPLAY) == 2  # applied, answer lost, sent again
        with ledger.client() as c:
            assert c.get_balance(account).points == 10
    finally:
        proxy.stop()


def test_a_ledger_still_down_keeps_everything_queued(ledger: Ledger, tmp_path: Path) -> None:
    with ledger.client() as c:
        account = c.open_account()
    proxy = ledger.proxy(Fault(REPLAY, grpc.StatusCode.UNAVAILABLE, after=False, times=99))
    try:
        with OfflineQueue(tmp_path / "q.db", channel_id="pos-test") as q:
            q.earn(account, 3, occurred_us=_minutes_ago(1))
            address = f"127.0.0.1:{proxy.port}"  # type: ignore[attr-defined]
            with ledger.client(address) as c, pytest.raises(Unavailable):
                q.replay(c)
            assert q.pending() == 1 and proxy.forwarded == []
            with ledger.client() as c:  # back: the same item, its key
                assert [o.code for o in q.replay(c)] == [0]
                assert c.get_balance(account).points == 3
    finally:
        proxy.stop()


def test_shortfalls_and_refusals_are_reported(ledger: Ledger, tmp_path: Path) -> None:
    with ledger.client() as c:
        account = c.open_account()
        c.earn(account, 10)
        with OfflineQueue(tmp_path / "q.db", channel_id="pos-test", store_id="store-test-1") as q:
            short = q.redeem(account, 25, occurred_us=_minutes_ago(5))
            nobody = q.earn("mbr_" + "a" * 26, 5, occurred_us=_minutes_ago(4))
            outcomes = {o.key: o for o in q.replay(c)}
            assert outcomes[short].applied and outcomes[short].shortfall_points == 15
            assert outcomes[nobody].code == grpc.StatusCode.NOT_FOUND.value[0]
            assert outcomes[nobody].message.startswith("member_account_id: ")
            assert [o.key for o in q.refused()] == [nobody]  # kept for a person
            assert q.pending() == 0
            assert q.discard(nobody) and q.refused() == []
        assert c.get_balance(account).points == 0


def test_queue_arguments_are_checked(tmp_path: Path) -> None:
    with OfflineQueue(tmp_path / "q.db", channel_id="pos-test") as q:
        with pytest.raises(ValueError, match="batch"):
            q.replay(object(), batch=0)  # type: ignore[arg-type]
        q.earn("mbr_" + "b" * 26, 1, key="sdk-test-dup-0001")
        with pytest.raises(Exception, match="UNIQUE"):  # one item per key
            q.earn("mbr_" + "b" * 26, 1, key="sdk-test-dup-0001")
