"""A browser visiting a protected page is signed in and comes back with a token; an API caller gets a 401.

Also: several tabs signing in at once, the sign-in endpoint, and the app asking
for a new sign-in (``start_sign_in``).
"""

from __future__ import annotations

import pytest
from support.apps import (
    JSON,
    OFFLINE_ISSUER,
    TODO_READ,
    TODO_WRITE,
    claims_of,
    complete_sign_in,
    make_testapp,
    sign_in,
)
from support.sessions import SESSION_FLOWS, session_of
from support.urls import query_of

from msal_wsgi import MIDDLEWARE, InteractionRequired

pytestmark = pytest.mark.both_provider_modes  # Entra-like and stock provider (issue 10)


def test_full_sign_in_hands_token_and_user_to_the_app(provider):
    app = make_testapp(provider)
    page = sign_in(app, provider, "/todos?filter=open", login="alice")
    assert page.request.path_qs == "/todos?filter=open"
    body = page.json
    assert body["remote_user"] == "alice"
    assert body["user"]["name"] == "alice"
    claims = claims_of(body["token"]["value"])
    assert claims["aud"] == "api://todo" and TODO_READ in claims["scope"].split()
    assert body["token"]["scopes"] == [TODO_READ]


@pytest.mark.entra_only  # one refresh token for every scope; stock: test_incremental_consent.py
def test_unsafe_method_gets_the_read_write_token(provider):
    app = make_testapp(provider)
    sign_in(app, provider)
    body = app.post("/todos/1", {"x": "1"}).json
    assert body["token"]["scopes"] == [TODO_WRITE]
    assert TODO_WRITE in claims_of(body["token"]["value"])["scope"].split()


def test_query_response_mode_signs_in_too(provider):
    app = make_testapp(provider, response_mode="query")
    assert sign_in(app, provider).json["remote_user"] == "alice"


def test_public_path_passes_through_without_touching_the_session():
    app = make_testapp(OFFLINE_ISSUER)
    response = app.get("/public")
    assert response.json["user"] is None and "Set-Cookie" not in response.headers


def test_sign_in_only_route_needs_no_token(provider):
    app = make_testapp(provider)
    body = sign_in(app, provider, "/profile", login="bob").json
    assert body["user"]["username"] == "bob" and body["token"] is None


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Mode": "cors"},
    {"Sec-Fetch-Mode": "no-cors"},
    {"X-Requested-With": "XMLHttpRequest"},
    JSON,
    {"Accept": "application/problem+json"},
], ids=["fetch-cors", "fetch-no-cors", "xhr", "accept-json", "accept-problem-json"])
def test_api_call_gets_401_json_and_creates_no_flow(headers):
    app = make_testapp(OFFLINE_ISSUER)  # the answer needs no provider
    answer = app.get("/todos", headers=headers, status=401)
    assert answer.json == {"error": "interaction_required", "error_description": "Sign-in required: not signed in",
                           "login_url": "/auth/login?next=%2Ftodos"}
    assert answer.headers["WWW-Authenticate"].startswith('Session realm="msal_wsgi"')
    assert "sid" not in app.cookies  # no session was written: no pending flow


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Mode": "navigate", "Accept": "text/html,application/xhtml+xml"},
    {"Accept": "text/html,application/json;q=0.9"},
    {},
], ids=["navigate", "html-and-json", "no-hints"])
def test_browser_navigation_is_sent_to_sign_in(provider, headers):
    app = make_testapp(provider)
    answer = app.get("/todos", headers=headers, status=302)
    assert answer.location.startswith(provider.issuer + "/auth?")
    assert len(session_of(app)[SESSION_FLOWS]) == 1


def test_two_tabs_signing_in_at_once_both_land_where_they_started(provider):
    app = make_testapp(provider)
    tab_a = app.get("/todos/a")
    tab_b = app.get("/todos/b?x=1")
    back_b = complete_sign_in(app, provider, tab_b)
    back_a = complete_sign_in(app, provider, tab_a)
    assert back_b.location.endswith("/todos/b?x=1")
    assert back_a.location.endswith("/todos/a")
    assert back_a.follow().json["remote_user"] == "alice"


def test_sign_in_endpoint_returns_to_next(provider):
    app = make_testapp(provider)
    start = app.get("/auth/login", {"next": "/todos?page=2", "login_hint": "alice"})
    query = query_of(start.location)
    assert query["login_hint"] == "alice"
    assert query["scope"].split()[0] == TODO_READ
    assert query["code_challenge_method"] == "S256" and query["nonce"] and query["state"]
    back = complete_sign_in(app, provider, start)
    assert back.location.endswith("/todos?page=2")


def test_sign_in_endpoint_for_a_public_page_asks_only_for_sign_in(provider):
    app = make_testapp(provider)
    start = app.get("/auth/login", {"next": "/about"})
    assert set(query_of(start.location)["scope"].split()) == {"openid", "profile", "offline_access"}


def _reauthenticating_app(environ, start_response):
    """An app whose API asked for more claims: it hands the challenge to the middleware."""
    return environ[MIDDLEWARE].start_sign_in(environ, claims_challenge='{"access_token":{"acrs":{"values":["c1"]}}}')(
        environ, start_response)


def test_start_sign_in_sends_a_browser_to_sign_in_with_the_claims(provider):
    app = make_testapp(provider, app=_reauthenticating_app)
    sign_in_start = app.get("/todos")  # not signed in yet: the middleware's own challenge
    complete_sign_in(app, provider, sign_in_start)
    again = app.get("/todos?page=2")
    assert again.status_int == 302 and "c1" in query_of(again.location)["claims"]
    back = complete_sign_in(app, provider, again)
    assert back.location.endswith("/todos?page=2")


def test_start_sign_in_gives_an_api_caller_401_not_a_redirect(provider):
    app = make_testapp(provider, app=_reauthenticating_app)
    complete_sign_in(app, provider, app.get("/todos"))
    answer = app.get("/todos", headers={"X-Requested-With": "XMLHttpRequest"}, status=401)
    assert answer.json["error"] == "interaction_required"


# -- decided before the provider is asked: the 401 an API caller gets, and the page for a form that
# cannot be kept. A browser that would go to the provider meets one nothing answers at: 503.

#: An issuer on a closed loopback port: discovery fails at once, without leaving the host.
UNREACHABLE = "https://127.0.0.1:9/realm"
XHR = {"X-Requested-With": "XMLHttpRequest"}


def _login_url(path, method, headers):
    answer = make_testapp(OFFLINE_ISSUER).request(path, method=method, headers=headers, status=401)
    assert answer.json["login_url"] in answer.headers["WWW-Authenticate"]
    return answer.json["login_url"]


@pytest.mark.parametrize(("path", "method", "referer", "login_url"), [
    ("/todos?page=2", "GET", None, "/auth/login?next=%2Ftodos%3Fpage%3D2"),
    ("/todos/1", "POST", None, "/auth/login?next=%2Ftodos%2F1&scope=api%3A%2F%2Ftodo%2FToDoList.ReadWrite"),
    ("/todos/api", "GET", "http://localhost/todos/page?x=1", "/auth/login?next=%2Ftodos%2Fpage%3Fx%3D1"),
    ("/todos/api", "GET", "http://LOCALHOST/todos/page", "/auth/login?next=%2Ftodos%2Fpage"),
    ("/todos/api", "GET", "http://localhost/about",
     "/auth/login?next=%2Fabout&scope=api%3A%2F%2Ftodo%2FToDoList.Read"),
    ("/todos/api", "GET", "http://other.example/todos/page", "/auth/login?next=%2Ftodos%2Fapi"),
    ("/todos/api", "GET", "http://localhost", "/auth/login?next=%2Ftodos%2Fapi"),
    ("/profile", "GET", "http://localhost/todos", "/auth/login?next=%2Ftodos"),
], ids=["next-keeps-the-query", "write-scope-named", "referer-of-this-site-is-next", "referer-host-in-any-case",
        "public-referer-names-the-scope", "referer-of-another-site-ignored", "referer-without-path-ignored",
        "referer-under-a-prefix-reading-more"])
def test_the_login_url_of_an_api_caller_comes_back_to_its_page_with_the_scopes_it_needs(path, method, referer,
                                                                                        login_url):
    headers = {**XHR, **({"Referer": referer} if referer else {})}
    assert _login_url(path, method, headers) == login_url


def test_the_login_url_under_a_mount_point_reads_the_prefix_of_the_app_path():
    app = make_testapp(OFFLINE_ISSUER, redirect_uri="http://localhost/app/auth/callback")
    answer = app.get("/app/todos?x=1", headers=XHR, extra_environ={"SCRIPT_NAME": "/app"}, status=401)
    assert answer.json["login_url"] == "/app/auth/login?next=%2Fapp%2Ftodos%3Fx%3D1"


def test_the_interaction_event_names_the_path_in_200_characters():
    told = []
    app = make_testapp(OFFLINE_ISSUER, on_event=lambda name, data: told.append((name, dict(data))))
    path = "/todos/" + "x" * 300
    answer = app.get(path, headers=XHR, status=401)
    assert answer.json["error_description"] == "Sign-in required: not signed in"
    assert told == [("interaction_required", {"reason": "not signed in", "path": path[:200], "redirect": False})]


def test_a_form_from_another_site_that_needs_a_sign_in_gets_a_page_saying_to_do_it_again():
    app = make_testapp(OFFLINE_ISSUER)
    page = app.post("/todos", {"title": "x"}, headers={"Origin": "https://evil.example"}, status=401)
    assert "it came from another site" in page.text
    assert page.html.find("a", class_="button")["href"] == "/auth/login?next=%2Ftodos&scope=" \
        "api%3A%2F%2Ftodo%2FToDoList.ReadWrite"


def _needs_a_sign_in(environ, start_response):
    """A public page whose app finds it needs the user signed in after all."""
    raise InteractionRequired("the page asked for it")


def test_a_form_posted_to_a_public_page_is_not_kept():
    app = make_testapp(OFFLINE_ISSUER, app=_needs_a_sign_in)
    page = app.post("/about", {"x": "1"}, headers={"Origin": "http://localhost"}, status=401)
    assert "this page is not protected" in page.text


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_a_browser_request_other_than_a_form_post_goes_to_the_provider(method):
    app = make_testapp(UNREACHABLE)
    answer = app.request("/todos", method=method, status=503)  # to the provider, which is not there
    assert answer.headers["Retry-After"] == "30"
