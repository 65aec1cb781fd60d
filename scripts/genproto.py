"""Regenerate the Python code for every .proto under protos/.

Generated modules live beside their .proto sources (protos/loyalty/...), and
are installed as the ``loyalty`` package. ``tests/test_generated_code.py``
regenerates into a temporary directory and fails when the checked-in files
differ, so run ``make proto`` after editing a .proto file.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def proto_files() -> list[Path]:
    return sorted(PROTOS.rglob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Generate *_pb2.py, *_pb2.pyi and *_pb2_grpc.py into out_dir."""
    include = str(resources.files("grpc_tools") / "_proto")
    files = [str(p.relative_to(PROTOS)) for p in proto_files()]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *files,
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")
    return sorted(p for p in out_dir.rglob("*_pb2*.py*"))


if __name__ == "__main__":
    written = generate(PROTOS)
    for path in written:
        print(path.relative_to(ROOT))
    sys.exit(0)
