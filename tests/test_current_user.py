"""Public pages can see who is signed in, lazily; failures of msal_wsgi's own inside the app are answered."""

from __future__ import annotations

import json
from typing import Any

from support.apps import echo_app, make_testapp, sign_in

from msal_wsgi import CURRENT_USER, InteractionRequired


def public_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """``/public/who`` asks who is signed in; ``/public/quiet`` does not; ``/public/demand`` needs a sign-in."""
    body: dict[str, Any] = {}
    if environ["PATH_INFO"] == "/public/who":
        user = environ[CURRENT_USER]()
        body["user"] = user and user.username
    elif environ["PATH_INFO"] == "/public/demand":
        raise InteractionRequired("this page wants a signed-in user")
    elif not environ["PATH_INFO"].startswith("/public"):
        return echo_app(environ, start_response)
    body["session_loaded"] = environ["beaker.session"].accessed()
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]


def test_a_public_page_sees_nobody_then_the_signed_in_user(provider):
    app = make_testapp(provider, app=public_app)
    assert app.get("/public/who").json["user"] is None
    sign_in(app, provider)
    assert app.get("/public/who").json == {"user": "alice", "session_loaded": True}


def test_a_public_page_that_does_not_ask_does_not_load_the_session(provider):
    app = make_testapp(provider, app=public_app)
    sign_in(app, provider)
    assert app.get("/public/quiet").json == {"session_loaded": False}


def test_interaction_required_raised_by_the_app_is_a_sign_in_or_a_401(provider):
    app = make_testapp(provider, app=public_app)
    browser = app.get("/public/demand")
    assert browser.status_int == 302 and browser.location.startswith(provider.issuer + "/auth?")
    api = app.get("/public/demand", headers={"Accept": "application/json"}, status=401)
    assert api.json["error"] == "interaction_required" and "wants a signed-in user" in api.json["error_description"]
