"""`tradavity-mcp sandbox`: the Tradavity API emulator over HTTP."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import platformdirs
import uvicorn

from ._app import SandboxConfig, create_app
from ._clock import ScaledClock
from ._connections import raise_open_files_limit
from ._faults import FaultSpec
from ._seed import DEFAULT_DEMO_DAYS, DEMO_KEY, MAX_DEMO_DAYS
from ._serve import bracketed, listening_socket, uvicorn_config

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
    parser.add_argument(
        "--demo-days",
        type=_demo_days,
        default=DEFAULT_DEMO_DAYS,
        metavar="N",
        help=f"length of the seeded demo journal in days, 1 to {MAX_DEMO_DAYS} "
        f"(default: {DEFAULT_DEMO_DAYS}); used when the database is new",
    )
    parser.add_argument(
        "--clock-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="run the sandbox's clock X times faster (rate windows, cooldowns, the 24 h "
        "replay window); default 1",
    )


def _demo_days(raw: str) -> int:
    try:
        days = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of days: {raw!r}") from None
    if not 1 <= days <= MAX_DEMO_DAYS:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_DEMO_DAYS} days; got {days}")
    return days


def default_db() -> str:
    """The sandbox journal lives in the user data directory, so it survives restarts."""
    return str(Path(platformdirs.user_data_dir("tradavity-mcp")) / "sandbox.sqlite3")


def run(args: argparse.Namespace) -> int:
    try:
        faults = FaultSpec.parse(args.faults) if args.faults else None
    except ValueError as exc:
        print(f"tradavity-mcp sandbox: {exc}", file=sys.stderr)
        return 2
    try:
        sock = listening_socket(args.sandbox_host, args.sandbox_port)
    except OSError as exc:
        print(f"tradavity-mcp sandbox: cannot listen there: {exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    db = args.db or default_db()
    demo_days: int = args.demo_days
    if demo_days != DEFAULT_DEMO_DAYS and db != ":memory:" and Path(db).exists():
        print(
            f"tradavity-mcp sandbox: {db} already holds a journal; --demo-days seeds a new "
            "one only (pass --db :memory: or a new file)",
            file=sys.stderr,
        )
    clock = ScaledClock(args.clock_scale) if args.clock_scale != 1.0 else None
    app = create_app(
        SandboxConfig(
            db=db, faults=faults, fault_seed=args.fault_seed, demo_days=demo_days, clock=clock
        )
    )
    print(f"Tradavity sandbox on http://{bracketed(args.sandbox_host)}:{port}/api/v1", flush=True)
    print(f"demo key: {DEMO_KEY}", flush=True)
    print(f"database: {db}", flush=True)
    raise_open_files_limit()
    server = uvicorn.Server(uvicorn_config(app, log_level="warning", lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
