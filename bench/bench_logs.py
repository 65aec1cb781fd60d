"""Benchmarks of the verifiable logs (issue #5), each against a ceiling
measured in the same run:

1. inclusion-proof latency at 1,000,000 entries: proofs computed from the
   stored tree nodes in SQLite (the server's path: LogReads + audit.merkle),
   median and p99 over random leaves; ceiling: one primary-key lookup;
2. offline verification throughput (audit.bundle_verify on a bundle file)
   in entries/s versus a bare loop of SHA-256 over the same entry bytes
   (target >= 0.5x);
3. append throughput of the journal with Merkle maintenance versus without
   (the appender with and without its journal tree, same commands, durable
   SQLite; target >= 0.8x).

Usage: .venv/bin/python bench/bench_logs.py [--leaves 1000000] [--entries 100000]
Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audit.bundle import BundleWriter, LogInfo  # noqa: E402
from audit.bundle_verify import verify_bundle  # noqa: E402
from audit.entry_format import (  # noqa: E402
    GENESIS_PREV_HASH,
    KIND_EARN,
    PROGRAM_ISSUED,
    JournalEntry,
    Posting,
)
from audit.merkle import Frontier, inclusion_proof, leaf_hash, tree_hash  # noqa: E402
from audit.note import Checkpoint, Signer, sign_checkpoint  # noqa: E402


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_inclusion(leaves: int, tmp: Path, samples: int = 2000) -> dict[str, float]:
    from ledger.storage.database import open_database
    from ledger.storage.log_reads import LogReads
    from ledger.storage.migrate import upgrade

    url = f"sqlite:///{tmp / 'proofs.db'}"
    db = open_database(url)
    upgrade(db)
    started = time.perf_counter()
    conn = sqlite3.connect(tmp / "proofs.db")
    frontier = Frontier.empty()
    batch: list[tuple[int, int, int, bytes]] = []
    for i in range(leaves):
        for (level, idx), h in frontier.append(leaf_hash(i.to_bytes(8, "big"))):
            batch.append((1, level, idx, h))
        if len(batch) >= 100_000:
            conn.executemany("INSERT INTO merkle_nodes VALUES (?, ?, ?, ?)", batch)
            batch.clear()
    conn.executemany("INSERT INTO merkle_nodes VALUES (?, ?, ?, ?)", batch)
    conn.commit()
    conn.close()
    build_s = time.perf_counter() - started
    reads = LogReads(db)
    root = tree_hash(leaves, lambda keys: reads.nodes(1, keys))
    assert root == frontier.root()
    rng = random.Random(7)
    proof_ms, lookup_ms = [], []
    raw = sqlite3.connect(tmp / "proofs.db")
    for _ in range(samples):
        index = rng.randrange(leaves)
        t0 = time.perf_counter()
        inclusion_proof(index, leaves, lambda keys: reads.nodes(1, keys))
        proof_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        raw.execute(
            "SELECT hash FROM merkle_nodes WHERE log = 1 AND level = 0 AND idx = ?", (index,)
        ).fetchone()
        lookup_ms.append((time.perf_counter() - t0) * 1000)
    db.dispose()
    return {
        "leaves": leaves,
        "build_s": round(build_s, 1),
        "proof_p50_ms": round(statistics.median(proof_ms), 3),
        "proof_p99_ms": round(_percentile(proof_ms, 0.99), 3),
        "pk_lookup_p50_ms": round(statistics.median(lookup_ms), 4),
    }


def _entries(n: int) -> list[tuple[JournalEntry, bytes]]:
    member = "mbr_" + "a" * 26
    out, prev = [], GENESIS_PREV_HASH
    for seq in range(1, n + 1):
        entry = JournalEntry(
            seq,
            1_700_000_000_000_000 + seq,
            prev,
            KIND_EARN,
            "pos-bench",
            0,
            (Posting(PROGRAM_ISSUED, member, 10),),
            b"\x02" + bytes(60),
        )
        prev = entry.compute_hash()
        out.append((entry, prev))
    return out


def bench_verify(n: int, tmp: Path) -> dict[str, float]:
    entries = _entries(n)
    signer = Signer.generate("bench.local/journal")
    frontier = Frontier.empty()
    for entry, _ in entries:
        frontier.append(leaf_hash(entry.encode()))
    note = sign_checkpoint(Checkpoint("bench.local/journal", n, frontier.root()), signer)
    path = tmp / "bundle.jsonl"
    with path.open("w") as fp:
        writer = BundleWriter(fp)
        writer.header(0, {"journal": LogInfo("bench.local/journal")})
        writer.checkpoint("journal", note)
        for entry, digest in entries:
            writer.entry("journal", entry.sequence, entry.encode(), digest)
    datas = [entry.encode() for entry, _ in entries]
    t0 = time.perf_counter()
    for data in datas:
        hashlib.sha256(data).digest()
    bare_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = verify_bundle(path, [signer.verifier_key()])
    verify_s = time.perf_counter() - t0
    assert result, result.problems[:3]
    return {
        "entries": n,
        "verify_entries_per_s": round(n / verify_s),
        "bare_sha256_per_s": round(n / bare_s),
        "ratio": round(bare_s / verify_s, 4),
    }


async def _append_run(tmp: Path, name: str, journal_tree: bool, commands: int) -> float:
    from ledger.appender import Appender
    from ledger.commands import Earn, Enroll, EntryDetails, RequestMeta, SealedMember
    from ledger.storage.database import open_database
    from ledger.storage.migrate import upgrade

    db = open_database(f"sqlite:///{tmp / (name + '.db')}")
    upgrade(db)
    appender = Appender(db=db, max_batch=512, journal_tree=journal_tree)
    render = lambda outcome: b""  # noqa: E731
    accounts = ["mbr_" + format(i, "026b").replace("0", "a").replace("1", "b") for i in range(64)]
    for i, account in enumerate(accounts):
        sealed = SealedMember(1, 1, b"", (), ())
        await appender.append(
            Enroll(RequestMeta("pos", f"open-{i:08d}", bytes(32)), account, sealed, render=render)
        )
    started = time.perf_counter()

    async def client(c: int) -> None:
        for k in range(commands // 64):
            meta = RequestMeta("pos", f"earn-{c:03d}-{k:08d}", bytes(32))
            await appender.append(Earn(meta, accounts[c], 1, EntryDetails(), render=render))

    await asyncio.gather(*(client(c) for c in range(64)))
    elapsed = time.perf_counter() - started
    appender.close()
    db.dispose()
    return (commands // 64) * 64 / elapsed


def bench_append(tmp: Path, commands: int, rounds: int = 3) -> dict[str, float]:
    with_tree, without = [], []
    for r in range(rounds):
        without.append(asyncio.run(_append_run(tmp, f"plain{r}", False, commands)))
        with_tree.append(asyncio.run(_append_run(tmp, f"tree{r}", True, commands)))
    plain, tree = statistics.median(without), statistics.median(with_tree)
    return {
        "commands": commands,
        "without_tree_per_s": round(plain),
        "with_tree_per_s": round(tree),
        "ratio": round(tree / plain, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--appends", type=int, default=12_800)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as tmp:
        root = Path(tmp)
        proofs = bench_inclusion(args.leaves, root)
        print(
            f"inclusion proof at {proofs['leaves']:,} leaves: p50 {proofs['proof_p50_ms']} ms, "
            f"p99 {proofs['proof_p99_ms']} ms (one PK lookup: {proofs['pk_lookup_p50_ms']} ms; "
            f"tree built in {proofs['build_s']} s)"
        )
        verify = bench_verify(args.entries, root)
        print(
            f"offline verify: {verify['verify_entries_per_s']:,} entries/s vs bare SHA-256 "
            f"{verify['bare_sha256_per_s']:,}/s: ratio {verify['ratio']} (target >= 0.5)"
        )
        append = bench_append(root, args.appends)
        print(
            f"append (durable SQLite, 64 concurrent): {append['with_tree_per_s']:,}/s with the "
            f"tree vs {append['without_tree_per_s']:,}/s without: ratio {append['ratio']} "
            "(target >= 0.8)"
        )
    print(json.dumps({"inclusion": proofs, "verify": verify, "append": append}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
