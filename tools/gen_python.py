"""Generate the Python stubs of clients/python from protos/ with the grpcio-tools protoc.

Writes ``*_pb2.py``, ``*_pb2_grpc.py`` and mypy-protobuf ``.pyi`` stubs for our contract and for
``buf/validate/validate.proto``. ``google/rpc`` is not generated: googleapis-common-protos ships it.

Also writes the contract's descriptor set with source info (the doc comments) for the server's
reflection, which the stubs cannot give: generated code strips the comments.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "clients" / "python" / "src"
SOURCES = [ROOT / "protos", ROOT / "third_party" / "protos"]
GENERATED_PACKAGES = ("crm", "buf")
DESCRIPTOR_SET = ROOT / "ai_orchestration" / "server" / "descriptor_set.binpb"


def main() -> int:
    """Regenerate every stub from scratch so deleted protos leave no stale modules."""
    for package in GENERATED_PACKAGES:
        shutil.rmtree(OUT / package, ignore_errors=True)
    files = sorted(str(p.relative_to(ROOT / "protos")) for p in (ROOT / "protos").rglob("*.proto"))
    files.append("buf/validate/validate.proto")
    bin_dir = Path(sys.executable).parent
    includes = [
        *(f"-I{path}" for path in SOURCES),
        f"-I{Path(grpc_tools.__file__).parent / '_proto'}",
    ]
    args = [
        "protoc",
        *includes,
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={OUT}",
        f"--grpc_python_out={OUT}",
        f"--mypy_out={OUT}",
        f"--mypy_grpc_out={OUT}",
        *files,
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    code = protoc.main(args)
    if code != 0:
        return int(code)
    # Namespace-free packages so the generated modules import as crm.ai.v1.scoring_pb2.
    for package in GENERATED_PACKAGES:
        for directory in [OUT / package, *(p for p in (OUT / package).rglob("*") if p.is_dir())]:
            (directory / "__init__.py").touch()
            (directory / "py.typed").touch()
    print(f"generated {len(files)} files into {OUT.relative_to(ROOT)}")
    return write_descriptor_set(includes)


def write_descriptor_set(includes: list[str]) -> int:
    """Our own files only (imports are served from their generated code), with source info."""
    files = sorted(str(p.relative_to(ROOT / "protos")) for p in (ROOT / "protos").rglob("*.proto"))
    code = protoc.main(
        [
            "protoc",
            *includes,
            "--include_source_info",
            f"--descriptor_set_out={DESCRIPTOR_SET}",
            *files,
        ]
    )
    if code == 0:
        print(
            f"wrote the descriptor set of {len(files)} files to {DESCRIPTOR_SET.relative_to(ROOT)}"
        )
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
