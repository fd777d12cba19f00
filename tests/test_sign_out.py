"""Sign-out empties the session under a new id and ends the provider's session; nothing survives it."""

from __future__ import annotations

import pytest
from support.apps import JSON, browser_of, make_testapp, sign_in
from support.urls import query_of

pytestmark = pytest.mark.both_provider_modes  # Entra-like and stock provider (issue 10)


def test_sign_out_clears_the_session_and_ends_the_provider_session(provider):
    app = make_testapp(provider, post_logout_redirect_uri="http://localhost/bye")
    sign_in(app, provider)
    old_sid = app.cookies["sid"]
    out = app.get("/auth/logout")
    assert out.location.startswith(provider.metadata["end_session_endpoint"] + "?")
    query = query_of(out.location)
    assert query["post_logout_redirect_uri"] == "http://localhost/bye" and query["client_id"] == "todo-web"
    assert app.cookies["sid"] != old_sid
    assert provider.end_session(out.location) == "http://localhost/bye"
    again = app.get("/todos")
    assert again.status_int == 302 and again.location.startswith(provider.issuer)
    assert app.get("/todos", headers={"X-Requested-With": "XMLHttpRequest"}, status=401)


def test_sign_out_without_end_session_endpoint_goes_to_a_local_page(proxy):
    assert proxy.provider.metadata["end_session_endpoint"]  # the provider has one...
    proxy.discovery_overrides = {"end_session_endpoint": None}  # ...but announces none
    app = make_testapp(proxy.provider)
    sign_in(app, proxy.provider)
    out = app.get("/auth/logout", {"next": "/goodbye"})
    assert out.location == "http://localhost/goodbye"


def test_sign_out_issues_a_new_session_id_and_keeps_nothing(provider):
    app = make_testapp(provider)
    sign_in(app, provider)
    before = app.cookies["sid"]
    assert app.get("/auth/logout").status_int == 302
    assert app.cookies["sid"] != before
    assert app.get("/todos", headers=JSON, status=401).json["error"] == "interaction_required"
    old = browser_of(app, sid=before)  # the cookie from before, kept by the browser or a thief
    assert old.get("/todos", headers=JSON, status=401).json["error"] == "interaction_required"


@pytest.mark.entra_only  # acquires another resource silently; stock needs a consent for it
def test_next_user_in_the_same_browser_never_sees_the_previous_users_tokens(provider):
    app = make_testapp(provider)
    alice = sign_in(app, provider, login="alice").json
    app.get("/auth/logout")
    bob = sign_in(app, provider, login="bob").json
    assert bob["user"]["username"] == "bob" and bob["token"]["value"] != alice["token"]["value"]
    other = app.get("/todos", {"acquire": "api://r1/access"}).json["acquired"]
    assert other["scopes"] == ["api://r1/access"]
    assert "alice" not in app.get("/todos").text


#: An issuer on a closed loopback port: its end-session endpoint cannot be known.
UNREACHABLE = "https://127.0.0.1:9/realm"


@pytest.mark.parametrize(("query", "location"), [
    ("?next=/goodbye", "http://localhost/goodbye"),
    ("?next=/goodbye&next=/elsewhere", "http://localhost/"),
    ("", "http://localhost/"),
    ("?next=https://evil.example/", "http://localhost/"),
], ids=["next", "next-twice-goes-home", "no-next", "next-off-site"])
def test_sign_out_while_the_provider_is_unreachable_still_signs_out_and_goes_to_next(query, location):
    app = make_testapp(UNREACHABLE)
    out = app.get("/auth/logout" + query, status=302)
    assert out.location == location and "sid" in app.cookies  # a new, empty session
