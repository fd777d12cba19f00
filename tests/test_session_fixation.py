"""The session id changes at sign-in and the old one is left empty; nothing of one user reaches the next.

Sign-out does the same: see test_sign_out.py.
"""

from __future__ import annotations

from support.apps import JSON, TODO_READ, browser_of, claims_of, complete_sign_in, make_testapp, sign_in
from support.sessions import ALL_SESSION_KEYS, SESSION_USER, session_of


def test_sign_in_issues_a_new_session_id_and_empties_the_old_one(provider):
    app = make_testapp(provider)
    app.get("/todos")  # an anonymous session now holds the pending sign-in
    before = app.cookies["sid"]
    token = sign_in(app, provider).json["token"]["value"]
    assert app.cookies["sid"] != before
    planted = browser_of(app, sid=before)  # an attacker who fixed the old id in the victim's browser
    assert planted.get("/todos", headers=JSON, status=401).json["error"]
    old = dict(session_of(app, sid=before))  # what the store keeps under the old id
    assert not set(ALL_SESSION_KEYS) & set(old), sorted(old)
    assert token not in repr(old)


def test_second_user_signing_in_without_signing_out_replaces_the_first(provider):
    app = make_testapp(provider)
    alice = sign_in(app, provider, login="alice").json
    back = complete_sign_in(app, provider, app.get("/auth/login", {"next": "/todos"}), login="bob")
    bob = back.follow().json
    assert bob["user"]["username"] == "bob" and alice["token"]["value"] not in str(bob)
    assert claims_of(bob["token"]["value"])["sub"] == "bob"
    assert list(session_of(app)[SESSION_USER]["tokens"]) == [TODO_READ]  # alice's token is not indexed
