"""Regenerate `MarketDataFeedV3_pb2.py` / `.pyi` from `proto/MarketDataFeedV3.proto` (`make proto`).

protoc runs from the project root with `-I .`, so the schema is registered in the descriptor pool as
`proto/MarketDataFeedV3.proto` and never collides with the SDK's `MarketDataFeedV3.proto`."""

from __future__ import annotations

import shutil
import sys
import tempfile
from importlib.resources import files
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
SCHEMA = "proto/MarketDataFeedV3.proto"
GENERATED = ("MarketDataFeedV3_pb2.py", "MarketDataFeedV3_pb2.pyi")


def generate(out_dir: Path) -> list[Path]:
    """Run protoc (grpcio-tools) and mypy-protobuf; write the generated files into `out_dir`."""
    from grpc_tools import protoc

    plugin = shutil.which("protoc-gen-mypy", path=str(Path(sys.executable).parent))
    if plugin is None:
        raise RuntimeError("protoc-gen-mypy not found next to the interpreter: install mypy-protobuf")
    include = str(files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROJECT_ROOT}",
            f"-I{include}",
            f"--plugin=protoc-gen-mypy={plugin}",
            f"--python_out={tmp}",
            f"--mypy_out={tmp}",
            str(PROJECT_ROOT / SCHEMA),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {SCHEMA}")
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name in GENERATED:
            target = out_dir / name
            shutil.copyfile(Path(tmp) / "proto" / name, target)
            written.append(target)
    return written


if __name__ == "__main__":
    for path in generate(Path(__file__).resolve().parent):
        print(f"wrote {path.relative_to(PROJECT_ROOT)}")
