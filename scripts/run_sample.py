"""Start the local OpenID Connect provider, the to-do list API and the sample web app wired to both
(``./scripts/run-sample``), and stop all three together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devprovider import DevProvider
from tests.support.environment import sample_env  # what the tests run the sample with, too

#: Variables of the user's environment that win over the sample's defaults.
_YOURS = ("MSAL_CLIENT_ID", "MSAL_CLIENT_SECRET")


def gunicorn(app: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), app],
                            cwd=ROOT, env=env)


def main() -> int:
    port = int(os.environ.get("SAMPLE_PORT", "5000"))
    api_port = int(os.environ.get("SAMPLE_API_PORT", "5001"))
    data = ROOT / ".sample-data"
    provider = DevProvider().start(data / "provider", port=int(os.environ.get("PROVIDER_PORT", "8443")))
    url = f"http://localhost:{port}"
    # The API is its own registration (todo-api): it validates tokens for api://todo and signs no one in.
    api_env = {**os.environ, "MSAL_CLIENT_ID": "todo-api", "MSAL_OIDC_AUTHORITY": provider.issuer,
               "REQUESTS_CA_BUNDLE": str(provider.ca_path), "SAMPLE_DATA_DIR": str(data),
               "SAMPLE_BIND": f"127.0.0.1:{api_port}"}
    web_env = {**os.environ, **sample_env(provider, url, data, MSAL_POST_LOGOUT_REDIRECT_URI=url + "/",
                                          TODOLIST_ENDPOINT=f"http://127.0.0.1:{api_port}/api/todolist"),
               **{name: os.environ[name] for name in _YOURS if name in os.environ}}
    print(f"\n  Identity provider: {provider.issuer} (TLS from the throw-away CA {provider.ca_path};"
          "\n  your browser will warn about its certificate once: accept it, or import that CA)"
          f"\n  To-do list API:    http://127.0.0.1:{api_port}/api/todolist"
          f"\n  Open http://localhost:{port}/ and sign in with any name.\n", flush=True)
    # Stop every server however this script ends: Ctrl-C, SIGTERM, or a gunicorn exiting.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    servers = [gunicorn("todo_api:app", api_env)]
    try:
        servers.append(gunicorn("sample_app:app", web_env))
        while True:
            for server in servers:
                try:
                    return server.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    continue
    except KeyboardInterrupt:
        return 0
    finally:
        for server in servers:
            if server.poll() is None:
                server.terminate()
        for server in servers:
            server.wait(timeout=30)
        provider.stop()


if __name__ == "__main__":
    sys.exit(main())
