"""`loyalty-ledger import`: a file of operations through the appender.

The CLI runs as a subprocess, as an operator runs it; what it wrote is then
read back over gRPC from a real server on the same database, and checked
by `verify`. Hostile lines (wrong types, unknown fields, a 10 MB line,
personal data in a store id, an overdraft) are refused with the line, the
field and the rule, never the value, and leave no trace; a re-run adds
nothing; an import while a server takes Earns on the same database keeps
one chain.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import grpc
from loyalty.ledger.v1 import ledger_pb2 as pb
from loyalty.ledger.v1 import ledger_pb2_grpc

from ledger.config import Limits, ServerConfig
from ledger.server import LedgerServer
from tests.conftest import ctx, key
from tests.support.process import cli_path

FAKE_EMAIL = "jane.fake.doe@example.invalid"
WHEN = "2026-11-20T10:00:00Z"


def _import(
    db_url: str, data_dir: Path, source: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            cli_path(),
            "--log-level",
            "error",
            "import",
            "--data-dir",
            str(data_dir),
            "--database-url",
            db_url,
            str(source),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
        encoding="utf-8",
    )
    return path


def _open(alias: str, channel: str = "import-test") -> dict[str, object]:
    return {
        "open_account": {
            "idempotency_key": f"open-account-{alias}",
            "context": {"channel_id": channel},
        },
        "alias": alias,
    }


def _earn(alias: str, points: int, n: int, **context: str) -> dict[str, object]:
    return {
        "occurred_at": WHEN,
        "earn": {
            "idempotency_key": f"import-earn-{n:06d}",
            "context": {"channel_id": "import-test", **context},
            "member_account_id": f"alias:{alias}",
            "points": points,
        },
    }


def _redeem(alias: str, points: int, n: int) -> dict[str, object]:
    return {
        "occurred_at": WHEN,
        "redeem": {
            "idempotency_key": f"import-redeem-{n:06d}",
            "context": {"channel_id": "import-test"},
            "member_account_id": f"alias:{alias}",
            "points": points,
        },
    }


class _Server:
    def __init__(self, db_url: str, data_dir: Path) -> None:
        self.srv = LedgerServer(
            ServerConfig(
                data_dir=data_dir,
                database_url=db_url,
                listen="127.0.0.1:0",
                limits=Limits(max_points_per_entry=1_000_000),
                auth="none",
                plaintext=True,
            )
        )
        self.srv.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.srv.port}")
        self.stub = ledger_pb2_grpc.LedgerServiceStub(self.channel)

    def points(self, account: str) -> int:
        return self.stub.GetBalance(pb.GetBalanceRequest(member_account_id=account)).balance.points

    def head(self) -> int:
        with self.srv.db.reader.connect() as conn:
            return int(conn.exec_driver_sql("SELECT seq FROM journal_head").scalar_one())

    def close(self) -> None:
        self.channel.close()
        self.srv.stop(grace=2)


def _verify(db_url: str, data_dir: Path) -> str:
    done = subprocess.run(
        [cli_path(), "verify", "--data-dir", str(data_dir), "--database-url", db_url],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _aliases(path: Path) -> dict[str, str]:
    return dict(line.split(",") for line in path.read_text().splitlines())


def test_import_opens_earns_redeems_and_a_rerun_adds_nothing(db_url: str, tmp_path: Path) -> None:
    source = _write(
        tmp_path / "history.jsonl",
        [
            _open("legacy-1"),
            _open("legacy-2"),
            _earn("legacy-1", 500, 1, store_id="store-0001"),
            _earn("legacy-2", 70, 2),
            _redeem("legacy-1", 120, 3),
            "",  # blank lines are skipped
            _earn("legacy-2", 30, 4),
        ],
    )
    aliases = tmp_path / "aliases.csv"
    done = _import(db_url, tmp_path, source, "--aliases", str(aliases))
    assert done.returncode == 0, done.stderr
    assert "6 lines: 6 applied (2 accounts opened), 0 refused; 4 journal entries added" in (
        done.stdout
    )
    opened = _aliases(aliases)
    assert set(opened) == {"legacy-1", "legacy-2"}
    again = _import(db_url, tmp_path, source, "--aliases", str(aliases))
    assert again.returncode == 0, again.stderr
    assert "6 applied (0 accounts opened), 0 refused; 0 journal entries added" in again.stdout
    assert _aliases(aliases) == opened  # the re-run resolved the same accounts
    server = _Server(db_url, tmp_path)
    try:
        assert server.points(opened["legacy-1"]) == 380
        assert server.points(opened["legacy-2"]) == 100
        assert server.head() == 4
        # an imported key is the channel's key: the online replay returns its result
        replayed = server.stub.Earn(
            pb.EarnRequest(
                idempotency_key="import-earn-000002",
                context=ctx("import-test"),
                member_account_id=opened["legacy-2"],
                points=70,
            )
        )
        assert replayed.entry.sequence == 2
        assert server.head() == 4
    finally:
        server.close()
    assert "ok: 4 entries" in _verify(db_url, tmp_path)


def test_hostile_lines_are_refused_by_line_field_and_rule_and_leave_no_trace(
    db_url: str, tmp_path: Path
) -> None:
    rows: list[object] = [
        _open("m1"),
        _earn("m1", 100, 1),
        _earn("m1", 5, 2, store_id=FAKE_EMAIL),  # personal data where a store id goes
        {**_earn("m1", 5, 3), "earn": {**_earn("m1", 5, 3)["earn"], "points": FAKE_EMAIL}},
        {**_earn("m1", 5, 4), "earn": {**_earn("m1", 5, 4)["earn"], "pints": 5}},
        _redeem("m1", 10_000, 5),  # more than the member has
        _earn("nobody", 5, 6),  # an alias no line opened
        "not json " + FAKE_EMAIL,
        json.dumps({"occurred_at": WHEN}),  # no operation
        {**_earn("m1", 5, 7), "occurred_at": "2999-01-01T00:00:00Z"},  # the future
        {"occurred_at": WHEN, "earn": {**_earn("m1", 5, 8)["earn"], "points": -5}},
        {"open_account": {"idempotency_key": "open-bad-alias"}, "alias": FAKE_EMAIL},
        json.dumps({"filler": "x" * (10 * 1024 * 1024)}),  # a 10 MB line
        _earn("m1", 1, 9),
    ]
    source = _write(tmp_path / "hostile.jsonl", rows)
    done = _import(db_url, tmp_path, source)
    assert done.returncode == 1, done.stdout + done.stderr
    assert FAKE_EMAIL not in done.stdout + done.stderr
    refused = dict(
        line.split(": ", 1) for line in done.stderr.splitlines() if line.startswith("line ")
    )
    assert refused == {
        "line 3": "INVALID_ARGUMENT: earn.context.store_id: "
        + refused["line 3"].split("earn.context.store_id: ", 1)[1],
        "line 4": "INVALID_ARGUMENT: line: a field has a value of the wrong type or range",
        "line 5": 'INVALID_ARGUMENT: line: Message type "loyalty.ledger.v1.EarnRequest" '
        'has no field named "pints"',
        "line 6": "FAILED_PRECONDITION: points: insufficient points "
        "(see the available balance in ErrorInfo)",
        "line 7": "INVALID_ARGUMENT: earn.member_account_id: names an alias no earlier line opened",
        "line 8": "INVALID_ARGUMENT: line: must be one JSON object",
        "line 9": "INVALID_ARGUMENT: operation: must be one of earn, redeem, hold, "
        "capture_hold, release_hold, reverse",
        "line 10": "INVALID_ARGUMENT: occurred_at: must not be in the future",
        "line 11": refused["line 11"],
        "line 12": "INVALID_ARGUMENT: alias: must be 1..64 of A-Z a-z 0-9 . _ : -",
        "line 13": "INVALID_ARGUMENT: line: must be at most 65536 bytes",
    }
    assert refused["line 11"].startswith("INVALID_ARGUMENT: earn.points: ")
    assert "14 lines: 3 applied (1 accounts opened), 11 refused; 2 journal entries added" in (
        done.stdout
    )
    assert "ok: 2 entries" in _verify(db_url, tmp_path)


def test_import_while_a_server_takes_earns_keeps_one_chain(db_url: str, tmp_path: Path) -> None:
    server = _Server(db_url, tmp_path)
    try:
        online = server.stub.OpenAccount(
            pb.OpenAccountRequest(idempotency_key=key("open"), context=ctx())
        ).member_account_id
        rows: list[object] = []
        for n in range(40):
            rows.append(_open(f"a{n}"))
            rows += [_earn(f"a{n}", 10, n * 100 + i) for i in range(25)]
        source = _write(tmp_path / "big.jsonl", rows)
        acknowledged = []
        stop = threading.Event()

        failures: list[grpc.StatusCode] = []

        def earn_online() -> None:
            while not stop.is_set():
                try:
                    r = server.stub.Earn(
                        pb.EarnRequest(
                            idempotency_key=key("online"),
                            context=ctx(),
                            member_account_id=online,
                            points=3,
                        )
                    )
                except grpc.RpcError as err:
                    if err.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                        failures.append(err.code())
                        return
                    time.sleep(0.05)  # the per-member rate limit: nothing was written
                    continue
                acknowledged.append(r.entry.sequence)

        thread = threading.Thread(target=earn_online)
        thread.start()
        try:
            done = _import(db_url, tmp_path, source, "--batch", "50")
        finally:
            stop.set()
            thread.join()
        assert done.returncode == 0, done.stderr
        assert failures == []
        assert "1040 lines: 1040 applied (40 accounts opened), 0 refused" in done.stdout
        assert len(acknowledged) > 0
        assert server.points(online) == 3 * len(acknowledged)
        assert server.head() == 1000 + len(acknowledged)
        assert len(set(acknowledged)) == len(acknowledged)
    finally:
        server.close()
    assert f"ok: {1000 + len(acknowledged)} entries" in _verify(db_url, tmp_path)


def test_canonical_and_protobuf_json_spellings_are_the_same_operation(
    db_url: str, tmp_path: Path
) -> None:
    """The importer's fast path (snake_case, JSON numbers) and protobuf's own
    JSON parser (camelCase, int64 as strings, an offset time) must make the
    same request: the second spelling is a replay of the first."""
    first = _write(tmp_path / "a.jsonl", [_open("m1"), _earn("m1", 40, 1, store_id="store-7")])
    assert _import(db_url, tmp_path, first, "--aliases", str(tmp_path / "al.csv")).returncode == 0
    member = _aliases(tmp_path / "al.csv")["m1"]
    camel = {
        "occurredAt": "2026-11-20T11:00:00+01:00",  # the same moment as WHEN
        "earn": {
            "idempotencyKey": "import-earn-000001",
            "context": {"channelId": "import-test", "storeId": "store-7"},
            "memberAccountId": member,
            "points": "40",
        },
    }
    second = _write(tmp_path / "b.jsonl", [camel])
    done = _import(db_url, tmp_path, second)
    assert done.returncode == 0, done.stderr
    assert "1 applied (0 accounts opened), 0 refused; 0 journal entries added" in done.stdout
    changed = {**camel, "earn": {**camel["earn"], "points": "41"}}  # type: ignore[dict-item]
    conflict = _import(db_url, tmp_path, _write(tmp_path / "c.jsonl", [changed]))
    assert conflict.returncode == 1
    assert "line 1: ALREADY_EXISTS: " in conflict.stderr


def test_import_that_cannot_run_exits_2_and_writes_nothing(db_url: str, tmp_path: Path) -> None:
    source = _write(tmp_path / "ok.jsonl", [_open("m1"), _earn("m1", 5, 1)])
    bad_batch = _import(db_url, tmp_path, source, "--batch", "0")
    assert bad_batch.returncode == 2
    assert "--batch: must be 1..10000" in bad_batch.stderr
    missing = _import(db_url, tmp_path, tmp_path / "no-such-file.jsonl")
    assert missing.returncode == 2
    assert "FAILED: FileNotFoundError" in missing.stderr and "Traceback" not in missing.stderr
    done = _import(db_url, tmp_path, source)  # nothing was half-applied before
    assert "2 applied (1 accounts opened), 0 refused; 1 journal entries added" in done.stdout
