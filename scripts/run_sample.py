"""Start the local OpenID Connect provider and the sample app wired to it (``./scripts/run-sample``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devprovider import DevProvider
from tests.support.environment import sample_env  # what the tests run the sample with, too

#: Variables of the user's environment that win over the sample's defaults.
_YOURS = ("MSAL_CLIENT_ID", "MSAL_CLIENT_SECRET")


# -- ports checked first, quick stop (issue 14) ---------------------------------
#: The variables choosing the ports, with their defaults.
PORTS = {"SAMPLE_PORT": 5000, "PROVIDER_PORT": 8443}
#: Seconds gunicorn has to stop after SIGINT (its graceful_timeout is less) before it is killed.
STOP_TIMEOUT = 2.5


def check_ports() -> None:
    """Exit naming SAMPLE_PORT or PROVIDER_PORT if one is taken, before anything is written.

    A second run-sample then leaves the running one, its CA and its files alone.
    """
    taken = []
    for name, default in PORTS.items():
        port = int(os.environ.get(name, default))
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn and node bind
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                taken.append(f"port {port} ({name})")
    if taken:
        sys.exit(f"run-sample: {' and '.join(taken)} in use, perhaps by another run-sample. "
                 "Stop it, or choose free ports: SAMPLE_PORT=5002 PROVIDER_PORT=8444 ./scripts/run-sample")


def stop(gunicorn: subprocess.Popen[bytes]) -> None:
    """SIGINT, gunicorn's quick shutdown (as Ctrl-C sends it); SIGKILL after STOP_TIMEOUT s."""
    gunicorn.send_signal(signal.SIGINT)
    try:
        gunicorn.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        gunicorn.kill()
        gunicorn.wait()
# -------------------------------------------------------------------------------


def main() -> int:
    check_ports()
    port = int(os.environ.get("SAMPLE_PORT", "5000"))
    data = ROOT / os.environ.get("SAMPLE_DATA_DIR", ".sample-data")
    provider = DevProvider().start(data / "provider", port=int(os.environ.get("PROVIDER_PORT", "8443")),
                                   keep_ca=True)  # made once: what trusts it keeps working
    url = f"http://localhost:{port}"
    env = {**os.environ, **sample_env(provider, url, data, MSAL_POST_LOGOUT_REDIRECT_URI=url + "/"),
           **{name: os.environ[name] for name in _YOURS if name in os.environ}}
    print(f"\n  Identity provider: {provider.issuer} (client todo-web, secret todo-web-secret)"
          f"\n  Trust its certificate: import {provider.ca_path} into your browser as a certificate authority"
          " (made once, kept across runs), or accept the browser's warning"
          f"\n  Open http://localhost:{port}/ and sign in with any name; Ctrl-C stops both.\n", flush=True)
    # Stop both servers however this script ends: Ctrl-C, SIGTERM, or gunicorn exiting.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    gunicorn = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
                                 "sample_app:app"], cwd=ROOT, env=env)
    try:
        return gunicorn.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if gunicorn.poll() is None:
            stop(gunicorn)
        provider.stop()


if __name__ == "__main__":
    sys.exit(main())
