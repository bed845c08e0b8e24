"""Compile odapi's .proto schemas with protoc (from grpcio-tools) into *_pb2.py modules.

Run at install time (`make setup`, `pip install .`) and at image build time; the generated
files are build output, never edited or committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
PACKAGE_ROOT = PROTO_DIR.parent.parent  # imports in .proto files are relative to here


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.glob("*.proto"))


def generated_module(proto: Path) -> Path:
    return proto.with_name(proto.stem + "_pb2.py")


def stale_protos() -> list[Path]:
    """Schemas whose generated module is missing or older than the schema."""
    stale = []
    for proto in proto_files():
        module = generated_module(proto)
        if not module.exists() or module.stat().st_mtime < proto.stat().st_mtime:
            stale.append(proto)
    return stale


def compile_protos() -> list[Path]:
    """Compile every schema; return the generated modules."""
    from grpc_tools import protoc  # build-time dependency only

    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto
    protos = [str(p.relative_to(PACKAGE_ROOT)) for p in proto_files()]
    args = [
        "protoc",
        f"-I{PACKAGE_ROOT}",
        f"-I{include}",
        f"--python_out={PACKAGE_ROOT}",
        f"--pyi_out={PACKAGE_ROOT}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {', '.join(protos)}")
    return [generated_module(p) for p in proto_files()]


if __name__ == "__main__":
    for module in compile_protos():
        print(f"compiled {module.relative_to(PACKAGE_ROOT)}")
    sys.exit(0)
