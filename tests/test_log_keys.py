"""Each log has its own signing key, and keys rotate (issue 13, item 3):
`audit public-key` printed the same key twice (both logs signed from one
seed). A rotated log signs new checkpoints with the new key; checkpoints,
the signer state and bundles signed with the old one still verify."""

from __future__ import annotations

from pathlib import Path

import grpc
from loyalty.audit.v1 import audit_pb2 as apb
from loyalty.audit.v1 import audit_pb2_grpc
from loyalty.ledger.v1 import ledger_pb2_grpc

from ledger.checkpoints import SIGNING_SECRET
from ledger.config import ServerConfig
from ledger.keys.keyring import FileKeyring
from ledger.server import LedgerServer
from tests.conftest import earn, open_account
from tests.support.process import run_cli

_cli = run_cli


def _keys(data: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key in _cli("audit", "public-key", "--data-dir", str(data)).stdout.splitlines():
        origin = key.split("+", 1)[0]  # <origin>/journal or <origin>/access; newest first
        out.setdefault(origin.rsplit("/", 1)[1], []).append(key)
    return out


def _checkpoint(data: Path) -> apb.Checkpoint:
    config = ServerConfig(
        data_dir=data, listen="127.0.0.1:0", auth="none", plaintext=True, checkpoint_interval=0
    )
    server = LedgerServer(config)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            earn(
                ledger_pb2_grpc.LedgerServiceStub(channel),
                open_account(ledger_pb2_grpc.LedgerServiceStub(channel)),
                5,
            )
            stub = audit_pb2_grpc.AuditServiceStub(channel)
            return stub.CreateCheckpoint(apb.CreateCheckpointRequest(log=apb.LOG_JOURNAL))
    finally:
        server.stop(grace=1)


def test_a_new_ledger_signs_each_log_with_its_own_key(tmp_path: Path) -> None:
    keys = _keys(tmp_path / "data")
    (journal,), (access,) = keys["journal"], keys["access"]
    assert journal.split("+")[0].endswith("/journal") and access.split("+")[0].endswith("/access")
    assert journal.split("+")[2] != access.split("+")[2]  # different public keys


def test_rotation_keeps_old_checkpoints_verifiable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # a keyring from before per-log keys: one seed for both logs
    FileKeyring.open(data / "keys" / "keyring.json").secret(SIGNING_SECRET)
    keys = _keys(data)
    assert keys["journal"][0].split("+")[2] == keys["access"][0].split("+")[2]
    first = _checkpoint(data)
    assert first.verifier_key == keys["journal"][0]

    rotated = _cli("audit", "rotate-key", "--data-dir", str(data), "--log", "journal").stdout
    assert "signing key version 2" in rotated
    after = _keys(data)
    new, old = after["journal"]
    assert old == keys["journal"][0] and new != old
    assert after["access"] == keys["access"]  # the other log's key is untouched

    # a restarted server signs with version 2, over the state version 1 signed
    second = _checkpoint(data)
    assert second.tree_size > first.tree_size and second.verifier_key == new
    bundle = tmp_path / "b.jsonl"
    _cli("audit", "export", "--data-dir", str(data), "--log", "journal", "--out", str(bundle))
    both = _cli("audit", "verify", str(bundle), "--key", new, "--key", old)
    assert both.stdout.rstrip().endswith("OK")
    only_new = _cli("audit", "verify", str(bundle), "--key", new, check=False)
    assert only_new.returncode == 1  # the old checkpoints name a key the auditor was not given
