"""The session id changes at sign-in and sign-out; nothing of one user reaches the next."""

from __future__ import annotations

import webtest
from support.apps import make_testapp, sign_in


def _session_id(app):
    return app.cookies["sid"]


def test_sign_in_issues_a_new_session_id_and_empties_the_old_one(provider):
    app = make_testapp(provider)
    app.get("/todos")  # an anonymous session now holds the pending sign-in
    before = _session_id(app)
    token = sign_in(app, provider).json["token"]["value"]
    assert _session_id(app) != before
    planted = webtest.TestApp(app.app)  # an attacker who fixed the old id in the victim's browser
    planted.set_cookie("sid", before)
    assert planted.get("/todos", headers={"Accept": "application/json"}, status=401).json["error"]
    assert token not in planted.get("/public").text


def test_sign_out_issues_a_new_session_id_and_keeps_nothing(provider):
    app = make_testapp(provider)
    sign_in(app, provider)
    before = _session_id(app)
    app.get("/auth/logout")
    assert _session_id(app) != before
    old = webtest.TestApp(app.app)
    old.set_cookie("sid", before)
    old.get("/todos", headers={"Accept": "application/json"}, status=401)
    app.get("/todos", headers={"Accept": "application/json"}, status=401)


def test_next_user_in_the_same_browser_never_sees_the_previous_users_tokens(provider):
    app = make_testapp(provider)
    alice = sign_in(app, provider, login="alice").json
    app.get("/auth/logout")
    bob = sign_in(app, provider, login="bob").json
    assert bob["user"]["username"] == "bob" and bob["token"]["value"] != alice["token"]["value"]
    other = app.get("/todos", {"acquire": "api://r1/access"}).json["acquired"]
    assert other["scopes"] == ["api://r1/access"]
    assert "alice" not in app.get("/todos").text


def test_second_user_signing_in_without_signing_out_replaces_the_first(provider):
    app = make_testapp(provider)
    alice = sign_in(app, provider, login="alice").json
    bob = sign_in(app, provider, "/auth/login?next=/todos", login="bob").json
    assert bob["user"]["username"] == "bob" and alice["token"]["value"] not in str(bob)
