"""Run a drill at full size: `python -m tests.drills.run exactly-once --runs 1000`."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import anyio

from . import drills


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("drill", choices=["exactly-once", "crash", "outage"])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        if args.drill == "exactly-once":
            result = anyio.run(lambda: drills.exactly_once(args.runs, state, seed=args.seed))
        elif args.drill == "crash":
            result = anyio.run(lambda: drills.crash_and_resume(args.runs, state, Path(tmp) / "log"))
        else:
            result = anyio.run(lambda: drills.outage(args.runs, state))
    print(json.dumps({"drill": args.drill, **result}, indent=2))


if __name__ == "__main__":
    main()
