"""Run a drill at full size, e.g. `python -m tests.drills.run exactly-once --runs 1000`.

`--no-id` re-sends calls with no call id at all, as most hosts do.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import anyio

from . import drills

DRILLS = [
    "exactly-once",
    "crash",
    "outage",
    "double-dispatch",
    "two-processes",
    "footprint",
    "replicas",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("drill", choices=DRILLS)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-id", action="store_true", help="send no call id (most hosts)")
    parser.add_argument("--now", action="store_true", help="crash: journal at 'now'")
    parser.add_argument("--latency-ms", type=int, default=0, help="double-dispatch: API latency")
    parser.add_argument("--writes", type=int, default=10_000, help="footprint: writes for RSS")
    parser.add_argument(
        "--screenshot-bytes", type=int, default=1 << 20, help="footprint: screenshot size"
    )
    parser.add_argument("--kills", type=int, default=3, help="replicas: SIGKILLs mid-journal")
    parser.add_argument(
        "--free-tier-calls", type=int, default=150, help="replicas: calls on one free key"
    )
    args = parser.parse_args()
    ids = not args.no_id
    with tempfile.TemporaryDirectory() as tmp:
        state, log = Path(tmp) / "state", Path(tmp) / "log"
        result: dict[str, Any]
        if args.drill == "exactly-once":
            result = anyio.run(
                lambda: drills.exactly_once(args.runs, state, seed=args.seed, ids=ids)
            )
        elif args.drill == "crash":
            result = anyio.run(
                lambda: drills.crash_and_resume(args.runs, state, log, ids=ids, now=args.now)
            )
        elif args.drill == "outage":
            result = anyio.run(lambda: drills.outage(args.runs, state))
        elif args.drill == "double-dispatch":
            result = anyio.run(
                lambda: drills.double_dispatch(
                    args.runs, state, ids=ids, latency_ms=args.latency_ms
                )
            )
        elif args.drill == "replicas":
            from ..replicas.scenarios import drill

            result = anyio.run(
                lambda: drill(
                    args.runs,
                    args.kills,
                    free_tier_calls=args.free_tier_calls,
                )
            )
        elif args.drill == "two-processes":
            result = anyio.run(lambda: drills.two_processes(args.runs, state, log))
        else:
            result = anyio.run(
                lambda: drills.footprint(
                    args.runs,
                    state,
                    screenshot_bytes=args.screenshot_bytes,
                    writes=args.writes,
                )
            )
    print(json.dumps({"drill": args.drill, **result}, indent=2))


if __name__ == "__main__":
    main()
