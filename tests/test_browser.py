"""The sample app in headless Chromium: sign in at the provider, add an item, reload, sign out.

Against the stock provider, adding the item needs a consent to write first: the form
goes to the provider's consent page and comes back saved exactly once (issue 10).

The app is served by gunicorn at http://localhost:PORT and the provider at
https://127.0.0.1:PORT: two sites, as in production, so Chromium sends the
provider's form_post answer without the app's SameSite=Lax session cookie and
the app's re-post page brings it along. ``tests/browser/e2e.mjs`` drives Debian's
Chromium with playwright-core and saves a screenshot per step in
``artifacts/browser/<mode>-<response mode>/``, and the home page and the list at
1280 and 390 px wide (``layout-*.png``).
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


@pytest.mark.parametrize(("mode", "response_mode"), [("entra", "form_post"), ("entra", "query"),
                                                      ("stock", "form_post"), ("stock", "query")])
def test_sign_in_add_an_item_reload_and_sign_out_in_chromium(request, tmp_path, mode, response_mode):
    provider = request.getfixturevalue("stock_devprovider" if mode == "stock" else "devprovider")
    with sample_server(provider, tmp_path, host="localhost", MSAL_RESPONSE_MODE=response_mode) as web:
        report = run_browser(web.url, ARTIFACTS / f"{mode}-{response_mode}", login=f"chromium-{mode}-{response_mode}")

    item = ["Try msal_wsgi in a real browser"]
    assert report["user"] == f"Signed in as chromium-{mode}-{response_mode}"
    assert report["items_after_add"] == report["items"] == report["items_after_back"] == item  # saved once
    assert report["signed_out_redirect"].startswith(provider.issuer + "/interaction/")
    stock = mode == "stock"
    steps = STEPS[:4] + ["provider-consent-to-write"] * stock + STEPS[4:]
    assert [step["name"] for step in report["steps"]] == steps
    for step in report["steps"]:
        assert Path(step["screenshot"]).stat().st_size > 1000, step
    # A small real app: the nav names the user, the input has a label, an empty list says so, the pages fit
    # a phone's width (390 px) and a desktop's (1280 px), and no page may be framed.
    assert report["nav_user"] == f"chromium-{mode}-{response_mode}"
    assert report["labelled_input"] and report["empty_state"]
    assert "frame-ancestors 'none'" in report["home_csp"]
    for page, widths in report["layout"].items():
        for width, shot in widths.items():
            assert not shot["overflows"], (page, width)
            assert Path(shot["screenshot"]).stat().st_size > 1000, (page, width)
    assert sorted(report["layout"]) == ["home", "todos"]
    # The user's POST; with a consent to write, msal_wsgi's one re-submission after it.
    assert report["consented_to_write"] is stock
    assert report["form_posts"] == ["form", "resubmission"] if stock else ["form"]

    sign_ins = 2 if stock else 1
    callbacks = [(c["method"], c["repost"], c["cookie"]) for c in report["callbacks"]]
    if response_mode == "form_post":
        # (method, the same-site re-post?, carried the session cookie?)
        assert callbacks == [("POST", False, False), ("POST", True, True)] * sign_ins
    else:
        assert callbacks == [("GET", False, True)] * sign_ins  # a top-level cross-site GET carries Lax cookies
