"""``python -m benchmarks.soak``: the sample under load and faults (tests/support/soak.py), with sizes of your choice.

    python -m benchmarks.soak                       # both provider modes, the suite's size
    python -m benchmarks.soak --mode stock --users 40 --seconds 90

Prints the report of each run; exits 1 if one failed (a 5xx other than 503, an unanswered request, an item
lost or duplicated, an unexpected sign-in).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

from . import fixtures  # noqa: F401 - puts tests/ on the path, for support.*


def main(argv: list[str] | None = None) -> int:
    from support.servers import trusted_provider
    from support.soak import FAULTS, Plan, soak_environment

    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["entra", "stock", "both"], default="both")
    parser.add_argument("--users", type=int, default=Plan.users)
    parser.add_argument("--seconds", type=float, default=Plan.seconds)
    parser.add_argument("--workers", type=int, default=Plan.workers)
    parser.add_argument("--threads", type=int, default=Plan.threads)
    args = parser.parse_args(argv)
    scale = args.seconds / Plan.seconds  # the faults keep their places in a longer or shorter run
    faults = tuple(dataclasses.replace(f, at=f.at * scale) for f in FAULTS)
    plan = Plan(users=args.users, seconds=args.seconds, workers=args.workers, threads=args.threads, faults=faults)
    failed = False
    with tempfile.TemporaryDirectory(prefix="soak-") as work, trusted_provider(Path(work) / "op") as provider:
        for mode in ("entra", "stock") if args.mode == "both" else (args.mode,):
            with soak_environment(provider, Path(work) / mode, mode, plan) as soak:
                soak.run()
            print(soak.report(), "\n", flush=True)
            failed = failed or bool(soak.failures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
