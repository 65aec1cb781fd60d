"""Compliance's offline round trip with the real CLI: export a bundle from
a live database, verify it with only the published verifier keys, keep the
verified checkpoint, and catch a database replaced by another history."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

from audit.note import Signer
from ledger.config import ServerConfig
from ledger.server import LedgerServer
from tests.conftest import ctx, key
from tests.support.process import cli_path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cli_path(), "--log-level", "error", *args], capture_output=True, text=True, timeout=120
    )


def _ledger(
    data_dir: Path,
    keyring: Path,
    witness: Path,
    earns: int,
    points: int,
    signer_state: Path | None = None,
) -> None:
    config = ServerConfig(
        data_dir=data_dir,
        listen="127.0.0.1:0",
        auth="none",
        plaintext=True,
        keyring=keyring,
        witness_dir=witness,
        signer_state=signer_state,
    )
    server = LedgerServer(config)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = ledger_pb2_grpc.LedgerServiceStub(channel)
            account = stub.OpenAccount(
                pb.OpenAccountRequest(idempotency_key=key(), context=ctx())
            ).member_account_id
            for _ in range(earns):
                stub.Earn(
                    pb.EarnRequest(
                        idempotency_key=key(),
                        context=ctx(store_id="store-0001"),
                        member_account_id=account,
                        points=points,
                    )
                )
    finally:
        server.stop(grace=1)


def _export(
    data_dir: Path, keyring: Path, witness: Path, out: Path, signer_state: Path | None = None
) -> list[str]:
    common = ["--data-dir", str(data_dir), "--keyring", str(keyring)]
    state = ["--signer-state", str(signer_state)] if signer_state else []
    done = _cli(
        "audit", "export", *common, *state, "--witness-dir", str(witness), "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    keys = _cli("audit", "public-key", *common)
    assert keys.returncode == 0, keys.stderr
    printed = keys.stdout.splitlines()
    assert all(" " not in k for k in printed)  # as printed: `audit verify --key` takes them
    return printed


def _verify(bundle: Path, keys: list[str], state: Path) -> subprocess.CompletedProcess[str]:
    args = ["audit", "verify", str(bundle), "--state", str(state)]
    for k in keys:
        args += ["--key", k]
    return _cli(*args)


def test_export_verify_and_detect_a_replaced_database(tmp_path: Path) -> None:
    keyring, witness, state = tmp_path / "keyring.json", tmp_path / "witness", tmp_path / "state"
    _ledger(tmp_path / "a", keyring, witness, earns=12, points=5)
    keys = _export(tmp_path / "a", keyring, witness, tmp_path / "one.jsonl")
    first = _verify(tmp_path / "one.jsonl", keys, state)
    assert first.returncode == 0, first.stdout
    assert first.stdout.strip().endswith("OK") and "size: 12" in first.stdout
    assert sorted(p.name for p in state.iterdir()) == [
        "loyalty-ledger.local_access.checkpoint",
        "loyalty-ledger.local_journal.checkpoint",
    ]
    assert len(list((witness / "loyalty-ledger.local_journal").iterdir())) == 1

    # the ledger grows: the new bundle proves it extends what was verified
    _ledger(tmp_path / "a", keyring, witness, earns=3, points=5)
    _export(tmp_path / "a", keyring, witness, tmp_path / "two.jsonl")
    second = _verify(tmp_path / "two.jsonl", keys, state)
    assert second.returncode == 0, second.stdout

    # another, internally consistent history under the same key: the signer
    # refuses to sign it, for its own state (beside the keyring) remembers
    # the tree it signed for ledger a
    shutil.rmtree(tmp_path / "b", ignore_errors=True)
    _ledger(tmp_path / "b", keyring, tmp_path / "witness-b", earns=20, points=7)
    refused = _cli(
        "audit",
        "export",
        *["--data-dir", str(tmp_path / "b"), "--keyring", str(keyring)],
        *["--out", str(tmp_path / "refused.jsonl")],
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "refusing to sign" in refused.stderr and "not an extension" in refused.stderr

    # a keyring holder can run the key with a signer state of their own
    # (signed checkpoints and all); the auditor's saved checkpoint catches
    # that, though every hash in the new bundle checks out
    forger = tmp_path / "forger-state"
    _ledger(tmp_path / "b", keyring, tmp_path / "witness-b", earns=0, points=7, signer_state=forger)
    _export(tmp_path / "b", keyring, tmp_path / "witness-b", tmp_path / "forged.jsonl", forger)
    forged = _verify(tmp_path / "forged.jsonl", keys, state)
    assert forged.returncode == 1
    assert "fork" in forged.stdout and "journal" in forged.stdout


def test_verify_refuses_untrusted_keys(tmp_path: Path) -> None:
    keyring, witness = tmp_path / "keyring.json", tmp_path / "witness"
    _ledger(tmp_path / "a", keyring, witness, earns=2, points=5)
    _export(tmp_path / "a", keyring, witness, tmp_path / "b.jsonl")
    # a well-formed key of the same name, but not the log's: it must not vouch
    stranger = Signer.generate("loyalty-ledger.local/journal").verifier_key()
    done = _verify(tmp_path / "b.jsonl", [stranger], tmp_path / "state")
    assert done.returncode != 0
    assert done.returncode == 1  # verified and found wanting, not an unreadable key
    assert "trusted" in done.stdout
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())


def test_range_export_verifies_on_its_own_and_extends_state(tmp_path: Path) -> None:
    keyring, witness, state = tmp_path / "keyring.json", tmp_path / "witness", tmp_path / "state"
    _ledger(tmp_path / "a", keyring, witness, earns=9, points=5)
    keys = _export(tmp_path / "a", keyring, witness, tmp_path / "whole.jsonl")
    assert _verify(tmp_path / "whole.jsonl", keys, state).returncode == 0
    _ledger(tmp_path / "a", keyring, witness, earns=4, points=5)
    common = ["--data-dir", str(tmp_path / "a"), "--keyring", str(keyring)]
    done = _cli(
        "audit",
        "export",
        *common,
        "--log",
        "journal",
        "--since",
        "9",
        "--out",
        str(tmp_path / "range.jsonl"),
    )
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "range.jsonl").read_text()
    assert '"type":"start"' in text and '"seq":1,' not in text
    ranged = _verify(tmp_path / "range.jsonl", keys[:1], state)
    assert ranged.returncode == 0, ranged.stdout
    assert "size: 13" in ranged.stdout


def test_range_export_refuses_bad_ranges(tmp_path: Path) -> None:
    keyring, witness = tmp_path / "keyring.json", tmp_path / "witness"
    _ledger(tmp_path / "a", keyring, witness, earns=3, points=5)
    common = ["--data-dir", str(tmp_path / "a"), "--keyring", str(keyring)]
    out = ["--out", str(tmp_path / "r.jsonl")]
    for args, text in (
        (["--log", "journal", "--since", "-1"], "--since: must be >= 0"),
        (["--since", "2"], "--since: export one log"),
        (["--log", "journal", "--since", "99"], "the log has only 3 entries"),
    ):
        done = _cli("audit", "export", *common, *args, *out)
        assert done.returncode == 2 and text in done.stderr, (args, done.stderr)


def test_export_of_a_journal_with_a_gap_is_a_clean_failure(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from tests.test_tamper import _drop_triggers

    keyring, witness = tmp_path / "keyring.json", tmp_path / "witness"
    _ledger(tmp_path / "a", keyring, witness, earns=8, points=5)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'a' / 'ledger.db'}")
    with engine.begin() as conn:
        _drop_triggers(conn)
        conn.exec_driver_sql("DELETE FROM journal_postings WHERE seq = 5")
        conn.exec_driver_sql("DELETE FROM journal_entries WHERE seq = 5")
    engine.dispose()
    out = tmp_path / "gap.jsonl"
    common = ["--data-dir", str(tmp_path / "a"), "--keyring", str(keyring)]
    done = _cli("audit", "export", *common, "--witness-dir", str(witness), "--out", str(out))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "journal log: entry 5 is missing" in done.stderr
    assert not out.exists()  # no half bundle left behind
