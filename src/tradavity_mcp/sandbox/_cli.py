"""`tradavity-mcp sandbox`: the Tradavity API emulator over HTTP."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

import platformdirs
import uvicorn

from ._app import SandboxConfig, create_app
from ._faults import FaultSpec
from ._seed import DEMO_KEY

__all__ = ["add_arguments", "default_db", "run"]


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


def default_db() -> str:
    """The sandbox journal lives in the user data directory, so it survives restarts."""
    return str(Path(platformdirs.user_data_dir("tradavity-mcp")) / "sandbox.sqlite3")


def run(args: argparse.Namespace) -> int:
    try:
        faults = FaultSpec.parse(args.faults) if args.faults else None
    except ValueError as exc:
        print(f"tradavity-mcp sandbox: {exc}", file=sys.stderr)
        return 2
    family = socket.AF_INET6 if ":" in args.sandbox_host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.sandbox_host, args.sandbox_port))
    except OSError as exc:
        print(f"tradavity-mcp sandbox: cannot listen there: {exc}", file=sys.stderr)
        sock.close()
        return 1
    port = sock.getsockname()[1]
    db = args.db or default_db()
    app = create_app(SandboxConfig(db=db, faults=faults, fault_seed=args.fault_seed))
    host = f"[{args.sandbox_host}]" if family == socket.AF_INET6 else args.sandbox_host
    print(f"Tradavity sandbox on http://{host}:{port}/api/v1", flush=True)
    print(f"demo key: {DEMO_KEY}", flush=True)
    print(f"database: {db}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
