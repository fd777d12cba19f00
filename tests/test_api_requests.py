"""API and XHR calls get 401 with a JSON body, never a login page, and start no sign-in."""

from __future__ import annotations

import pytest

from support.apps import make_testapp, session_of


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Mode": "cors"},
    {"Sec-Fetch-Mode": "no-cors"},
    {"X-Requested-With": "XMLHttpRequest"},
    {"Accept": "application/json"},
    {"Accept": "application/problem+json"},
], ids=["fetch-cors", "fetch-no-cors", "xhr", "accept-json", "accept-problem-json"])
def test_api_call_gets_401_json_and_creates_no_flow(provider, headers):
    app = make_testapp(provider)
    answer = app.get("/todos", headers=headers, status=401)
    assert answer.json == {"error": "interaction_required", "error_description": "Sign-in required: not signed in",
                           "login_url": "/auth/login?next=%2Ftodos"}
    assert answer.headers["WWW-Authenticate"].startswith('Session realm="msal_wsgi"')
    assert "sid" not in app.cookies  # no session was written: no pending flow


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Mode": "navigate", "Accept": "text/html,application/xhtml+xml"},
    {"Accept": "text/html,application/json;q=0.9"},
    {},
], ids=["navigate", "html-and-json", "no-hints"])
def test_browser_navigation_is_sent_to_sign_in(provider, headers):
    app = make_testapp(provider)
    answer = app.get("/todos", headers=headers, status=302)
    assert answer.location.startswith(provider.issuer + "/auth?")
    assert len(session_of(app)["msal_wsgi.flows"]) == 1
