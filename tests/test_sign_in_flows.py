"""Several tabs, sign-out, and the sign-in endpoint."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from msal_wsgi import MIDDLEWARE

from support.apps import complete_sign_in, make_testapp, sign_in

pytestmark = pytest.mark.both_provider_modes  # Entra-like and stock provider (issue 10)


def test_two_tabs_signing_in_at_once_both_land_where_they_started(provider):
    app = make_testapp(provider)
    tab_a = app.get("/todos/a")
    tab_b = app.get("/todos/b?x=1")
    back_b = complete_sign_in(app, provider, tab_b)
    back_a = complete_sign_in(app, provider, tab_a)
    assert back_b.location.endswith("/todos/b?x=1")
    assert back_a.location.endswith("/todos/a")
    assert back_a.follow().json["remote_user"] == "alice"


def test_pending_sign_ins_are_bounded(provider):
    app = make_testapp(provider, max_pending_sign_ins=2)
    first = app.get("/todos/1")
    app.get("/todos/2")
    app.get("/todos/3")
    answer = complete_sign_in(app, provider, first)
    assert answer.status_int == 400 and "Sign in again" in answer.text


def test_sign_in_endpoint_returns_to_next(provider):
    app = make_testapp(provider)
    start = app.get("/auth/login", {"next": "/todos?page=2", "login_hint": "alice"})
    query = parse_qs(urlsplit(start.location).query)
    assert query["login_hint"] == ["alice"]
    assert query["scope"][0].split()[0] == "api://todo/ToDoList.Read"
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    back = complete_sign_in(app, provider, start)
    assert back.location.endswith("/todos?page=2")


def test_sign_in_endpoint_for_a_public_page_asks_only_for_sign_in(provider):
    app = make_testapp(provider)
    start = app.get("/auth/login", {"next": "/about"})
    assert set(parse_qs(urlsplit(start.location).query)["scope"][0].split()) == {"openid", "profile", "offline_access"}


def test_sign_out_clears_the_session_and_ends_the_provider_session(provider):
    app = make_testapp(provider, post_logout_redirect_uri="http://localhost/bye")
    sign_in(app, provider)
    old_sid = app.cookies["sid"]
    out = app.get("/auth/logout")
    assert out.location.startswith(provider.metadata["end_session_endpoint"] + "?")
    query = parse_qs(urlsplit(out.location).query)
    assert query["post_logout_redirect_uri"] == ["http://localhost/bye"] and query["client_id"] == ["todo-web"]
    assert app.cookies["sid"] != old_sid
    assert provider.end_session(out.location) == "http://localhost/bye"
    again = app.get("/todos")
    assert again.status_int == 302 and again.location.startswith(provider.issuer)
    assert app.get("/todos", headers={"X-Requested-With": "XMLHttpRequest"}, status=401)


def test_sign_out_without_end_session_endpoint_goes_to_a_local_page(provider):
    app = make_testapp(provider)
    sign_in(app, provider)
    app.app.app._client._http.discovery.pop("end_session_endpoint", None)  # provider without one
    out = app.get("/auth/logout", {"next": "/goodbye"})
    assert out.location == "http://localhost/goodbye"


def _reauthenticating_app(environ, start_response):
    """An app whose API asked for more claims: it hands the challenge to the middleware."""
    return environ[MIDDLEWARE].start_sign_in(environ, claims_challenge='{"access_token":{"acrs":{"values":["c1"]}}}')(
        environ, start_response)


def test_start_sign_in_sends_a_browser_to_sign_in_with_the_claims(provider):
    app = make_testapp(provider, app=_reauthenticating_app)
    sign_in_start = app.get("/todos")  # not signed in yet: the middleware's own challenge
    complete_sign_in(app, provider, sign_in_start)
    again = app.get("/todos?page=2")
    query = parse_qs(urlsplit(again.location).query)
    assert again.status_int == 302 and "c1" in query["claims"][0]
    back = complete_sign_in(app, provider, again)
    assert back.location.endswith("/todos?page=2")


def test_start_sign_in_gives_an_api_caller_401_not_a_redirect(provider):
    app = make_testapp(provider, app=_reauthenticating_app)
    complete_sign_in(app, provider, app.get("/todos"))
    answer = app.get("/todos", headers={"X-Requested-With": "XMLHttpRequest"}, status=401)
    assert answer.json["error"] == "interaction_required"
