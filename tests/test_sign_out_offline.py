"""Sign-out without the devprovider: offline (an issuer nothing answers at), or signed in at the misbehaving
provider of our own on its own test CA (``local_rogue``, in-process), quick enough for the mutation runs.

A GET shows the page with the button; a POST signs out only from this app's pages (the session's
token, ``Sec-Fetch-Site: same-origin``, or an ``Origin`` of this app), else a 403 page offers the
button again; a signed-out browser goes (303) to the provider's end-session endpoint.
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlencode

import pytest
from support.apps import JSON, SAME_ORIGIN, Told, make_testapp, return_to_app
from support.misbehaving import MisbehavingProvider
from support.sessions import SESSION_USER, msal_cache, session_of
from support.urls import query_of
from webtest import TestRequest

from devprovider import forms
from msal_wsgi import Protect

#: An issuer on a closed loopback port: its end-session endpoint cannot be known.
UNREACHABLE = "https://127.0.0.1:9/realm"
READ = "api://rogue/read"
FORM = "application/x-www-form-urlencoded"
REFUSED = "so you are still signed in."  # the refusal page says why first, ending so


def signed_in(rogue: MisbehavingProvider, **overrides: Any) -> Any:
    """A browser signed in at ``rogue`` (the echo app, /todos protected)."""
    app = make_testapp(rogue.issuer, **{"client_id": rogue.client_id, "client_credential": rogue.client_secret,
                                        "protect": {"/todos": Protect(read=[READ])}, "response_mode": "query",
                                        **overrides})
    back = return_to_app(app, rogue.sign_in(app.get("/todos").location))
    assert back.status_int == 302, back
    return app


def token_of(app: Any) -> str:
    """The sign-out token of the browser's session (the page's ``csrf`` field)."""
    return str(session_of(app)[SESSION_USER]["csrf"])


def still_signed_in(app: Any) -> bool:
    return app.get("/todos", headers=JSON, status="*").status_int == 200


# -- the page ---------------------------------------------------------------------------------------

def test_the_page_of_a_signed_out_browser_offers_to_sign_out_of_the_provider():
    app = make_testapp(UNREACHABLE)
    page = app.get("/auth/logout")
    assert page.status_int == 200 and page.headers["Cache-Control"] == "no-store"
    assert "You are not signed in here. Sign out of your identity provider too?" in page.text
    assert REFUSED not in page.text
    (form,) = forms(page.text)
    assert (form.method, form.action, form.fields) == ("post", "/auth/logout", {})


@pytest.mark.parametrize(("next_url", "field"), [("/bye", "/bye"), ("https://evil.example/", "/")],
                         ids=["next", "next-off-site-goes-home"])
def test_the_page_carries_a_safe_next_on_to_the_post(next_url, field):
    (form,) = forms(make_testapp(UNREACHABLE).get("/auth/logout", {"next": next_url}).text)
    assert form.fields == {"next": field}


def test_the_page_posts_to_itself_and_links_home_under_the_mount_point():
    app = make_testapp(UNREACHABLE, redirect_uri="http://localhost/app/auth/callback")
    page = app.get("/app/auth/logout", extra_environ={"SCRIPT_NAME": "/app"})
    (form,) = forms(page.text)
    assert form.action == "/app/auth/logout"
    assert page.html.find("a", string="Back to the home page")["href"] == "/app/"


def test_the_page_of_a_signed_in_user_carries_the_sessions_token(local_rogue):
    app = signed_in(local_rogue)
    page = app.get("/auth/logout")
    assert page.status_int == 200
    assert "Sign out of this application, and of your identity provider?" in page.text and REFUSED not in page.text
    (form,) = forms(page.text)
    assert form.fields == {"csrf": token_of(app)}
    assert still_signed_in(app)


def test_head_is_the_page_and_other_methods_are_405():
    app = make_testapp(UNREACHABLE)
    assert app.head("/auth/logout").status_int == 200
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        answer = app.request("/auth/logout", method=method, status="*")
        assert (answer.status_int, answer.headers["Allow"]) == (405, "GET, HEAD, POST"), method


# -- which POSTs sign out (offline: the headers alone) ----------------------------------------------

@pytest.mark.parametrize(("headers", "signed_out"), [
    (SAME_ORIGIN, True),
    ({"Sec-Fetch-Site": "same-origin"}, True),
    ({"Origin": "http://localhost"}, True),
    ({"Origin": "HTTP://LOCALHOST"}, True),
    ({"Origin": "http://localhost:80"}, True),
    ({"Origin": "http://localhost:8080"}, False),
    ({"Origin": "https://localhost"}, False),
    ({}, False),
    ({"Sec-Fetch-Site": "cross-site"}, False),
    ({"Sec-Fetch-Site": "same-site", "Origin": "http://localhost"}, False),
    ({"Sec-Fetch-Site": "none"}, False),
    ({"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"}, False),
    ({"Origin": "https://evil.example"}, False),
    ({"Origin": "null"}, False),
], ids=["browser", "fetch-metadata", "origin", "origin-in-capitals", "origin-with-its-default-port",
        "origin-on-another-port", "origin-of-another-scheme", "nothing", "cross-site", "same-site",
        "user-typed", "fetch-metadata-wins-over-origin", "foreign-origin", "opaque-origin"])
def test_only_a_post_from_this_apps_pages_signs_out(headers, signed_out):
    told = Told()
    app = make_testapp(UNREACHABLE, on_event=told)
    answer = app.post("/auth/logout", headers=headers, status="*")
    if signed_out:
        assert (answer.status_int, answer.location) == (303, "http://localhost/")
        assert told.of("sign_out.refused") == [] and len(told.of("sign_out")) == 1
    else:
        assert answer.status_int == 403 and REFUSED in answer.text
        assert "Sign out of this application, and of your identity provider?" in answer.text
        (form,) = forms(answer.text)
        assert form.action == "/auth/logout"
        assert len(told.of("sign_out.refused")) == 1 and told.of("sign_out") == []


@pytest.mark.parametrize("redirect_uri", ["https://app.example:443/auth/callback", "https://APP.example/auth/callback"])
def test_the_origin_a_browser_sends_matches_a_redirect_uri_written_with_its_default_port_or_capitals(redirect_uri):
    # A browser serializes its Origin without the scheme's default port, in lower case (RFC 6454 §6.1).
    app = make_testapp(UNREACHABLE, redirect_uri=redirect_uri)
    answer = app.post("/auth/logout", headers={"Origin": "https://app.example"}, status="*",
                      extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "internal:8000"})
    assert answer.status_int == 303, answer.text[:300]


def test_a_refusal_names_at_most_40_characters_of_the_fetch_metadata():
    told = Told()
    app = make_testapp(UNREACHABLE, on_event=told)
    site = "cross-site-" + "x" * 60
    app.post("/auth/logout", headers={"Sec-Fetch-Site": site}, status=403)
    assert told.of("sign_out.refused") == [{"why": f"Sec-Fetch-Site is {site[:40]!r}, not same-origin"}]


# -- the session's token (signed in at the local provider) ----------------------------------------

def _post(app: Any, body: str, content_type: str = FORM, **headers: str) -> Any:
    return app.post("/auth/logout", body, content_type=content_type, headers=headers, status="*")


def test_the_sessions_token_signs_out_without_any_header(local_rogue):
    app = signed_in(local_rogue)
    assert _post(app, urlencode({"csrf": token_of(app)})).status_int == 303
    assert not still_signed_in(app)


def test_the_refusal_page_offers_the_button_with_the_token(local_rogue):
    app = signed_in(local_rogue)
    answer = _post(app, "", **{"Sec-Fetch-Site": "cross-site"})
    assert answer.status_int == 403 and REFUSED in answer.text
    (form,) = forms(answer.text)
    assert form.fields == {"csrf": token_of(app)}
    assert still_signed_in(app)


def test_the_token_of_another_session_does_not_sign_out(local_rogue):
    alice, bob = signed_in(local_rogue), signed_in(local_rogue)
    assert _post(alice, urlencode({"csrf": token_of(bob)})).status_int == 403
    assert still_signed_in(alice)


#: The longest sign-out form read: 4096 bytes.
FORM_LIMIT = 4096


@pytest.mark.parametrize(("length", "signed_out"), [(FORM_LIMIT, True), (FORM_LIMIT + 1, False)],
                         ids=["at-the-limit", "one-byte-over"])
def test_a_sign_out_form_is_read_up_to_4096_bytes(local_rogue, length, signed_out):
    app = signed_in(local_rogue)
    body = urlencode({"csrf": token_of(app)}) + "&pad="
    body += "p" * (length - len(body))
    assert len(body) == length
    assert (_post(app, body).status_int == 303) is signed_out
    assert still_signed_in(app) is not signed_out


@pytest.mark.parametrize(("body", "content_type"), [
    ("csrf={token}", "text/plain"),
    ("csrf={token}", "application/octet-stream"),
    ("csrf={token}&csrf=", FORM),
    ("csrf={token}&csrf={token}", FORM),
    ("csrf={token}&x=%ff", FORM),
], ids=["text", "octet-stream", "token-and-an-empty-one", "token-twice", "not-utf8"])
def test_a_token_in_a_body_that_is_not_one_small_form_does_not_count(local_rogue, body, content_type):
    app = signed_in(local_rogue)
    assert _post(app, body.format(token=token_of(app)), content_type).status_int == 403
    assert still_signed_in(app)


def test_a_token_in_a_body_of_unknown_length_does_not_count(local_rogue):
    app = signed_in(local_rogue)
    body = urlencode({"csrf": token_of(app)}).encode()
    request = TestRequest.blank("/auth/logout", method="POST", body=body, content_type=FORM)
    del request.environ["CONTENT_LENGTH"]  # Transfer-Encoding: chunked, as a server hands it on
    request.environ["wsgi.input"] = io.BytesIO(body)
    request.environ["wsgi.input_terminated"] = True
    assert app.do_request(request, status="*").status_int == 403
    assert still_signed_in(app)


# -- where a sign-out goes: the provider's end-session endpoint -----------------------------------

def test_sign_out_goes_to_the_end_session_endpoint_with_the_id_token_as_hint(local_rogue):
    local_rogue.configure(user_claims={"preferred_username": "rogue-user", "login_hint": "O.opaque-hint"})
    app = signed_in(local_rogue)
    id_token = next(iter(msal_cache(session_of(app))["IdToken"].values()))["secret"]
    out = app.post("/auth/logout", headers=SAME_ORIGIN, status=303)
    endpoint, _, _ = out.location.partition("?")
    assert endpoint == local_rogue.issuer + "/logout"
    assert query_of(out.location) == {"post_logout_redirect_uri": "http://localhost/", "client_id": "rp-client",
                                      "id_token_hint": id_token, "logout_hint": "O.opaque-hint"}
    assert not still_signed_in(app)


def test_sign_out_goes_to_the_configured_post_logout_redirect_uri(local_rogue):
    app = signed_in(local_rogue, post_logout_redirect_uri="http://localhost/bye")
    out = app.post("/auth/logout", headers=SAME_ORIGIN, status=303)
    assert query_of(out.location)["post_logout_redirect_uri"] == "http://localhost/bye"
    assert "logout_hint" not in query_of(out.location)  # the id token has no login_hint claim


def test_sign_out_while_signed_out_sends_no_hints(local_rogue):
    app = make_testapp(local_rogue.issuer, client_id=local_rogue.client_id,
                       client_credential=local_rogue.client_secret)
    out = app.post("/auth/logout", headers=SAME_ORIGIN, status=303)
    assert query_of(out.location) == {"post_logout_redirect_uri": "http://localhost/", "client_id": "rp-client"}


def test_an_end_session_endpoint_with_a_query_gets_the_parameters_after_it(local_rogue):
    local_rogue.configure(discovery_overrides={"end_session_endpoint": local_rogue.issuer + "/logout?p=b2c_1"})
    app = make_testapp(local_rogue.issuer, client_id=local_rogue.client_id,
                       client_credential=local_rogue.client_secret)
    out = app.post("/auth/logout", headers=SAME_ORIGIN, status=303)
    assert out.location.startswith(local_rogue.issuer + "/logout?p=b2c_1&post_logout_redirect_uri=")
    assert query_of(out.location) == {"p": "b2c_1", "post_logout_redirect_uri": "http://localhost/",
                                      "client_id": "rp-client"}
