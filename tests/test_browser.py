"""The sample app in headless Chromium: sign in at the provider, add an item, reload, sign out.

The app is served by gunicorn at http://localhost:PORT and the provider at
https://127.0.0.1:PORT: two sites, as in production, so Chromium sends the
provider's form_post answer without the app's SameSite=Lax session cookie and
the app's re-post page brings it along. ``tests/browser/e2e.mjs`` drives Debian's
Chromium with playwright-core and saves a screenshot per step in
``artifacts/browser/<response mode>/``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from support.servers import ROOT, sample_server

BROWSER_DIR = ROOT / "tests" / "browser"
ARTIFACTS = ROOT / "artifacts" / "browser"
BROWSER_TIMEOUT = 120
STEPS = ["home", "provider-login", "provider-consent", "signed-in", "item-added", "reloaded",
         "provider-sign-out", "signed-out", "todos-needs-sign-in-again"]


def run_browser(base_url: str, artifacts: Path, login: str) -> dict:
    """Run ``e2e.mjs`` against ``base_url``; its JSON report (it exits 1 with ``error`` set on failure)."""
    assert (BROWSER_DIR / "node_modules" / "playwright-core").is_dir(), "run ./scripts/bootstrap (npm ci)"
    shutil.rmtree(artifacts, ignore_errors=True)
    done = subprocess.run(["node", "e2e.mjs", base_url, str(artifacts), login], cwd=BROWSER_DIR, check=False,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=BROWSER_TIMEOUT)
    assert done.stdout.strip(), f"e2e.mjs printed nothing (exit {done.returncode}):\n{done.stderr}"
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["ok"], report.get("error") or done.stderr
    return report


@pytest.mark.parametrize("response_mode", ["form_post", "query"])
def test_sign_in_add_an_item_reload_and_sign_out_in_chromium(provider, tmp_path, response_mode):
    with sample_server(provider, tmp_path, host="localhost", MSAL_RESPONSE_MODE=response_mode) as web:
        report = run_browser(web.url, ARTIFACTS / response_mode, login=f"chromium-{response_mode}")

    assert report["user"] == f"Signed in as chromium-{response_mode}"
    assert report["items"] == ["Try msal_wsgi in a real browser"]
    assert report["signed_out_redirect"].startswith(provider.issuer + "/interaction/")
    assert [step["name"] for step in report["steps"]] == STEPS
    for step in report["steps"]:
        assert Path(step["screenshot"]).stat().st_size > 1000, step

    callbacks = [(c["method"], c["repost"], c["cookie"]) for c in report["callbacks"]]
    if response_mode == "form_post":
        # (method, the same-site re-post?, carried the session cookie?)
        assert callbacks == [("POST", False, False), ("POST", True, True)]
    else:
        assert callbacks == [("GET", False, True)]  # a top-level cross-site GET carries Lax cookies
