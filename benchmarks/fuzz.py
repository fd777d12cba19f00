"""``python -m benchmarks.fuzz``: hostile HTTP requests against the whole sample (tests/support/hostile.py).

    python -m benchmarks.fuzz                       # the issue's run: 10,000 requests, seed 13
    python -m benchmarks.fuzz --requests 50000 --seed 7

Prints the requests by family and status, and the failing ones; exits 1 on any 5xx or unanswered request.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from . import fixtures  # noqa: F401 - puts tests/ on the path, for support.*


def main(argv: list[str] | None = None) -> int:
    from support.hostile import run, signed_in_sample
    from support.servers import trusted_provider

    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--clients", type=int, default=6, help="requests in flight at once")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fuzz-") as work, trusted_provider(Path(work) / "op") as provider, \
            signed_in_sample(provider, Path(work)) as target:
        tally = run(args.seed, args.requests, target, clients=args.clients)
    print(tally.report())
    return 1 if tally.server_errors or tally.unanswered else 0


if __name__ == "__main__":
    sys.exit(main())
