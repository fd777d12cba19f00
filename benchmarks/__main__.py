"""``python -m benchmarks``: the hot-path, API and load benchmarks in one run, printed as tables.

Options: ``--no-load`` skips the gunicorn runs; ``--store file`` times the in-process
stacks with Beaker file sessions instead of memory sessions; ``--api`` runs the API
sections alone; ``--plain`` stores msal_wsgi's session values unsealed (no ``session_keys``)
instead of sealed with AES-256-GCM, the default.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time

import beaker
import msal

import msal_wsgi
from devprovider import DevProvider

from . import fixtures, hot_path
from .fixtures import consented_user, provider, signed_in_user


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--no-load", action="store_true", help="skip the gunicorn load test")
    parser.add_argument("--store", choices=["memory", "file"], default="memory",
                        help="Beaker store for the in-process stacks (default: memory)")
    parser.add_argument("--api", action="store_true", help="only the API sections (protected web API)")
    parser.add_argument("--plain", action="store_true", help="sessions unsealed (no session_keys)")
    args = parser.parse_args(argv)
    if args.plain:
        fixtures.SESSION_KEYS = ()
    started = time.monotonic()
    print(f"msal_wsgi {msal_wsgi.__version__}, msal {msal.__version__}, Beaker {beaker.__version__}, "
          f"Python {platform.python_version()}, {platform.machine()}")
    ok = True
    with provider() as dev, tempfile.TemporaryDirectory(prefix="msal-wsgi-sessions-") as data_dir:
        if not args.api:
            ok &= run_web(dev, args.store, data_dir, load=not args.no_load)
        ok &= run_api(dev, load=not args.no_load)
    print(f"\nTotal time: {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


def run_web(dev: DevProvider, store: str, data_dir: str, *, load: bool) -> bool:
    """The web sections: a protected page's hot path in process, then gunicorn + wrk; whether targets were met."""
    users = [signed_in_user(dev, f"bench{n}", n) for n in (1, 5, 20)]
    print(f"\nSigned in {len(users)} users through the local provider ({dev.issuer}).")

    sealed = "sealed with AES-256-GCM" if fixtures.SESSION_KEYS else "unsealed (--plain)"
    print(f"\n== Hot path, in process (Beaker {store} sessions, save_accessed_time=False, msal_wsgi's values "
          f"{sealed}) ==")
    results = hot_path.Bench(dev, users[0], store, data_dir).measure([k for _, k in hot_path.STACKS])
    print(hot_path.table(results))
    print("Session writes are counted by Beaker namespace classes whose __setitem__/__delitem__ count;\n"
          "provider requests by the provider's request log.")
    print(hot_path.targets(results))
    ok = "FAIL" not in hot_path.targets(results)

    inside, after = hot_path.activity_writes(dev, users[0])
    print(f"Activity tracking (idle_timeout=4, session_activity_interval=2): 200 requests inside the interval "
          f"cause {inside} session writes; 200 more right after it, {after}.")

    print("\n== Growth with the number of access tokens the user holds (1, 5, 20 resources) ==")
    print(hot_path.scaling(dev, users, store, data_dir))
    targets = hot_path.size_targets(users)
    print(targets)
    ok &= "FAIL" not in targets

    print("\n== A stock provider: one grant (msal cache, refresh token) per resource consented to ==")
    with provider(mode="stock") as stock:
        consented = [consented_user(stock, f"stock{n}", n) for n in (1, 5, 20)]
        print(hot_path.scaling(stock, consented, store, data_dir, kinds=("session_only", "msal_wsgi")))

    from . import validation

    print("\n== What id_token validation adds to a sign-in's callback ==")
    print(validation.table(dev, users[0]))

    writes = hot_path.accessed_time_writes(dev, users[0])
    print(f"\nWith Beaker's default save_accessed_time=True the same 200 msal_wsgi requests cause "
          f"{writes} session writes (Beaker rewrites the data loaded at the start of each request).")

    if load:
        from . import load as load_test

        print("\n== Under load: gunicorn on loopback, driven by wrk ==")
        report, passed = load_test.run(dev, users[0], data_dir)
        print(report)
        ok &= passed
    return ok


def run_api(dev: DevProvider, *, load: bool) -> bool:
    """The API sections: µs per validated bearer request, then gunicorn + wrk; whether targets were met."""
    from support.api import user_token

    from . import api

    token = user_token(dev, "bench-api")
    print("\n== Protected web API, in process (ProtectApi, a real access token) ==")
    print(api.table(dev, token))
    if not load:
        return True
    print("\n== Protected web API under load: gunicorn on loopback, driven by wrk ==")
    report, passed = api.run_load(dev, token)
    print(report)
    return passed


if __name__ == "__main__":
    sys.exit(main())
