"""Once signed in, tokens come silently: from the session, or by refresh token when they expire."""

from __future__ import annotations

import time

import jwt
import pytest

from support.apps import SECRETS, make_testapp, session_of, sign_in

pytestmark = pytest.mark.both_provider_modes  # Entra-like and stock provider (issue 10)


def test_silent_hit_makes_no_provider_request(provider):
    app = make_testapp(provider)
    first = sign_in(app, provider).json["token"]["value"]
    mark = provider.mark()
    for _ in range(5):
        assert app.get("/todos").json["token"]["value"] == first
    assert provider.requests_since(mark) == []


def test_expired_token_is_refreshed_with_exactly_one_token_request(provider):
    app = make_testapp(provider, client_id="todo-web-short")
    first = sign_in(app, provider).json["token"]["value"]
    time.sleep(3.5)  # the 303 s token now has < 300 s left: msal's expiry
    mark = provider.mark()
    second = app.get("/todos").json["token"]["value"]
    assert second != first
    assert len(provider.token_requests_since(mark)) == 1
    assert jwt.decode(second, options={"verify_signature": False})["sub"] == "alice"
    mark = provider.mark()
    assert app.get("/todos").json["token"]["value"] == second
    assert provider.requests_since(mark) == []


def test_revoked_refresh_token_leads_back_to_sign_in(provider):
    app = make_testapp(provider, client_id="todo-web-short")
    sign_in(app, provider)
    session = session_of(app)
    refresh_token = _refresh_token(session)
    provider.revoke(refresh_token, "todo-web-short", SECRETS["todo-web-short"])
    time.sleep(3.5)
    answer = app.get("/todos")
    assert answer.status_int == 302 and answer.location.startswith(provider.issuer + "/auth?")
    api = app.get("/todos", headers={"Accept": "application/json"}, status=401)
    assert api.json["error"] == "interaction_required"


@pytest.mark.entra_only  # one refresh token for every scope; stock: test_incremental_consent.py
def test_token_for_other_scopes_on_demand(provider):
    app = make_testapp(provider)
    sign_in(app, provider)
    mark = provider.mark()
    body = app.get("/todos?acquire=api://r3/access").json
    assert jwt.decode(body["acquired"]["value"], options={"verify_signature": False})["aud"] == "api://r3"
    assert len(provider.token_requests_since(mark)) == 1
    mark = provider.mark()
    again = app.get("/todos?acquire=api://r3/access").json
    assert again["acquired"]["value"] == body["acquired"]["value"]
    assert provider.requests_since(mark) == []


def test_cache_is_written_back_only_when_it_changed(provider):
    saves = []
    app = make_testapp(provider)
    sign_in(app, provider)
    from beaker.session import Session

    original = Session.save

    def counting_save(self, accessed_only=False):
        saves.append(accessed_only)
        return original(self, accessed_only)

    Session.save = counting_save
    try:
        for _ in range(3):
            app.get("/todos")
    finally:
        Session.save = original
    assert saves == []


def _refresh_token(session) -> str:
    import json

    cache = json.loads(session["msal_wsgi.token_cache"])
    (entry,) = cache["RefreshToken"].values()
    return entry["secret"]
