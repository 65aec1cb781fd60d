"""``loyalty-ledger keys ...``: KEK rotation, rewrap, retirement, status,
and one member's DEK rotation. Safe to run while servers are serving: the
keyring file is shared (servers notice a new KEK version), rewrapping is
compare-and-set per data key, and retiring refuses a version still in use."""

from __future__ import annotations

import argparse
import sys

from ledger.keys.keyring import FileKeyring
from ledger.members import rotation
from ledger.members.vault import MemberVault
from ledger.storage.database import Database
from ledger.storage.members import MemberStore


def run_keys(db: Database, keyring: FileKeyring, args: argparse.Namespace) -> int:
    store = MemberStore(db)
    return _run(args.keys_command, args, keyring, store, MemberVault.for_keyring(keyring))


def _run(
    command: str,
    args: argparse.Namespace,
    keyring: FileKeyring,
    store: MemberStore,
    vault: MemberVault,
) -> int:
    if command == "status":
        in_use = store.kek_versions_in_use()
        print(f"current KEK version: {keyring.current_version()}")
        for version in keyring.versions():
            print(f"  KEK v{version}: wraps {in_use.get(version, 0)} data key(s)")
        orphans = sorted(set(in_use) - set(keyring.versions()))
        for version in orphans:
            print(
                f"  KEK v{version}: MISSING from the keyring, wraps {in_use[version]} data key(s)"
            )
        return 1 if orphans else 0
    if command == "retire":
        if store.kek_versions_in_use().get(args.version):
            print(
                f"FAILED: KEK v{args.version} still wraps data keys; run 'keys rewrap' first",
                file=sys.stderr,
            )
            return 2
        keyring.retire(args.version)
        print(f"retired KEK v{args.version}")
        return 0
    if command == "rotate-member":
        from ledger.appender import Appender
        from ledger.errors import LedgerError

        appender = Appender(db=store.db, vault=vault)
        try:
            version = rotation.rotate_member_key(appender, store, vault, args.member_account_id)
        except LedgerError as err:
            print(f"FAILED: {err}", file=sys.stderr)
            return 2
        finally:
            appender.close()
        print(f"member data key is now version {version}")
        return 0
    if command == "rotate":
        print(f"new KEK version {keyring.rotate()}")

    def progress(done: int) -> None:
        print(f"\rrewrapped {done} data key(s)", end="", file=sys.stderr, flush=True)

    result = rotation.rewrap(store, vault, progress=progress if sys.stderr.isatty() else None)
    print(
        f"rewrapped {result.rewrapped} data key(s) under KEK v{result.kek_version}"
        f" ({result.skipped} changed meanwhile and were left alone)"
    )
    return 0
