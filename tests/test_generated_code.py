"""The checked-in generated protobuf code matches the .proto sources.

Regenerates everything into a temporary directory with the pinned
grpcio-tools and compares byte for byte; run `make proto` when it fails.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _genproto():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("genproto", ROOT / "scripts" / "genproto.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    genproto = _genproto()
    fresh = {p.relative_to(tmp_path) for p in genproto.generate(tmp_path)}
    checked_in = {p.relative_to(genproto.PROTOS) for p in genproto.PROTOS.rglob("*_pb2*.py*")}
    assert fresh, "no code was generated"
    assert fresh == checked_in, "generated files differ from checked-in files: run `make proto`"
    stale = [
        str(p)
        for p in sorted(fresh)
        if (tmp_path / p).read_bytes() != (genproto.PROTOS / p).read_bytes()
    ]
    assert stale == [], f"stale generated code (run `make proto`): {stale}"


def test_every_proto_has_generated_code() -> None:
    genproto = _genproto()
    for proto in genproto.proto_files():
        stem = proto.with_suffix("")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            assert Path(str(stem) + suffix).exists(), f"missing generated file for {proto.name}"
