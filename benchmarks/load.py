"""Throughput under gunicorn: protected (msal_wsgi), session-only and public endpoints.

gunicorn serves :func:`benchmarks.stacks.load_app` on loopback with Beaker *file*
sessions (a store all workers share); wrk, a separate process, drives one
endpoint at a time with a bounded number of connections, duration and request
count. The signed-in session is a real sign-in's, copied into the file store.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from devprovider import DevProvider

from . import fixtures
from .fixtures import ROOT, SignedInUser, beaker_options, free_port, seed_session

WORKERS, THREADS = 2, 2
CONNECTIONS, DURATION_S, MAX_REQUESTS = 8, 2, 100_000
ROUNDS = 5
MIN_RATIO = 0.90
ENDPOINTS = [
    ("protected (msal_wsgi)", "/todos/1"),
    ("protected, session only", "/session/1"),
    ("public", "/public"),
]
_LUA = Path(__file__).with_name("wrk_limit.lua")


def _wrk(url: str, headers: list[str], duration: int) -> tuple[float, int]:
    """Requests per second and non-2xx/3xx answers of one wrk run sending ``headers``."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration}s", "-s", str(_LUA),
         *(arg for header in headers for arg in ("-H", header)), url],
        env=dict(os.environ, WRK_MAX_REQUESTS=str(MAX_REQUESTS)), capture_output=True, text=True,
        check=True, timeout=duration + 30).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return float(rps.group(1)), errors


def _serve(app: str, env: dict[str, str], workdir: str, port: int) -> subprocess.Popen[bytes]:
    """gunicorn serving ``app`` (a ``module:callable()`` spec) with ``env`` added to this process's."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    log = open(Path(workdir) / "gunicorn.log", "wb")  # noqa: SIM115 - closed with the process
    # cwd is a scratch directory so that no gunicorn.conf.py of the project is picked up.
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS),
         "--worker-class", "gthread", "--threads", str(THREADS), "--log-level", "warning", app],
        cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def _wait_ready(base: str, process: subprocess.Popen[bytes], workdir: str, path: str = "/public") -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("gunicorn exited:\n" + (Path(workdir) / "gunicorn.log").read_text())
        try:
            if requests.get(base + path, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start in 30 s")


def _check(base: str, sid: str) -> None:
    """Each endpoint answers 200 with the session, and the protected ones 401 without it."""
    json = {"Accept": "application/json"}
    for _, path in ENDPOINTS:
        status = requests.get(base + path, headers=dict(json, Cookie=f"sid={sid}"), timeout=10).status_code
        assert status == 200, (path, status)
    for path in ("/todos/1", "/session/1"):
        status = requests.get(base + path, headers=json, timeout=10).status_code
        assert status == 401, (path, status)


def run(dev: DevProvider, user: SignedInUser, data_dir: str) -> tuple[str, bool]:
    """Run the load test; returns the printed report and whether the targets were met."""
    if shutil.which("wrk") is None:
        return "wrk is not installed (Debian: apt-get install -y wrk); load test skipped.", False
    sid = seed_session(beaker_options("file", data_dir, count=False), dict(user.session))
    session_file = next(Path(data_dir).rglob(f"{sid}.cache"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    headers = [f"Cookie: sid={sid}", "Accept: application/json"]
    env = {"BENCH_ISSUER": dev.issuer, "BENCH_SESSION_DIR": data_dir, "REQUESTS_CA_BUNDLE": str(dev.ca_path),
           "BENCH_SESSION_KEYS": " ".join(fixtures.SESSION_KEYS)}
    with tempfile.TemporaryDirectory(prefix="msal-wsgi-gunicorn-") as workdir:
        process = _serve("benchmarks.stacks:load_app()", env, workdir, port)
        try:
            _wait_ready(base, process, workdir)
            _check(base, sid)
            before, mark = session_file.stat().st_mtime_ns, dev.mark()
            rps, errors = _rounds(base, ENDPOINTS, headers)
            provider_requests = len(dev.requests_since(mark))
            rewritten = session_file.stat().st_mtime_ns != before
        finally:
            process.terminate()
            process.wait(timeout=15)
    best = {path: max(values) for path, values in rps.items()}
    base_rps = best["/session/1"]
    # Each round measures the endpoints back to back: its ratio is least disturbed by other load.
    ratio = statistics.median(p / s for p, s in zip(rps["/todos/1"], rps["/session/1"]))
    lines = [(f"gunicorn {WORKERS} workers x {THREADS} threads (gthread), Beaker file sessions; "
              f"wrk -t1 -c{CONNECTIONS} -d{DURATION_S}s (at most {MAX_REQUESTS} requests), "
              f"best of {ROUNDS} rounds; target ratio: median of the per-round ratios"),
             f"{'endpoint':<28}{'requests/s':>12}{'x session only':>16}"]
    for label, path in ENDPOINTS:
        lines.append(f"{label:<28}{best[path]:>12.0f}{best[path] / base_rps:>16.2f}")
    checks = [
        (f"protected keeps >= {MIN_RATIO:.0%} of session-only throughput", f"{ratio:.1%}", ratio >= MIN_RATIO),
        ("zero provider requests under load", str(provider_requests), provider_requests == 0),
        ("session file never rewritten under load", "rewritten" if rewritten else "unchanged", not rewritten),
        ("every answer 2xx (wrk errors + non-2xx)", str(errors), errors == 0),
    ]
    lines += [f"  [{'PASS' if ok else 'FAIL'}] {name}: {value}" for name, value, ok in checks]
    return "\n".join(lines), all(ok for _, _, ok in checks)


def _rounds(base: str, endpoints: list[tuple[str, str]], headers: list[str]) -> tuple[dict[str, list[float]], int]:
    """Requests/s of each endpoint in each of ROUNDS rounds (after a warm-up of every worker), and wrk's errors."""
    for _, path in endpoints:
        _wrk(base + path, headers, 1)
    rps: dict[str, list[float]] = {path: [] for _, path in endpoints}
    errors = 0
    for round_ in range(ROUNDS):
        for _, path in endpoints[:: 1 if round_ % 2 == 0 else -1]:  # alternate the order
            got, failed = _wrk(base + path, headers, DURATION_S)
            rps[path].append(got)
            errors += failed
    return rps, errors


def compare(endpoints: list[tuple[str, str]], app: str, env: dict[str, str], headers: list[str], *,
            baseline: str, expect_refused: tuple[str, ...]) -> tuple[str, bool]:
    """gunicorn serving ``app``; wrk sends ``headers`` to each of ``endpoints`` (``(label, path)``; the
    first is the one whose ratio to ``baseline`` must reach MIN_RATIO). ``expect_refused`` paths must
    answer 401 without the headers. Returns the printed report and whether the targets were met."""
    if shutil.which("wrk") is None:
        return "wrk is not installed (Debian: apt-get install -y wrk); load test skipped.", False
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="msal-wsgi-gunicorn-") as workdir:
        process = _serve(app, env, workdir, port)
        try:
            _wait_ready(base, process, workdir, baseline)
            sent = dict(header.split(": ", 1) for header in headers)
            for _, path in endpoints:
                status = requests.get(base + path, headers=sent, timeout=10).status_code
                assert status == 200, (path, status)
            for path in expect_refused:
                status = requests.get(base + path, timeout=10).status_code
                assert status == 401, (path, status)
            rps, errors = _rounds(base, endpoints, headers)
        finally:
            process.terminate()
            process.wait(timeout=15)
    best = {path: max(values) for path, values in rps.items()}
    ratios = {path: statistics.median(p / b for p, b in zip(rps[path], rps[baseline])) for _, path in endpoints}
    lines = [(f"gunicorn {WORKERS} workers x {THREADS} threads (gthread); wrk -t1 -c{CONNECTIONS} -d{DURATION_S}s "
              f"(at most {MAX_REQUESTS} requests), best of {ROUNDS} rounds; ratio: median of the per-round ratios"),
             f"{'endpoint':<30}{'requests/s':>12}{'ratio':>9}"]
    lines += [f"{label:<30}{best[path]:>12.0f}{ratios[path]:>9.1%}" for label, path in endpoints]
    first_label, first = endpoints[0]
    checks = [
        (f"{first_label} keeps >= {MIN_RATIO:.0%} of {baseline}'s throughput", f"{ratios[first]:.1%}",
         ratios[first] >= MIN_RATIO),
        ("every answer 2xx (wrk errors + non-2xx)", str(errors), errors == 0),
    ]
    lines += [f"  [{'PASS' if ok else 'FAIL'}] {name}: {value}" for name, value, ok in checks]
    return "\n".join(lines), all(ok for _, _, ok in checks)
