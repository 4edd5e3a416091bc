"""Regenerate ``caffe_pb2.py`` from ``proto/caffe.proto`` with grpcio-tools' bundled protoc.

Usage: ``python -m caffe_cae.proto.regenerate [--check]``. With ``--check`` nothing is written;
the exit status says whether the committed module matches the schema.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]
SCHEMA = REPO / "proto" / "caffe.proto"
MODULE = pathlib.Path(__file__).resolve().parent / "caffe_pb2.py"


def compile_schema(out_dir: pathlib.Path) -> pathlib.Path:
    """Run protoc on the schema; return the path of the generated module."""
    from grpc_tools import protoc  # a development dependency (extra "test")

    status = protoc.main(["protoc", f"-I{SCHEMA.parent}", f"--python_out={out_dir}", str(SCHEMA)])
    if status != 0:
        raise RuntimeError(f"{SCHEMA}: protoc failed with status {status}")
    return out_dir / "caffe_pb2.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = compile_schema(pathlib.Path(tmp)).read_text()
    if args.check:
        same = fresh == MODULE.read_text()
        print(f"{MODULE}: {'up to date' if same else 'STALE, run python -m caffe_cae.proto.regenerate'}")
        return 0 if same else 1
    MODULE.write_text(fresh)
    print(f"wrote {MODULE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
