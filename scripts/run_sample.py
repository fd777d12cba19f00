"""Start the local OpenID Connect provider, the to-do list API and the sample web app wired to both
(``./scripts/run-sample``), and stop all three together."""

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
PORTS = {"SAMPLE_PORT": 5000, "SAMPLE_API_PORT": 5010, "PROVIDER_PORT": 8443}
#: Seconds gunicorn has to stop after SIGINT (its graceful_timeout is less) before it is killed.
STOP_TIMEOUT = 2.5


def check_ports() -> None:
    """Exit naming SAMPLE_PORT, SAMPLE_API_PORT or PROVIDER_PORT if one is taken, before anything is written.

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
        sys.exit(f"run-sample: {' and '.join(taken)} in use, perhaps by another run-sample. Stop it, or choose "
                 "free ports: SAMPLE_PORT=5002 SAMPLE_API_PORT=5012 PROVIDER_PORT=8444 ./scripts/run-sample")


def gunicorn(app: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), app],
                            cwd=ROOT, env=env)


def stop(server: subprocess.Popen[bytes]) -> None:
    """SIGINT, gunicorn's quick shutdown (as Ctrl-C sends it); SIGKILL after STOP_TIMEOUT s."""
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
# -------------------------------------------------------------------------------


def port_of(name: str) -> int:
    return int(os.environ.get(name, PORTS[name]))


def main() -> int:
    check_ports()
    port, api_port = port_of("SAMPLE_PORT"), port_of("SAMPLE_API_PORT")
    data = ROOT / os.environ.get("SAMPLE_DATA_DIR", ".sample-data")
    provider = DevProvider().start(data / "provider", port=port_of("PROVIDER_PORT"),
                                   keep_ca=True)  # made once: what trusts it keeps working
    url = f"http://localhost:{port}"
    # The API is its own registration (todo-api): it validates tokens for api://todo and signs no one in.
    api_env = {**os.environ, "MSAL_CLIENT_ID": "todo-api", "MSAL_OIDC_AUTHORITY": provider.issuer,
               "REQUESTS_CA_BUNDLE": str(provider.ca_path), "SAMPLE_DATA_DIR": str(data),
               "SAMPLE_BIND": f"127.0.0.1:{api_port}"}
    web_env = {**os.environ, **sample_env(provider, url, data, MSAL_POST_LOGOUT_REDIRECT_URI=url + "/",
                                          TODOLIST_ENDPOINT=f"http://127.0.0.1:{api_port}/api/todolist"),
               **{name: os.environ[name] for name in _YOURS if name in os.environ}}
    print(f"\n  Identity provider: {provider.issuer} (client todo-web, secret todo-web-secret)"
          f"\n  Trust its certificate: import {provider.ca_path} into your browser as a certificate authority"
          " (made once, kept across runs), or accept the browser's warning"
          f"\n  To-do list API:    http://127.0.0.1:{api_port}/api/todolist"
          f"\n  Open http://localhost:{port}/ and sign in with any name; Ctrl-C stops everything.\n", flush=True)
    # Stop every server however this script ends: Ctrl-C, SIGTERM, or a gunicorn exiting.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    servers = [gunicorn("todo_api:app", api_env)]
    try:
        servers.append(gunicorn("sample_app:app", web_env))
        while True:
            for server in servers:
                try:
                    return server.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    continue
    except KeyboardInterrupt:
        return 0
    finally:
        for server in servers:
            if server.poll() is None:
                server.send_signal(signal.SIGINT)
        for server in servers:
            if server.poll() is None:
                stop(server)
        provider.stop()


if __name__ == "__main__":
    sys.exit(main())
