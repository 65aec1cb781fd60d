"""The README's first-call example runs against a real server, and the
README shows exactly that file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from access.certs import make_dev_certs
from ledger.config import ServerConfig
from ledger.server import LedgerServer
from tests.support.process import cli_path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "first_call.py"


def test_readme_embeds_the_example_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    assert EXAMPLE.read_text().strip() in readme


def test_first_call_example_runs(tmp_path: Path) -> None:
    """As the README says: dev certificates, a TLS server with token auth, a
    channel token from `loyalty-ledger token issue`, then the example."""
    certs = tmp_path / "certs"
    make_dev_certs(certs)
    config = ServerConfig(
        data_dir=tmp_path,
        listen="127.0.0.1:0",
        auth="tokens",
        tls_cert=certs / "server.pem",
        tls_key=certs / "server.key",
    )
    server = LedgerServer(config)
    server.start()
    try:
        _run_example(tmp_path, certs, server.port)
    finally:
        server.stop(grace=1)


def _run_example(tmp_path: Path, certs: Path, port: int) -> None:
    issued = subprocess.run(
        [
            cli_path(),
            "--log-level",
            "error",
            "token",
            "issue",
            "--data-dir",
            str(tmp_path),
            "--subject",
            "pos-demo-1",
            "--role",
            "channel",
            "--channel",
            "pos-demo",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    keys = subprocess.run(
        [cli_path(), "--log-level", "error", "audit", "public-key", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    env = dict(
        os.environ,
        LEDGER_ADDRESS=f"127.0.0.1:{port}",
        LEDGER_CA=str(certs / "ca.pem"),
        LEDGER_TOKEN=issued.stdout.strip(),
        LEDGER_JOURNAL_KEY=keys.stdout.splitlines()[0],  # as the README's `head -1`
    )
    out = subprocess.run(
        [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    # entry 1 commits the enrolled profile (a profile entry), 2 the earn, 3 the redeem
    assert ": 100 points (as of entry 3)" in out.stdout and "earn entry 2 " in out.stdout
    assert "receipt verified: entry 2 in a tree of " in out.stdout
    # run twice: the idempotency keys make the second run a pure replay
    again = subprocess.run(
        [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=60
    )
    assert again.stdout == out.stdout


def test_readme_access_table_is_the_permission_table() -> None:
    """Every RPC of the contract is in the README's table, with exactly the
    roles access/permissions.py admits (issue 13, item 10: eight RPCs were
    missing and their roles undocumented)."""
    import re

    from access.permissions import PERMISSIONS, STAFF
    from access.principal import Role

    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| RPC | roles |") :].split("\n\n", 1)[0].splitlines()[2:]
    documented: dict[str, frozenset[Role]] = {}
    for row in table:
        rpcs, roles = (cell.strip() for cell in row.strip("|").split("|"))
        service, names = rpcs.split(": ")
        if roles.startswith("every role"):
            allowed = frozenset(Role)
        elif roles.startswith("every staff role"):
            allowed = STAFF
        else:
            head = re.sub(r"\([^)]*\)", "", roles).split(";")[0]
            allowed = frozenset(Role(r.strip()) for r in head.split(","))
        package = {
            "LedgerService": "ledger",
            "MemberService": "members",
            "RewardService": "rewards",
        }.get(service)
        package = package or service.removesuffix("Service").lower()
        for name in names.split(", "):
            documented[f"/loyalty.{package}.v1.{service}/{name}"] = allowed
    contract = {m: r for m, r in PERMISSIONS.items() if m.startswith("/loyalty.")}
    assert documented == contract


def test_readme_grpcurl_lines_work_as_written(tmp_path: Path) -> None:
    """Every grpcurl line of the README, against servers set up as the README
    sets them up: the token server of `make serve` (port 50051) and the mTLS
    server of the certificates section (port 50052). The health line sends
    no token. grpcurl itself is emulated (tests/support/grpcurl.py)."""
    import loyalty.ledger.v1.ledger_pb2  # noqa: F401 - the schemas grpcurl would load
    from grpc_health.v1 import health_pb2  # noqa: F401

    from tests.support import grpcurl

    certs = tmp_path / "certs"
    make_dev_certs(certs)
    common = dict(tls_cert=certs / "server.pem", tls_key=certs / "server.key")
    tokens = LedgerServer(
        ServerConfig(data_dir=tmp_path / "a", listen="127.0.0.1:0", auth="tokens", **common)
    )
    mtls = LedgerServer(
        ServerConfig(
            data_dir=tmp_path / "b",
            listen="127.0.0.1:0",
            auth="mtls",
            client_ca=certs / "ca.pem",
            **common,
        )
    )
    tokens.start()
    mtls.start()
    try:
        issued = subprocess.run(
            [
                *(cli_path(), "--log-level", "error", "token", "issue"),
                *("--data-dir", str(tmp_path / "a"), "--subject", "pos-demo-1"),
                *("--role", "channel", "--channel", "pos-demo"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        env = {"LEDGER_TOKEN": issued.stdout.strip()}
        paths = {f"data/certs/{p.name}": p for p in certs.iterdir()}
        ports = {"127.0.0.1:50051": tokens.port, "127.0.0.1:50052": mtls.port}
        lines = grpcurl.lines_of((ROOT / "README.md").read_text())
        assert len(lines) >= 4
        results = []
        for text in lines:
            line = grpcurl.parse(text, env)
            results.append(
                (line, grpcurl.run(line, root=ROOT, paths=paths, port=ports[line.address]))
            )
    finally:
        tokens.stop(grace=1)
        mtls.stop(grace=1)
    for line, result in results:
        if line.target == "list":
            assert "loyalty.ledger.v1.LedgerService" in result
        elif line.target.endswith("/OpenAccount"):
            assert str(result["memberAccountId"]).startswith("mbr_")  # type: ignore[call-overload]
        elif line.target == "grpc.health.v1.Health/Check":
            assert not line.headers and result == {"status": "SERVING"}
    assert {line.target for line, _ in results} >= {
        "list",
        "loyalty.ledger.v1.LedgerService/OpenAccount",
        "grpc.health.v1.Health/Check",
    }
