"""A browser visiting a protected page is signed in and comes back with a token."""

from __future__ import annotations

import jwt
import pytest

from msal_wsgi import MsalMiddleware

from support.apps import TODO_READ, TODO_WRITE, make_testapp, sign_in

pytestmark = pytest.mark.both_provider_modes  # Entra-like and stock provider (issue 10)


def test_full_sign_in_hands_token_and_user_to_the_app(provider):
    app = make_testapp(provider)
    page = sign_in(app, provider, "/todos?filter=open", login="alice")
    assert page.request.path_qs == "/todos?filter=open"
    body = page.json
    assert body["remote_user"] == "alice"
    assert body["user"]["name"] == "alice"
    claims = jwt.decode(body["token"]["value"], options={"verify_signature": False})
    assert claims["aud"] == "api://todo" and TODO_READ in claims["scope"].split()
    assert body["token"]["scopes"] == [TODO_READ]


@pytest.mark.entra_only  # one refresh token for every scope; stock: test_incremental_consent.py
def test_unsafe_method_gets_the_read_write_token(provider):
    app = make_testapp(provider)
    sign_in(app, provider)
    body = app.post("/todos/1", {"x": "1"}).json
    assert body["token"]["scopes"] == [TODO_WRITE]
    claims = jwt.decode(body["token"]["value"], options={"verify_signature": False})
    assert TODO_WRITE in claims["scope"].split()


def test_query_response_mode_signs_in_too(provider):
    app = make_testapp(provider, response_mode="query")
    assert sign_in(app, provider).json["remote_user"] == "alice"


def test_public_path_passes_through_without_touching_the_session(provider):
    app = make_testapp(provider)
    response = app.get("/public")
    assert response.json["user"] is None and "Set-Cookie" not in response.headers


def test_sign_in_only_route_needs_no_token(provider):
    app = make_testapp(provider)
    body = sign_in(app, provider, "/profile", login="bob").json
    assert body["user"]["username"] == "bob" and body["token"] is None
