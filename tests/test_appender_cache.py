"""The writer's cache of member families stays bounded by their size, not
only by how many members it holds: a family grows with every earn, so a
member count alone let the writer's memory grow with the journal. After
the cache is dropped the balances are still right (they are read again)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from loyalty.ledger.v1 import ledger_pb2 as pb

import ledger.appender as appender_module
from ledger.appender import Appender
from ledger.keys.keyring import FileKeyring
from ledger.members.vault import MemberVault
from ledger.service import messages as m
from ledger.storage.database import open_database
from ledger.storage.journal_reads import JournalReads
from ledger.storage.migrate import upgrade
from ledger.verify import verify_database


def test_family_cache_is_bounded_by_accounts_and_stays_correct(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(appender_module, "_CACHE_ACCOUNT_LIMIT", 60)
    db = open_database(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(db)
    vault = MemberVault.for_keyring(FileKeyring.open(tmp_path / "keyring.json"))
    appender = Appender(db=db, vault=vault, max_batch=8)
    try:
        members = []
        for i in range(6):
            request = pb.OpenAccountRequest(
                idempotency_key=f"cache-open-{i:04d}", context=pb.ChannelContext(channel_id="pos")
            )
            command = m.open_account_command(request, vault)
            appender.append_all_blocking([command])
            members.append(command.account)
        sizes = []
        for round_ in range(30):
            commands = [
                m.earn_command(
                    pb.EarnRequest(
                        idempotency_key=f"cache-earn-{round_:03d}-{i}",
                        context=pb.ChannelContext(channel_id="pos"),
                        member_account_id=member,
                        points=i + 1,
                    ),
                    limit=1000,
                )
                for i, member in enumerate(members)
            ]
            assert all(isinstance(o, bytes) for o in appender.append_all_blocking(commands))
            sizes.append(appender._cache_accounts)
        # unbounded, it would only grow: 6 families of 30 lots (an account
        # and its terms per lot) end at 360
        unbounded = 6 * 30 * 2
        assert any(after < before for before, after in itertools.pairwise(sizes)), sizes
        assert max(sizes) < unbounded, sizes
    finally:
        appender.close()
    reads = JournalReads(db.reader)
    for i, member in enumerate(members):
        family, _ = reads.family(member)
        assert sum(family.accounts.values()) == 30 * (i + 1)
    assert verify_database(db)
    db.dispose()
