"""Start the local OpenID Connect provider and the sample app wired to it (``./scripts/run-sample``)."""

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


def main() -> int:
    port = int(os.environ.get("SAMPLE_PORT", "5000"))
    data = ROOT / ".sample-data"
    provider = DevProvider().start(data / "provider", port=int(os.environ.get("PROVIDER_PORT", "8443")))
    url = f"http://localhost:{port}"
    env = {**os.environ, **sample_env(provider, url, data, MSAL_POST_LOGOUT_REDIRECT_URI=url + "/"),
           **{name: os.environ[name] for name in _YOURS if name in os.environ}}
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
