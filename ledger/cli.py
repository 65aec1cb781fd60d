"""The ``loyalty-ledger`` command: serve, verify, migrate."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from access.principal import Role
from access.ratelimit import DEFAULT_LOOKUP_RATE, Rate, parse_rate
from ledger import logging as ledger_logging
from ledger.appender import system_clock_us
from ledger.config import Limits, ServerConfig, env
from ledger.program.config import DEFAULT_PROGRAM, ProgramError, load_program
from ledger.storage.database import Database, open_database
from ledger.witness_client import WitnessConfig

if TYPE_CHECKING:
    from ledger.keys.keyring import FileKeyring

log = structlog.get_logger(__name__)


def _add_database_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(env("DATA_DIR", "data")),
        help="directory for the embedded SQLite database "
        "(env LOYALTY_LEDGER_DATA_DIR; default ./data)",
    )
    p.add_argument(
        "--database-url",
        default=env("DATABASE_URL"),
        help="SQLAlchemy URL, e.g. postgresql://user@host/db (env LOYALTY_LEDGER_DATABASE_URL; "
        "default: sqlite file ledger.db in the data directory)",
    )


def _add_keyring_arg(p: argparse.ArgumentParser) -> None:
    keyring = env("KEYRING")
    p.add_argument(
        "--keyring",
        type=Path,
        default=Path(keyring) if keyring else None,
        help="key-encryption keyring file, kept outside the database with mode 0600 "
        "(env LOYALTY_LEDGER_KEYRING; default: keys/keyring.json in the data directory)",
    )


def _add_program_arg(p: argparse.ArgumentParser) -> None:
    program = env("PROGRAM")
    p.add_argument(
        "--program",
        type=Path,
        default=Path(program) if program else None,
        help="the program file (TOML, docs/program-rules.md): expiry, return windows, "
        "holds, earn rules, tiers, referrals, partners (env LOYALTY_LEDGER_PROGRAM; "
        "default: points never expire, no return window, no computed earns)",
    )


def _add_log_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-origin",
        default=env("LOG_ORIGIN", "loyalty-ledger.local"),
        help="checkpoint origins are <this>/journal and <this>/access "
        "(env LOYALTY_LEDGER_LOG_ORIGIN)",
    )
    witness = env("WITNESS_DIR")
    p.add_argument(
        "--witness-dir",
        type=Path,
        default=Path(witness) if witness else None,
        help="also write every new checkpoint here, one file each, never overwritten "
        "(env LOYALTY_LEDGER_WITNESS_DIR)",
    )
    p.add_argument(
        "--witness",
        nargs=2,
        action="append",
        metavar=("URL", "KEY"),
        default=[],
        help="a C2SP tlog-witness to submit every new checkpoint to (its URL and its verifier "
        "key, from 'loyalty-ledger witness key'); repeat for several",
    )
    state = env("SIGNER_STATE")
    p.add_argument(
        "--signer-state",
        type=Path,
        default=Path(state) if state else None,
        help="where the log signer keeps the last checkpoint it signed, outside the database "
        "(env LOYALTY_LEDGER_SIGNER_STATE; default: signer-state/ beside the keyring)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loyalty-ledger", description=__doc__)
    parser.add_argument(
        "--log-level",
        default=env("LOG_LEVEL", ""),
        help="debug, info, warning, error (env LOYALTY_LEDGER_LOG_LEVEL; default: info for "
        "the long-running commands serve and witness, warning for the others, whose "
        "results are printed as text)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gRPC server")
    _add_database_args(serve)
    serve.add_argument(
        "--listen",
        default=env("LISTEN", "127.0.0.1:50051"),
        help="host:port to listen on (env LOYALTY_LEDGER_LISTEN; default 127.0.0.1:50051)",
    )
    serve.add_argument(
        "--auth",
        choices=("none", "tokens", "mtls"),
        default=env("AUTH", "tokens"),
        help="'tokens': every ledger call needs a bearer token from 'loyalty-ledger token issue'; "
        "'mtls': client certificates from --client-ca required, tokens also accepted; "
        "'none': no credentials, development only (env LOYALTY_LEDGER_AUTH; default tokens)",
    )
    serve.add_argument(
        "--plaintext",
        action="store_true",
        default=env("PLAINTEXT") in ("1", "true", "yes"),
        help="listen without TLS: development only, logged loudly "
        "(env LOYALTY_LEDGER_PLAINTEXT=1); without it --tls-cert and --tls-key are required",
    )
    for flag, name, text in (
        ("--tls-cert", "TLS_CERT", "server certificate chain (PEM); 'dev-certs' makes one"),
        ("--tls-key", "TLS_KEY", "server private key (PEM)"),
        ("--client-ca", "CLIENT_CA", "CA certificate for client certificates (mTLS)"),
    ):
        serve.add_argument(
            flag, type=Path, default=env(name) or None, help=f"{text} (env LOYALTY_LEDGER_{name})"
        )
    for what, name, default in (
        ("mutating calls per member", "MEMBER_RATE", "20:100"),
        ("mutating calls per principal (or channel)", "PRINCIPAL_RATE", "0"),
        ("FindMember lookups per principal", "LOOKUP_RATE", "2:30"),
    ):
        serve.add_argument(
            "--" + name.lower().replace("_", "-"),
            type=parse_rate,
            default=parse_rate(env(name, default)),
            help=f"{what}: PER_SECOND[:BURST], 0 = off "
            f"(env LOYALTY_LEDGER_{name}; default {default})",
        )
    serve.add_argument(
        "--max-points",
        type=int,
        default=int(env("MAX_POINTS", "1000000")),
        help="largest amount one entry may move (env LOYALTY_LEDGER_MAX_POINTS)",
    )

    serve.add_argument(
        "--member-field",
        action="append",
        default=[f for f in env("MEMBER_FIELDS").split(",") if f],
        help="a personal field the program collects beyond name, phone, email, birth_date and "
        "postal_address; repeatable (env LOYALTY_LEDGER_MEMBER_FIELDS, comma-separated)",
    )
    serve.add_argument(
        "--phone-region",
        default=env("PHONE_REGION", "CN"),
        help="ISO region for phone numbers given without +country (default CN)",
    )
    _add_keyring_arg(serve)
    _add_log_args(serve)
    _add_program_arg(serve)
    serve.add_argument(
        "--settle-interval",
        type=float,
        default=float(env("SETTLE_INTERVAL", "1")),
        help="seconds between sweeps that post hold timeouts, maturing and expiry; "
        "0: only when a member is touched or by `loyalty-ledger settle` "
        "(env LOYALTY_LEDGER_SETTLE_INTERVAL)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=int(env("WORKERS", "-1")),
        help="worker processes for the per-call work (TLS, tokens, validation, reads) beside "
        "one writer process; 0: everything in one process (env LOYALTY_LEDGER_WORKERS; "
        "default: the number of cores)",
    )
    serve.add_argument(
        "--metrics-listen",
        default=env("METRICS_LISTEN", ""),
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (of every worker, summed); "
        "default: none (env LOYALTY_LEDGER_METRICS_LISTEN)",
    )
    serve.add_argument(
        "--checkpoint-interval",
        type=float,
        default=float(env("CHECKPOINT_INTERVAL", "60")),
        help="seconds between scheduled checkpoints of each log that grew; 0: on demand only "
        "(env LOYALTY_LEDGER_CHECKPOINT_INTERVAL)",
    )

    keys = sub.add_parser("keys", help="key-encryption keys: rotate, rewrap, retire, status")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    for name, text in (
        ("status", "KEK versions and how many data keys each wraps"),
        ("rotate", "create a new KEK version and rewrap every data key under it"),
        ("rewrap", "resume rewrapping data keys under the current KEK version"),
        ("retire", "destroy an old KEK version that no data key uses any more"),
        ("rotate-member", "re-encrypt one member's fields under a new data key"),
    ):
        command = keys_sub.add_parser(name, help=text)
        _add_database_args(command)
        _add_keyring_arg(command)
        if name == "retire":
            command.add_argument("version", type=int)
        if name == "rotate-member":
            command.add_argument("member_account_id")

    from ledger import audit_cli
    from ledger.reports import cli as reports_cli

    def audit_common(p: argparse.ArgumentParser) -> None:
        _add_database_args(p)
        _add_keyring_arg(p)
        _add_log_args(p)

    audit_cli.add_arguments(sub, audit_common)
    backup = sub.add_parser(
        "backup",
        help="an online, consistent snapshot of the database with signed checkpoints of both logs",
    )
    audit_common(backup)
    backup.add_argument("--out", type=Path, required=True, help="a new (or empty) directory")
    restore = sub.add_parser(
        "restore",
        help="restore a backup into an empty database, only if it verifies and is not older "
        "than what the signer or the witness directory vouched for",
    )
    audit_common(restore)
    restore.add_argument("backup", type=Path, help="the directory `backup --out` wrote")
    restore.add_argument(
        "--accept-rollback",
        action="store_true",
        help="restore even a backup older than the newest signed checkpoint (entries are lost)",
    )
    for command in (backup, restore):
        command.add_argument(
            "--pg-bin", type=Path, help="directory of pg_dump/pg_restore (default: PATH, Debian's)"
        )
    witness = sub.add_parser(
        "witness", help="a C2SP tlog-witness: cosigns consistent checkpoints of logs it trusts"
    ).add_subparsers(dest="witness_command", required=True)
    for name, text in (
        ("serve", "run the witness (HTTP, POST /add-checkpoint)"),
        ("key", "print the witness's verifier key (made on first use)"),
    ):
        command = witness.add_parser(name, help=text)
        command.add_argument(
            "--state-dir", type=Path, required=True, help="its key and the latest checkpoints"
        )
        command.add_argument(
            "--name", default="witness.local", help="the witness's key name (default witness.local)"
        )
        if name == "serve":
            command.add_argument("--listen", default="127.0.0.1:8380", help="host:port")
            command.add_argument(
                "--log",
                action="append",
                required=True,
                help="a log verifier key to witness ('loyalty-ledger audit public-key'); repeat",
            )
    reports_cli.add_arguments(sub, audit_common)

    verify = sub.add_parser("verify", help="recompute the hash chain and check every invariant")
    _add_database_args(verify)

    settle = sub.add_parser(
        "settle",
        help="post what is due now (hold timeouts, matured and expired lots, tier reviews); "
        "idempotent, safe beside running servers",
    )
    _add_database_args(settle)
    _add_program_arg(settle)

    settle_shortfall = sub.add_parser(
        "settle-shortfall",
        help="record that a store paid for points of its outage shortfall (docs/outage.md)",
    )
    _add_database_args(settle_shortfall)
    settle_shortfall.add_argument("--store", required=True, help="the store (or channel) id")
    settle_shortfall.add_argument("--points", type=int, required=True, help="points paid for")
    settle_shortfall.add_argument(
        "--reference",
        required=True,
        help="the payment or invoice id, 8-128 of A-Z a-z 0-9 . _ : - (the idempotency key: "
        "the same reference twice settles once)",
    )
    settle_shortfall.add_argument("--principal", default="cli", help="who runs it (recorded)")

    bulk = sub.add_parser(
        "import",
        help="apply a file of operations (JSON lines, docs/bulk-import.md) in large group commits",
    )
    _add_database_args(bulk)
    _add_keyring_arg(bulk)
    _add_program_arg(bulk)
    bulk.add_argument("file", type=Path, help="one operation per line; - reads standard input")
    bulk.add_argument(
        "--aliases",
        type=Path,
        help="append 'alias,member_account_id' here for every account the file opens",
    )
    bulk.add_argument("--batch", type=int, default=2000, help="commands per group commit")
    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    _add_database_args(migrate)

    token = sub.add_parser(
        "token", help="issue or revoke bearer tokens (signed with this server's key)"
    )
    token_sub = token.add_subparsers(dest="token_command", required=True)
    issue = token_sub.add_parser("issue", help="print a new token")
    _add_database_args(issue)
    issue.add_argument(
        "--subject", required=True, help="principal id, e.g. pos-0042 (never a person's name)"
    )
    issue.add_argument("--role", required=True, choices=[r.value for r in Role])
    issue.add_argument("--channel", help="the channel a channel principal acts for")
    issue.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    revoke = token_sub.add_parser("revoke", help="add a token id to the revocation list")
    _add_database_args(revoke)
    revoke.add_argument("token_id")

    minimization = sub.add_parser("minimization", help="data minimization")
    minimization.add_subparsers(dest="minimization_command", required=True).add_parser(
        "report", help="print the data inventory (docs/data-inventory.md) from the live tables"
    ).add_argument(
        "--member-field",
        action="append",
        default=[f for f in env("MEMBER_FIELDS").split(",") if f],
        help="custom member fields of the live configuration (as for serve)",
    )

    check = sub.add_parser("program", help="the program file").add_subparsers(
        dest="program_command", required=True
    )
    check.add_parser("check", help="validate a program file and print it as read").add_argument(
        "file", type=Path
    )
    certs = sub.add_parser(
        "dev-certs", help="write a development CA, server and client certificates (mTLS)"
    )
    certs.add_argument("--out", type=Path, default=Path("data/certs"))

    grant = sub.add_parser(
        "grant-app-role",
        help="PostgreSQL: give the server's role SELECT/INSERT only on the journal (run as owner)",
    )
    _add_database_args(grant)
    grant.add_argument("role", help="the PostgreSQL role the server connects as")
    return parser


def _config(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        data_dir=args.data_dir,
        database_url=args.database_url,
        listen=getattr(args, "listen", "127.0.0.1:50051"),
        limits=Limits(max_points_per_entry=getattr(args, "max_points", 1_000_000)),
        auth=getattr(args, "auth", "tokens"),
        plaintext=getattr(args, "plaintext", False),
        tls_cert=getattr(args, "tls_cert", None),
        tls_key=getattr(args, "tls_key", None),
        client_ca=getattr(args, "client_ca", None),
        member_rate=getattr(args, "member_rate", Rate(20, 100)),
        principal_rate=getattr(args, "principal_rate", Rate(0, 0)),
        lookup_rate=getattr(args, "lookup_rate", DEFAULT_LOOKUP_RATE),
        member_fields=tuple(getattr(args, "member_field", ())),
        phone_region=getattr(args, "phone_region", "CN"),
        keyring=getattr(args, "keyring", None),
        log_origin=getattr(args, "log_origin", "loyalty-ledger.local"),
        checkpoint_interval=getattr(args, "checkpoint_interval", 60.0),
        witness_dir=getattr(args, "witness_dir", None),
        witnesses=tuple(WitnessConfig.parse(u, k) for u, k in getattr(args, "witness", None) or ()),
        signer_state=getattr(args, "signer_state", None),
        program=load_program(args.program) if getattr(args, "program", None) else DEFAULT_PROGRAM,
        settle_interval=getattr(args, "settle_interval", 1.0),
        workers=_workers(getattr(args, "workers", 0)),
        metrics_listen=getattr(args, "metrics_listen", ""),
    )


def _workers(requested: int) -> int:
    if requested >= 0:
        return requested
    from ledger.service.workers import default_workers

    return default_workers()


def _serve(config: ServerConfig, log_level: str) -> int:
    from ledger.keys.errors import KeysError
    from ledger.server import LedgerServer, tune_gc
    from ledger.service.stopping import StopFlag, stop_on_signals
    from ledger.service.workers import Supervisor

    stop = StopFlag()
    stop_on_signals(stop)
    tune_gc()
    if config.workers > 0:
        supervisor = Supervisor(config, config.workers, log_level)
        try:
            supervisor.start()
        except (KeysError, ValueError, OSError, RuntimeError) as err:
            log.error("cannot_start", error=str(err))
            print(f"FAILED: {err}", file=sys.stderr)
            return 2
        return supervisor.run(stop)
    server = LedgerServer(config)
    try:
        server.start()
    except (KeysError, ValueError) as err:  # configuration: say what is wrong, no traceback
        log.error("cannot_start", error=str(err))
        print(f"FAILED: {err}", file=sys.stderr)
        return 2
    while not stop.wait(0.5):
        pass
    log.info("shutdown_requested", grace_seconds=config.grace_seconds)
    server.stop()
    return 0


def _database(config: ServerConfig) -> Database:

    if not config.database_url:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    return open_database(config.resolved_database_url())


def _with_keyring(config: ServerConfig, action: Callable[[Database, FileKeyring], int]) -> int:
    """Run ``action`` on the migrated database and the keyring; a key or
    ledger error is printed as FAILED (exit 2), never a traceback."""
    from ledger.errors import LedgerError
    from ledger.keys.errors import KeysError
    from ledger.keys.keyring import FileKeyring
    from ledger.storage.migrate import upgrade

    db = _database(config)
    try:
        upgrade(db)
        return action(db, FileKeyring.open(config.keyring_path))
    except (KeysError, LedgerError) as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 2
    finally:
        db.dispose()


def _verify(config: ServerConfig) -> int:
    from ledger.verify import JournalMissingError, verify_database
    from ledger.verify_logs import verify_logs
    from ledger.verify_profiles import verify_profiles
    from ledger.verify_vouchers import verify_vouchers

    db = _database(config)
    try:
        result = verify_database(db)  # read-only: never migrates or writes
        counts, log_problems = verify_logs(db)
        members, profile_problems = verify_profiles(db)
        voucher_count, voucher_problems = verify_vouchers(db)
    except JournalMissingError as err:
        print(f"FAILED: {err}")
        return 2
    finally:
        db.dispose()
    if log_problems:
        print(f"FAILED: {len(log_problems)} problem(s) in the verifiable logs")
        for log_problem in log_problems:
            print(f"  {log_problem}")
    else:
        print(f"logs: journal tree {counts['journal']}, access log {counts['access']} records")
    if profile_problems:
        print(f"FAILED: {len(profile_problems)} problem(s) in members' profiles")
        for profile_problem in profile_problems[:1000]:
            print(f"  {profile_problem}")
    else:
        print(f"profiles: {members} members' fields match their newest commitment")
    if voucher_problems:
        print(f"FAILED: {len(voucher_problems)} problem(s) in the voucher tables")
        for voucher_problem in voucher_problems[:1000]:
            print(f"  {voucher_problem}")
    else:
        print(f"vouchers: {voucher_count} vouchers, their ends and stock match the journal")
    if (log_problems or profile_problems or voucher_problems) and result:
        return 1
    if result:
        head = result.head
        print(f"ok: {result.entries} entries")
        print(
            f"head: sequence {head.sequence if head else 0} "
            f"hash {head.hash.hex() if head else bytes(32).hex()}"
        )
        return 0
    first = result.first_bad_sequence
    print(f"FAILED: {len(result.problems)} problem(s) in {result.entries} entries")
    if first is not None:
        print(f"first bad sequence: {first}")
    for problem in result.problems:
        print(f"  {problem}")
    return 1


def _backup_or_restore(config: ServerConfig, args: argparse.Namespace) -> int:
    from ledger.backup import BackupError, RestoreRefused, restore, take_backup
    from ledger.errors import LedgerError
    from ledger.keys.errors import KeysError

    try:
        if args.command == "backup":
            manifest = take_backup(config, args.out, args.pg_bin)
            checkpoints = manifest["checkpoints"]
            assert isinstance(checkpoints, dict)
            for name, note in checkpoints.items():
                print(f"{name}: checkpoint at {str(note).splitlines()[1]}")
            print(f"wrote {args.out / str(manifest['file'])} and {args.out / 'manifest.json'}")
            return 0
        restored = restore(
            config, args.backup, accept_rollback=args.accept_rollback, pg_bin=args.pg_bin
        )
    except RestoreRefused as err:
        print(f"REFUSED: {len(err.reasons)} problem(s); nothing was restored", file=sys.stderr)
        for reason in err.reasons:
            print(f"  {reason}", file=sys.stderr)
        return 1
    except (BackupError, KeysError, LedgerError, OSError) as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 2
    for name, size in restored.sizes.items():
        print(f"{name}: {size} entries restored, verified")
    for name, lost in restored.lost.items():
        print(
            f"WARNING: {name}: {lost} entries signed before are not in this backup (accepted "
            "with --accept-rollback); the signer will not sign until they are back or its "
            "state is retired (docs/operations.md)",
            file=sys.stderr,
        )
    return 0


def _settle_shortfall(config: ServerConfig, args: argparse.Namespace) -> int:
    import json

    from ledger.errors import LedgerError
    from ledger.shortfall_settle import settle_shortfall
    from ledger.storage.migrate import upgrade

    db = _database(config)
    try:
        upgrade(db)
        answer = settle_shortfall(
            db,
            store=args.store,
            points=args.points,
            reference=args.reference,
            principal=args.principal,
        )
    except LedgerError as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    print(json.dumps(answer, sort_keys=True))
    return 0


def _settle(config: ServerConfig) -> int:
    from ledger.appender import Appender
    from ledger.commands import Settle
    from ledger.storage.journal_reads import JournalReads
    from ledger.storage.migrate import upgrade

    db = _database(config)
    appender: Appender | None = None
    try:
        upgrade(db)
        appender = Appender(db=db, program=config.program)
        reads = JournalReads(db.reader)
        settled, seen = 0, set[str]()
        while True:
            due = reads.due_members(system_clock_us(), 500)
            if not due or set(due) <= seen:  # nothing left, or nothing moved
                break
            for member in due:
                appender.append_blocking(Settle(member))
            settled += len(due)
            seen = set(due)
    finally:
        if appender is not None:
            appender.close()
        db.dispose()
    print(f"settled {settled} members")
    return 0


def _import(config: ServerConfig, args: argparse.Namespace) -> int:
    from ledger.appender import Appender
    from ledger.bulk import Importer
    from ledger.errors import LedgerError
    from ledger.keys.errors import KeysError
    from ledger.keys.keyring import FileKeyring
    from ledger.members.rotation import backfill_keys, check_keyring
    from ledger.members.vault import MemberVault
    from ledger.storage.migrate import upgrade

    if not 1 <= args.batch <= 10_000:
        print("FAILED: --batch: must be 1..10000", file=sys.stderr)
        return 2
    db = _database(config)
    appender: Appender | None = None
    aliases = None
    try:
        upgrade(db)
        vault = MemberVault.for_keyring(FileKeyring.open(config.keyring_path))
        check_keyring(db, vault)
        backfill_keys(db, vault, system_clock_us())
        appender = Appender(
            db=db,
            max_batch=args.batch,
            vault=vault,
            program=config.program,
            max_points=config.limits.max_points_per_entry,
        )
        importer = Importer(
            db=db,
            appender=appender,
            vault=vault,
            limit=config.limits.max_points_per_entry,
            clock=system_clock_us,
            chunk=args.batch,
        )
        if args.aliases is not None:
            aliases = args.aliases.open("a", encoding="utf-8")

        def on_alias(alias: str, account: str) -> None:
            if aliases is not None:
                aliases.write(f"{alias},{account}\n")

        source = sys.stdin if str(args.file) == "-" else args.file.open(encoding="utf-8")
        with source:
            report = importer.run(source, on_alias)
    except (KeysError, LedgerError, OSError) as err:
        print(f"FAILED: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    finally:
        if appender is not None:
            appender.close()
        if aliases is not None:
            aliases.close()
        db.dispose()
    for refusal in report.refused[:100]:
        print(f"line {refusal.line}: {refusal.code}: {refusal.message}", file=sys.stderr)
    if len(report.refused) > 100:
        print(f"... and {len(report.refused) - 100} more refused lines", file=sys.stderr)
    rate = report.lines / report.seconds if report.seconds else 0.0
    print(
        f"{report.lines} lines: {report.applied} applied ({report.opened} accounts opened), "
        f"{len(report.refused)} refused; {report.entries_added} journal entries added "
        f"in {report.seconds:.1f} s ({rate:,.0f} lines/s)"
    )
    return 1 if report.refused else 0


def _migrate(config: ServerConfig) -> int:
    from ledger.storage.migrate import upgrade

    db = _database(config)
    try:
        upgrade(db)
    finally:
        db.dispose()
    print("schema is up to date")
    return 0


def _grant_app_role(config: ServerConfig, role: str) -> int:
    from ledger.errors import ValidationError
    from ledger.storage.roles import grant_app_role

    db = _database(config)
    try:
        for statement in grant_app_role(db, role):
            print(statement)
    except ValidationError as err:
        print(f"FAILED: {err}")
        return 2
    finally:
        db.dispose()
    return 0


def _token(config: ServerConfig, args: argparse.Namespace) -> int:
    from access.tokens import TokenIssuer, load_or_create_signing_key

    if args.token_command == "revoke":
        config.revocations_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with config.revocations_path.open("a") as out:
            out.write(args.token_id + "\n")
        print(f"revoked {args.token_id} (running servers notice within seconds)")
        return 0
    key = load_or_create_signing_key(config.token_key_path)
    try:
        issued = TokenIssuer(key).issue(
            subject=args.subject, role=Role(args.role), ttl_seconds=args.ttl, channel=args.channel
        )
    except ValueError as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 2
    print(issued.token)
    expires = dt.datetime.fromtimestamp(issued.expires_at, dt.UTC).isoformat(timespec="seconds")
    print(f"token id {issued.token_id}, expires {expires.replace('+00:00', 'Z')}", file=sys.stderr)
    return 0


def _check_program(path: Path) -> int:
    try:
        program = load_program(path)
    except ProgramError as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 2
    print(program.model_dump_json(indent=2))
    return 0


def _witness(args: argparse.Namespace) -> int:
    import signal

    from audit.note import NoteError, Verifier
    from ledger.witness import Witness, load_cosigner, serve

    cosigner = load_cosigner(args.state_dir, args.name)
    if args.witness_command == "key":
        print(cosigner.public.vkey())
        return 0
    try:
        logs = [Verifier.from_key(k.strip()) for k in args.log]
    except NoteError as err:
        print(f"FAILED: --log: {err}", file=sys.stderr)
        return 2
    host, _, port = args.listen.rpartition(":")
    try:
        server = serve(Witness(cosigner, logs, args.state_dir), host, int(port))
    except (OSError, ValueError) as err:
        print(f"FAILED: --listen {args.listen}: {err}", file=sys.stderr)
        return 2
    import contextlib
    import threading

    signal.signal(signal.SIGTERM, lambda *_: None)  # wakes pause(): a clean stop
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"witness {cosigner.public.vkey()} listening on {host}:{server.server_port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        signal.pause()
    server.shutdown()
    server.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.log_level:
        args.log_level = "info" if args.command in ("serve", "witness") else "warning"
    ledger_logging.configure(args.log_level)
    if args.command == "minimization":
        from access.inventory import report

        sys.stdout.write(report(args.member_field))
        return 0
    if args.command == "dev-certs":
        from access.certs import make_dev_certs

        for path in make_dev_certs(args.out):
            print(path)
        return 0
    if args.command == "audit" and args.audit_command == "verify":
        from audit.verify_cli import run_verify  # offline: no database, no configuration

        return run_verify(
            args.bundle, args.key, args.state, sys.stdout, args.witness_key, args.min_witnesses
        )
    if args.command == "program":
        return _check_program(args.file)
    if args.command == "witness":  # its own process, key and state: no ledger configuration
        return _witness(args)
    try:
        config = _config(args)
    except (ProgramError, ValueError) as err:  # a bad program file or --witness
        print(f"FAILED: {err}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(config, args.log_level)
    if args.command == "verify":
        return _verify(config)
    if args.command == "settle":
        return _settle(config)
    if args.command == "settle-shortfall":
        return _settle_shortfall(config, args)
    if args.command == "import":
        return _import(config, args)
    if args.command == "token":
        return _token(config, args)
    if args.command == "audit":
        from ledger import audit_cli

        return _with_keyring(config, lambda db, keyring: audit_cli.run(db, keyring, config, args))
    if args.command in ("report", "export"):
        from ledger.reports import cli as reports_cli

        return _with_keyring(config, lambda db, keyring: reports_cli.run(db, keyring, config, args))
    if args.command == "keys":
        from ledger.keys_cli import run_keys

        return _with_keyring(config, lambda db, keyring: run_keys(db, keyring, args))
    if args.command in ("backup", "restore"):
        return _backup_or_restore(config, args)
    if args.command == "grant-app-role":
        return _grant_app_role(config, args.role)
    return _migrate(config)


if __name__ == "__main__":
    sys.exit(main())
