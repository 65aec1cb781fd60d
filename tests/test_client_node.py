"""The non-Python example (issue 14, item 3): examples/node/first_call.js,
a Node.js till using @grpc/grpc-js and the repository's .proto files,
against a real ledger over TLS with a channel token. It decodes the
google.rpc error details from protos/third_party. Needs Node.js and npm
(and the npm registry to install the two packages): skipped, saying so,
where they are missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.sdk import running_ledger

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "node"


@pytest.fixture(scope="module")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js or npm not installed: the Node example is not run here")
    where = tmp_path_factory.mktemp("node")
    shutil.copy(EXAMPLE / "package.json", where / "package.json")
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.skip(f"npm install failed (no registry?): {done.stderr.strip()[-300:]}")
    return where / "node_modules"


def test_the_node_example_runs_against_the_contract(node_modules: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with running_ledger(url, tmp_path) as ledger:
        env = dict(
            os.environ,
            NODE_PATH=str(node_modules),
            LEDGER_ADDRESS=ledger.address,
            LEDGER_CA=str(ledger.certs / "ca.pem"),
            LEDGER_TOKEN=ledger.token,
            LEDGER_CHANNEL="pos-test",  # the token's channel
            LEDGER_PROTOS=str(ROOT / "protos"),
        )
        out = subprocess.run(
            ["node", str(EXAMPLE / "first_call.js")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert out.returncode == 0, out.stderr
    assert "refused: INSUFFICIENT_POINTS, available 120" in out.stdout
    assert ": 100 points (earn entry " in out.stdout
