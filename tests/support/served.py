"""Real servers for tests: gunicorn serving the echo app, Redis, and free loopback ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import contextlib
import requests

SUPPORT_DIR = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} in {timeout} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A throwaway redis-server on a free loopback port, without persistence."""
    port = free_port()
    process = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process, "redis-server")
        yield port, process
    finally:
        _stop(process)


@contextlib.contextmanager
def gunicorn(env: dict[str, str], log_path: Path, *, workers: int = 3) -> Iterator[str]:
    """gunicorn serving :mod:`gunicorn_app` with ``env``, logging to ``log_path``; yields its base URL."""
    port = free_port()
    child_env = dict(os.environ, **env, MSAL_REDIRECT_URI=f"http://127.0.0.1:{port}/auth/callback")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--chdir", str(SUPPORT_DIR),
         "--pythonpath", str(SUPPORT_DIR.parent.parent), "-w", str(workers),
         "-b", f"127.0.0.1:{port}", "--timeout", "30", "--log-level", "info", "--error-logfile", str(log_path), "gunicorn_app:application"],
        env=child_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process, "gunicorn")
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


def browser() -> requests.Session:
    """A cookie-keeping HTTP client for the app (loopback, no proxies)."""
    session = requests.Session()
    session.trust_env = False
    return session
