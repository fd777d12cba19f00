"""The session's token index (the hot path) serves a token only when msal itself would.

msal stops serving a cached access token when less than 5 minutes are left or once its
``refresh_on`` (from the provider's ``refresh_in``) has passed; the index must stop at the
same instant, and must never hand out a token for other scopes, another user, another
client or authority, or after sign-out. Every test here runs against the real provider.
"""

from __future__ import annotations

import json
import time

import jwt
import pytest
from support.apps import TODO_READ, TODO_WRITE, complete_sign_in, make_testapp, session_of, sign_in

from msal_wsgi import _environ as K
from msal_wsgi._msal import EXPIRY_MARGIN
from msal_wsgi._session import StoredUser

JSON = {"Accept": "application/json"}


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def msal_entry(app, token: str) -> dict:
    """msal's own cache entry for ``token``, as stored in the session."""
    cache = json.loads(session_of(app)[K.SESSION_CACHE])
    return next(at for at in cache["AccessToken"].values() if at["secret"] == token)


def indexed(app, scopes: str) -> list:
    return session_of(app)[K.SESSION_USER]["tokens"][scopes]


@pytest.mark.parametrize(("left", "refresh_in", "served"), [
    (EXPIRY_MARGIN + 60, None, True),
    (EXPIRY_MARGIN + 1, None, True),
    (EXPIRY_MARGIN, None, True),  # msal: expired only when strictly less than 5 minutes are left
    (EXPIRY_MARGIN - 0.5, None, False),
    (-10, None, False),
    (3600, 10, True),
    (3600, 0, False),  # conservative: at refresh_on itself the index defers to msal
    (3600, -10, False),
], ids=["6-min-left", "5-min-1s-left", "exactly-5-min", "inside-window", "expired",
        "before-refresh-on", "at-refresh-on", "past-refresh-on"])
def test_index_serves_only_what_msal_would(left, refresh_in, served):
    now = 1_800_000_000.0
    refresh_on = None if refresh_in is None else int(now + refresh_in)
    record = {"id": "u", "claims": {}, "tokens": {TODO_READ: ["t", now + left, refresh_on, [TODO_READ]]}}
    assert (StoredUser(record).cached_token(TODO_READ, now) is not None) is served


def test_index_keeps_msals_own_expiry_and_refresh_times(provider):
    app = make_testapp(provider, client_id="todo-web-refresh-in")
    token = sign_in(app, provider).json["token"]["value"]
    entry = msal_entry(app, token)
    value, expires_on, refresh_on, _ = indexed(app, TODO_READ)
    assert value == token
    assert expires_on == int(entry["expires_on"])
    assert refresh_on == int(entry["refresh_on"])


def test_token_entering_the_refresh_window_is_not_served(provider):
    app = make_testapp(provider, client_id="todo-web-short")  # 303 s tokens
    first = sign_in(app, provider).json["token"]["value"]
    window = int(msal_entry(app, first)["expires_on"]) - EXPIRY_MARGIN
    mark = provider.mark()
    assert app.get("/todos").json["token"]["value"] == first
    assert provider.requests_since(mark) == []
    time.sleep(max(0.0, window - time.time()) + 0.05)  # now inside msal's 5-minute window
    mark = provider.mark()
    second = app.get("/todos").json["token"]["value"]
    assert second != first
    assert len(provider.token_requests_since(mark)) == 1


def test_token_past_refresh_on_is_not_served(provider):
    app = make_testapp(provider, client_id="todo-web-refresh-in")  # 3600 s tokens, refresh_in 2 s
    first = sign_in(app, provider).json["token"]["value"]
    refresh_on = int(msal_entry(app, first)["refresh_on"])
    assert int(msal_entry(app, first)["expires_on"]) - time.time() > 3000
    time.sleep(max(0.0, refresh_on - time.time()) + 1.05)  # msal refreshes once refresh_on < now
    mark = provider.mark()
    second = app.get("/todos").json["token"]["value"]
    assert second != first
    assert len(provider.token_requests_since(mark)) == 1


def test_token_for_other_scopes_is_never_served(provider):
    app = make_testapp(provider)
    read = sign_in(app, provider).json["token"]["value"]
    write = app.post("/todos/1", {"x": "1"}).json["token"]
    assert write["value"] != read and TODO_WRITE in claims(write["value"])["scope"].split()
    other = app.get("/todos", {"acquire": "api://r7/access"}).json["acquired"]
    assert other["value"] not in (read, write["value"]) and claims(other["value"])["aud"] == "api://r7"
    both = app.get("/todos", {"acquire": f"{TODO_READ} {TODO_WRITE}"}).json["acquired"]
    assert set(claims(both["value"])["scope"].split()) >= {TODO_READ, TODO_WRITE}


def test_token_of_another_account_is_never_served(provider):
    app = make_testapp(provider)
    alice = sign_in(app, provider, login="alice").json["token"]["value"]
    back = complete_sign_in(app, provider, app.get("/auth/login", {"next": "/todos"}), login="bob")
    bob = back.follow().json
    assert bob["user"]["username"] == "bob"
    assert bob["token"]["value"] != alice and claims(bob["token"]["value"])["sub"] == "bob"
    assert list(session_of(app)[K.SESSION_USER]["tokens"]) == [TODO_READ]


@pytest.mark.parametrize("other", [
    {"client_id": "todo-web-short"},
    {"oidc_authority": "https://127.0.0.1:9/other-op"},
], ids=["another-client", "another-authority"])
def test_session_of_another_client_or_authority_is_signed_out(provider, other):
    app = make_testapp(provider)
    sign_in(app, provider)
    elsewhere = make_testapp(provider, **other)  # same Beaker memory store, same cookie name
    elsewhere.set_cookie("sid", app.cookies["sid"])
    mark = provider.mark()
    answer = elsewhere.get("/todos", headers=JSON, status=401)
    assert answer.json["error"] == "interaction_required"
    assert provider.requests_since(mark) == []


def test_no_token_after_sign_out_even_with_the_old_cookie(provider):
    app = make_testapp(provider)
    sign_in(app, provider)
    old_sid = app.cookies["sid"]
    assert app.get("/auth/logout").status_int == 302
    assert app.get("/todos", headers=JSON, status=401).json["error"] == "interaction_required"
    app.set_cookie("sid", old_sid)
    assert app.get("/todos", headers=JSON, status=401).json["error"] == "interaction_required"
