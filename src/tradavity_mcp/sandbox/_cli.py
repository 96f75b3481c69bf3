"""`tradavity-mcp sandbox`: the Tradavity API emulator over HTTP."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from ..config import default_sandbox_db
from ._app import SandboxConfig, create_app
from ._faults import FaultSpec
from ._seed import DEMO_KEY

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", dest="sandbox_host")
    parser.add_argument("--port", type=int, default=8765, dest="sandbox_port")
    parser.add_argument(
        "--db", default=None, help="SQLite file (default: your user data directory) or :memory:"
    )
    parser.add_argument(
        "--faults",
        default=None,
        metavar="SPEC",
        help="e.g. drop_after_commit=0.2,error_500=0.1,latency_ms=50",
    )
    parser.add_argument("--fault-seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    try:
        faults = FaultSpec.parse(args.faults) if args.faults else None
    except ValueError as exc:
        print(f"tradavity-mcp sandbox: {exc}", file=sys.stderr)
        return 2
    db = args.db or default_sandbox_db()
    app = create_app(SandboxConfig(db=db, faults=faults, fault_seed=args.fault_seed))
    base = f"http://{args.sandbox_host}:{args.sandbox_port}/api/v1"
    print(f"Tradavity sandbox on {base}", flush=True)
    print(f"demo key: {DEMO_KEY}", flush=True)
    print(f"database: {db}", flush=True)
    uvicorn.run(app, host=args.sandbox_host, port=args.sandbox_port, log_level="warning")
    return 0
