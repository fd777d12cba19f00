"""Sign-out is a POST from the app's own pages (a GET only shows the button); it deletes the session from
the store, continues under a new id, and ends the provider's session with ``id_token_hint``."""

from __future__ import annotations

import pytest
from support.apps import JSON, SAME_ORIGIN, browser_of, make_testapp, sign_in, sign_out
from support.sessions import SESSION_USER, msal_cache, session_of, stored_session
from support.urls import query_of

from devprovider import forms

pytestmark = pytest.mark.both_provider_modes  # Entra-like and stock provider (issue 10)


def test_sign_out_clears_the_session_and_ends_the_provider_session(provider):
    app = make_testapp(provider, post_logout_redirect_uri="http://localhost/bye")
    sign_in(app, provider)
    old_sid = app.cookies["sid"]
    id_token = next(iter(msal_cache(session_of(app))["IdToken"].values()))["secret"]
    out = sign_out(app)
    assert out.status_int == 303 and out.location.startswith(provider.metadata["end_session_endpoint"] + "?")
    query = query_of(out.location)
    assert query == {"post_logout_redirect_uri": "http://localhost/bye", "client_id": "todo-web",
                     "id_token_hint": id_token}  # no logout_hint: this provider issues no login_hint claim
    assert app.cookies["sid"] != old_sid
    assert stored_session(old_sid).is_new  # the old session is gone from the store, not left empty
    assert provider.end_session(out.location) == "http://localhost/bye"  # the provider takes the hint
    again = app.get("/todos")
    assert again.status_int == 302 and again.location.startswith(provider.issuer)
    assert app.get("/todos", headers=JSON, status=401)


def test_a_get_shows_the_sign_out_button_and_signs_no_one_out(provider):
    app = make_testapp(provider)
    sign_in(app, provider)
    page = app.get("/auth/logout")
    assert page.status_int == 200 and page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    (form,) = forms(page.text)
    assert form.method == "post" and form.action == "/auth/logout"
    assert form.fields["csrf"] == session_of(app)[SESSION_USER]["csrf"]  # the session's own token
    assert app.get("/todos").status_int == 200  # still signed in: <img src=".../auth/logout"> does nothing
    assert app.get("/auth/logout", {"next": "/bye"}).text.count('name="next" value="/bye"') == 1


@pytest.mark.parametrize(("headers", "token", "signed_out"), [
    (SAME_ORIGIN, False, True),
    ({"Sec-Fetch-Site": "same-origin"}, False, True),
    ({"Origin": "http://localhost"}, False, True),  # a browser without Fetch Metadata
    ({}, True, True),  # neither header: the form's token
    ({"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, True, True),  # the token proves it
    ({}, False, False),
    ({"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, False, False),
    ({"Sec-Fetch-Site": "same-site", "Origin": "http://other.localhost"}, False, False),
    ({"Sec-Fetch-Site": "none"}, False, False),
    ({"Origin": "https://evil.example"}, False, False),
    ({"Origin": "null"}, False, False),
], ids=["browser", "fetch-metadata", "origin", "token", "cross-site-with-token", "nothing", "cross-site",
        "same-site", "user-typed", "foreign-origin", "opaque-origin"])
def test_only_a_post_from_this_apps_pages_signs_out(provider, headers, token, signed_out):
    app = make_testapp(provider)
    sign_in(app, provider)
    fields = {"csrf": session_of(app)[SESSION_USER]["csrf"]} if token else {}
    answer = app.post("/auth/logout", fields, headers=headers, expect_errors=True)
    if signed_out:
        assert answer.status_int == 303
        assert app.get("/todos", headers=JSON, status=401)
    else:
        assert answer.status_int == 403 and "still signed in" in answer.text
        (form,) = forms(answer.text)  # the page offers the button, with the token, to confirm
        assert form.fields["csrf"] == session_of(app)[SESSION_USER]["csrf"]
        assert app.get("/todos").status_int == 200


def test_the_token_of_another_session_does_not_sign_out(provider):
    alice, bob = make_testapp(provider), make_testapp(provider)
    sign_in(alice, provider, login="alice")
    sign_in(bob, provider, login="bob")
    forged = {"csrf": session_of(bob)[SESSION_USER]["csrf"]}
    assert alice.post("/auth/logout", forged, status=403)
    assert alice.get("/todos").status_int == 200


def test_other_methods_are_405(provider):
    app = make_testapp(provider)
    assert app.put("/auth/logout", status=405).headers["Allow"] == "GET, HEAD, POST"


def test_sign_out_without_end_session_endpoint_goes_to_a_local_page(proxy):
    assert proxy.provider.metadata["end_session_endpoint"]  # the provider has one...
    proxy.discovery_overrides = {"end_session_endpoint": None}  # ...but announces none
    app = make_testapp(proxy.provider)
    sign_in(app, proxy.provider)
    out = sign_out(app, "/goodbye")
    assert out.status_int == 303 and out.location == "http://localhost/goodbye"


def test_sign_out_issues_a_new_session_id_and_keeps_nothing(provider):
    app = make_testapp(provider)
    sign_in(app, provider)
    before = app.cookies["sid"]
    assert sign_out(app).status_int == 303
    assert app.cookies["sid"] != before
    assert app.get("/todos", headers=JSON, status=401).json["error"] == "interaction_required"
    old = browser_of(app, sid=before)  # the cookie from before, kept by the browser or a thief
    assert old.get("/todos", headers=JSON, status=401).json["error"] == "interaction_required"


def test_signing_out_while_signed_out_still_ends_the_provider_session(provider):
    app = make_testapp(provider)
    page = app.get("/auth/logout")
    assert "not signed in" in page.text
    out = sign_out(app)
    assert out.status_int == 303 and "id_token_hint" not in query_of(out.location)


@pytest.mark.entra_only  # acquires another resource silently; stock needs a consent for it
def test_next_user_in_the_same_browser_never_sees_the_previous_users_tokens(provider):
    app = make_testapp(provider)
    alice = sign_in(app, provider, login="alice").json
    sign_out(app)
    bob = sign_in(app, provider, login="bob").json
    assert bob["user"]["username"] == "bob" and bob["token"]["value"] != alice["token"]["value"]
    other = app.get("/todos", {"acquire": "api://r1/access"}).json["acquired"]
    assert other["scopes"] == ["api://r1/access"]
    assert "alice" not in app.get("/todos").text


#: An issuer on a closed loopback port: its end-session endpoint cannot be known.
UNREACHABLE = "https://127.0.0.1:9/realm"


@pytest.mark.parametrize(("fields", "location"), [
    ([("next", "/goodbye")], "http://localhost/goodbye"),
    ([("next", "/goodbye"), ("next", "/elsewhere")], "http://localhost/"),
    ([], "http://localhost/"),
    ([("next", "https://evil.example/")], "http://localhost/"),
], ids=["next", "next-twice-goes-home", "no-next", "next-off-site"])
def test_sign_out_while_the_provider_is_unreachable_still_signs_out_and_goes_to_next(fields, location):
    app = make_testapp(UNREACHABLE)
    out = app.post("/auth/logout", fields, headers=SAME_ORIGIN, status=303)
    assert out.location == location and "sid" in app.cookies  # a new, empty session
