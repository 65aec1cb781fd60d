"""Server memory over many requests: RSS growth of the secure default.

Starts ``loyalty-ledger serve`` as users run it (TLS, bearer tokens,
durable SQLite, ``--workers`` default), opens ``--accounts`` members, then
drives closed-loop load in ``--steps`` windows, alternating Earn and
GetBalance windows, until ``--requests`` calls were answered. After every
window it samples the RSS of the writer and every worker (summed). Growth
is measured from the sample after the first tenth of the requests (start-up
caches, the interpreter's arenas and gRPC's pools warm up first) to the
last. Issue #12's target: < 10 % over 1,000,000 requests.

Usage: .venv/bin/python bench/bench_soak.py [--requests 1000000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
import procs  # noqa: E402
from bench_serve import _token  # noqa: E402
from bench_size import _rss_mib  # noqa: E402

from access.certs import make_dev_certs  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    try:
        make_dev_certs(tmp / "certs")
        cert, key = tmp / "certs" / "server.pem", tmp / "certs" / "server.key"
        ca = (tmp / "certs" / "ca.pem").read_bytes()
        data_dir = tmp / "data"
        creds = loadgen.Creds(ca, _token(data_dir))
        print(f"bench_soak: {os.cpu_count()} cores, {args.requests:,} requests", flush=True)
        samples: list[dict[str, Any]] = []
        with procs.ledger_server(data_dir, tmp / "ledger.log", tls=(cert, key, ca)) as ledger:
            accounts = loadgen.open_accounts(
                ledger.target, args.accounts, f"soak-{os.getpid()}", creds=creds, seed=1
            )
            done, step = 0, 0
            per_step = args.requests / args.steps
            while done < args.requests:
                op = "earn" if step % 2 == 0 else "balance"
                # about per_step calls at ~1,000/s: the window's length
                result = loadgen.run_load(
                    ledger.target,
                    clients=64,
                    channels=8,
                    warmup=0.0,
                    seconds=max(1.0, per_step / 1000),
                    accounts=accounts,
                    key_prefix=f"soak{step}.{os.getpid()}",
                    op=op,
                    creds=creds,
                )
                if result.errors:
                    raise RuntimeError(f"{op}: {dict(result.errors)}")
                done += result.calls
                step += 1
                rss = _rss_mib(ledger.pid)
                samples.append({"requests": done, "op": op, "rss_mib": round(rss, 1)})
                print(f"  {done:>10,} requests  RSS {rss:7.1f} MiB  ({op})", flush=True)
            procs.stop(ledger.proc)
        base = next(s for s in samples if s["requests"] >= args.requests / 10)
        last = samples[-1]
        growth = (last["rss_mib"] - base["rss_mib"]) / base["rss_mib"]
        print(
            f"RSS {base['rss_mib']:.1f} MiB at {base['requests']:,} requests -> "
            f"{last['rss_mib']:.1f} MiB at {last['requests']:,}: {growth:+.1%} (target < 10 %)"
        )
        if args.json:
            args.json.write_text(
                json.dumps({"samples": samples, "growth": round(growth, 4)}, indent=2) + "\n"
            )
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
