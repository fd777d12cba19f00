"""Start the local OpenID Connect provider and the sample app wired to it (``./scripts/run-sample``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devprovider import DevProvider  # noqa: E402


def main() -> int:
    port = int(os.environ.get("SAMPLE_PORT", "5000"))
    data = ROOT / ".sample-data"
    provider = DevProvider().start(data / "provider", port=int(os.environ.get("PROVIDER_PORT", "8443")))
    env = dict(os.environ)
    env.update({
        "MSAL_CLIENT_ID": env.get("MSAL_CLIENT_ID", "todo-web"),
        "MSAL_CLIENT_SECRET": env.get("MSAL_CLIENT_SECRET", "todo-web-secret"),
        "MSAL_OIDC_AUTHORITY": provider.issuer,
        "MSAL_REDIRECT_URI": f"http://localhost:{port}/auth/callback",
        "MSAL_POST_LOGOUT_REDIRECT_URI": f"http://localhost:{port}/",
        "REQUESTS_CA_BUNDLE": str(provider.ca_path),
        "SAMPLE_BIND": f"127.0.0.1:{port}",
        "SAMPLE_DATA_DIR": str(data),
    })
    print(f"\n  Identity provider: {provider.issuer} (TLS from the throw-away CA {provider.ca_path};"
          "\n  your browser will warn about its certificate once: accept it, or import that CA)"
          f"\n  Open http://localhost:{port}/ and sign in with any name.\n", flush=True)
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
            gunicorn.terminate()
            gunicorn.wait(timeout=30)
        provider.stop()


if __name__ == "__main__":
    sys.exit(main())
