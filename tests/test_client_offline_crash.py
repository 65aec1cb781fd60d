"""The offline queue when the till itself dies mid-replay: a real child
process replays a store's queue through a real ledger (TLS, channel
token) and is killed (``os._exit``) right after the ledger answered, before
the queue could record a single outcome. Reopened, the queue still holds
every item; replaying again sends them with the same keys, so the ledger
answers with the entries it made the first time and the points count once;
a further replay sends nothing. Also: what the ledger would surely refuse
is refused when queued, by name. All data is fake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loyalty_client import OfflineQueue
from tests.support.sdk import Ledger, running_ledger

CRASHING_TILL = textwrap.dedent(
    """
    import json, os, sys
    from loyalty_client import LedgerClient, OfflineQueue, credentials

    address, ca, token, path = sys.argv[1:5]

    class DiesAfterTheAnswer:
        def __init__(self, client):
            self.client = client

        def replay_offline(self, items):
            response = self.client.replay_offline(items)  # applied by the ledger
            seqs = [getattr(r, r.WhichOneof("response") or "earn").entry.sequence
                    for r in response.results]
            print(json.dumps({"codes": [r.code for r in response.results], "seqs": seqs}))
            sys.stdout.flush()
            os._exit(9)  # the till loses power before the queue records anything

    creds = credentials(ca_file=ca, token=token)
    with LedgerClient(address, creds, channel_id="pos-test", store_id="store-test-1") as c:
        with OfflineQueue(path, channel_id="pos-test", store_id="store-test-1") as q:
            q.replay(DiesAfterTheAnswer(c))
    """
)


@pytest.fixture
def ledger(db_url: str, tmp_path: Path) -> Iterator[Ledger]:
    with running_ledger(db_url, tmp_path) as found:
        yield found


def _minutes_ago(n: int) -> int:
    return time.time_ns() // 1000 - n * 60_000_000


def test_a_till_killed_mid_replay_replays_with_the_same_keys(
    ledger: Ledger, tmp_path: Path
) -> None:
    path = tmp_path / "till" / "queue.db"
    with ledger.client() as c:
        account = c.open_account()
        c.earn(account, 10)
    with OfflineQueue(path, channel_id="pos-test", store_id="store-test-1") as q:
        keys = [
            q.earn(account, 30, external_id="ORD-TEST-0101", occurred_us=_minutes_ago(40)),
            q.redeem(account, 25, occurred_us=_minutes_ago(30)),
            q.earn(account, 7, occurred_us=_minutes_ago(20)),
        ]
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_TILL, ledger.address, str(ledger.certs / "ca.pem"),
         ledger.token, str(path)],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent.parent,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )  # fmt: skip
    assert done.returncode == 9, done.stderr[-2000:]
    first = json.loads(done.stdout.strip().splitlines()[-1])
    assert first["codes"] == [0, 0, 0]
    with ledger.client() as c:
        assert c.get_balance(account).points == 22  # applied by the replay that "crashed"
    with OfflineQueue(path, channel_id="pos-test", store_id="store-test-1") as q:
        assert q.pending() == 3  # nothing was recorded: everything is still queued
        with ledger.client() as c:
            outcomes = q.replay(c)
            assert [o.key for o in outcomes] == keys
            assert [o.code for o in outcomes] == [0, 0, 0]
            # the same entries as the first time: the keys were the same
            assert [o.entry_sequence for o in outcomes] == first["seqs"]
            assert q.replay(c) == [] and q.pending() == 0  # run again: nothing sent
            assert c.get_balance(account).points == 22
        assert ledger.entries(c, account) == 4  # the online earn and the three, once


def test_what_the_ledger_would_refuse_is_refused_when_queued(tmp_path: Path) -> None:
    account = "mbr_" + "c" * 26
    with OfflineQueue(tmp_path / "q.db", channel_id="pos-test") as q:
        with pytest.raises(ValueError, match="points"):
            q.earn(account, 0)
        with pytest.raises(ValueError, match="points"):
            q.earn(account, -3)
        with pytest.raises(ValueError, match="points"):
            q.redeem(account, 0)
        with pytest.raises(ValueError, match="account"):
            q.earn("", 5)
        with pytest.raises(ValueError, match="occurred_us"):
            q.earn(account, 5, occurred_us=time.time_ns() // 1000 + 3_600_000_000)
        assert q.earn(account, 0, purchase_minor=1999, currency="EUR")  # computed: fine
        assert q.pending() == 1
