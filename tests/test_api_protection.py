"""API prefixes accept one valid bearer token and answer everything else as RFC 6750 says.

Valid tokens are really signed by the devprovider: a user's, from a sign-in of the web client,
and applications' own, from msal's client credentials. Defective tokens are signed by the
misbehaving provider, against whose issuer a second API is configured. Every answer's status,
``WWW-Authenticate`` header and JSON body are asserted; no answer is a redirect, and no session
is ever read or written (the APIs here have no session middleware at all: touching one would be
a 500).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

import pytest
from beaker.middleware import SessionMiddleware
from hypothesis import given, settings
from hypothesis import strategies as st
from support.api import (
    APP_WRITE,
    TODO_API,
    EntraOffline,
    access_claims,
    api_echo_app,
    app_token,
    bearer,
    make_api,
    rogue_api,
    user_token,
)
from support.apps import TODO_READ, TODO_WRITE, make_testapp
from support.misbehaving import ACCESS_TOKEN_AUDIENCE, UNKNOWN_KID, MisbehavingProvider
from webtest import TestApp

from devprovider import DevProvider
from msal_wsgi import ConfigurationError, MsalMiddleware, Protect, ProtectApi, Settings, events
from msal_wsgi.calling import bearer_params

REALM = f'realm="{TODO_API}"'


@pytest.fixture(scope="module")
def tokens(devprovider: DevProvider) -> dict[str, str]:
    """Real tokens of the devprovider, once per module: they live an hour (ten minutes for the daemons')."""
    return {
        "read": user_token(devprovider, "alice"),
        "write": user_token(devprovider, "bob", TODO_WRITE),
        "other-api": user_token(devprovider, "carol", "api://r1/access"),
        "app": app_token(devprovider, "todo-daemon"),
        "app-norole": app_token(devprovider, "todo-daemon-norole"),
    }


@pytest.fixture
def api(provider: DevProvider) -> TestApp:
    return make_api(provider.issuer)


def challenge(answer: Any) -> dict[str, str]:
    """The parameters of the answer's Bearer challenge."""
    header = answer.headers["WWW-Authenticate"]
    assert header.startswith("Bearer "), header
    return bearer_params(header)


def assert_refused(answer: Any, status: int, error: str | None, reason_words: str = "") -> dict[str, Any]:
    """The answer is ``status`` with that RFC 6750 error in the header and the JSON, and no redirect or cookie."""
    assert answer.status_int == status, answer
    assert answer.content_type == "application/json" and "Location" not in answer.headers
    assert "Set-Cookie" not in answer.headers and answer.headers["Cache-Control"] == "no-store"
    params = challenge(answer)
    assert params["realm"] in (TODO_API, ACCESS_TOKEN_AUDIENCE, "todo-api")
    body = dict(answer.json)
    if error is None:  # RFC 6750 §3.1: no error code when the request had no token
        assert set(params) == {"realm"}, params
        assert body["error"] == "missing_token"
    else:
        assert params["error"] == error and body["error"] == error
        assert params["error_description"] == body["error_description"]
    assert reason_words.lower() in body["error_description"].lower(), body
    return body


# -- valid tokens, really signed by the devprovider ----------------------------------------------------

def test_a_users_read_token_reads(api, tokens):
    answer = api.get("/api/todolist", headers=bearer(tokens["read"]))
    assert answer.status_int == 200 and "WWW-Authenticate" not in answer.headers
    body = answer.json
    assert body["caller"] == {"id": "alice", "app_id": "todo-web", "app_only": False,
                              "scopes": ["ToDoList.Read"], "roles": [], "tenant": None}
    assert body["user"] == {"id": "alice", "username": "alice"} and body["remote_user"] == "alice"
    assert body["acquire_token"] is False  # no credential: no on-behalf-of
    assert "Set-Cookie" not in answer.headers


def test_a_users_write_token_writes_and_reads(api, tokens):
    assert api.post("/api/todolist", headers=bearer(tokens["write"])).json["caller"]["scopes"] == [
        "ToDoList.ReadWrite"]
    assert api.get("/api/todolist/7", headers=bearer(tokens["write"])).status_int == 200


def test_the_scheme_is_case_insensitive_and_spaces_before_the_token_are_allowed(api, tokens):
    assert api.get("/api/todolist", headers={"Authorization": "bEaReR   " + tokens["read"]}).status_int == 200


def test_a_read_token_on_post_is_403_insufficient_scope_naming_the_scope(api, tokens, caplog):
    with caplog.at_level(logging.INFO, logger="msal_wsgi"):
        answer = api.post("/api/todolist", headers=bearer(tokens["read"]), status=403)
    body = assert_refused(answer, 403, "insufficient_scope", "none of the scopes")
    assert challenge(answer)["scope"] == body["scope"] == TODO_WRITE
    assert "API request to /api/todolist refused (403 insufficient_scope): insufficient_scope" in caplog.text


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_an_app_only_token_with_the_role_is_served_without_a_user(api, tokens, method):
    body = getattr(api, method)("/api/todolist", headers=bearer(tokens["app"])).json
    assert body["caller"] == {"id": "todo-daemon", "app_id": "todo-daemon", "app_only": True, "scopes": [],
                              "roles": [APP_WRITE], "tenant": None}
    assert body["user"] is None and body["remote_user"] is None  # an application is no user


@pytest.mark.parametrize("method", ["get", "post"])
def test_an_app_only_token_without_the_role_is_403_naming_the_roles(api, tokens, method):
    answer = getattr(api, method)("/api/todolist", headers=bearer(tokens["app-norole"]), status=403)
    body = assert_refused(answer, 403, "insufficient_scope", "none of the app roles")
    assert APP_WRITE in body["roles"] and "scope" not in challenge(answer)


def test_a_token_for_another_api_is_401_invalid_token(api, tokens):
    assert_refused(api.get("/api/todolist", headers=bearer(tokens["other-api"]), status=401), 401,
                   "invalid_token", "another audience")


def test_the_api_client_id_as_audience_accepts_nothing_signed_for_api_todo(provider, tokens):
    api = make_api(provider.issuer, api_audience="todo-api", protect={"/api/todolist": ProtectApi(["ToDoList.Read"])})
    assert_refused(api.get("/api/todolist", headers=bearer(tokens["read"]), status=401), 401, "invalid_token")


# -- requests without a usable Authorization header ----------------------------------------------------

def test_no_authorization_header_is_401_with_a_bare_challenge(api):
    answer = api.get("/api/todolist", status=401)
    assert answer.headers["WWW-Authenticate"] == f"Bearer {REALM}"
    assert_refused(answer, 401, None, "Authorization: Bearer")


def test_a_browser_navigation_without_a_token_gets_the_same_401_never_a_redirect(api):
    answer = api.get("/api/todolist", headers={"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}, status=401)
    assert_refused(answer, 401, None)


def test_the_basic_scheme_is_401_with_a_bare_bearer_challenge(api):
    basic = base64.b64encode(b"todo-web:todo-web-secret").decode()
    answer = api.get("/api/todolist", headers=bearer(basic, "Basic"), status=401)
    assert answer.headers["WWW-Authenticate"] == f"Bearer {REALM}"
    assert_refused(answer, 401, None, "Bearer access tokens")


def test_two_authorization_headers_are_400_invalid_request(api, tokens):
    # A WSGI server joins repeated headers with a comma (gunicorn: tests/test_todo_api_service.py).
    joined = f"Bearer {tokens['read']},Bearer {tokens['write']}"
    answer = api.get("/api/todolist", extra_environ={"HTTP_AUTHORIZATION": joined}, status=400)
    assert_refused(answer, 400, "invalid_request", "more than one")


@pytest.mark.parametrize("value", ["Bearer", "Bearer ", "Bearer a b", "Bearer a\tb", "Bearer ab=cd", "Bearer é"],
                         ids=["no-token", "empty-token", "two-words", "tab", "padding-inside", "not-ascii"])
def test_a_header_that_is_not_bearer_token68_is_400_invalid_request(api, value):
    answer = api.get("/api/todolist", extra_environ={"HTTP_AUTHORIZATION": value}, status=400)
    assert_refused(answer, 400, "invalid_request", "Bearer <token>")


def test_eight_kilobytes_of_garbage_are_refused_without_trying_to_parse_them(api):
    printable = "".join(chr(33 + (n * 7919) % 94) for n in range(8192))
    answer = api.get("/api/todolist", extra_environ={"HTTP_AUTHORIZATION": "Bearer " + printable.replace(",", ".")},
                     status=400)
    assert_refused(answer, 400, "invalid_request")
    base64ish = base64.urlsafe_b64encode(bytes(range(256)) * 24).decode()[:8192]
    assert_refused(api.get("/api/todolist", headers=bearer(base64ish), status=401), 401, "invalid_token",
                   "not a signed JWT")


def test_a_token_over_the_size_bound_is_401_before_any_parsing(api):
    answer = api.get("/api/todolist", headers=bearer("a" * (16 * 1024 + 1)), status=401)
    assert_refused(answer, 401, "invalid_token", "longer than")


def test_a_token_in_the_query_string_is_400_even_with_a_header(api, tokens):
    for path in (f"/api/todolist?access_token={tokens['read']}", f"/api/todolist?x=1&access_token={tokens['read']}"):
        answer = api.get(path, headers=bearer(tokens["read"]), status=400)
        assert_refused(answer, 400, "invalid_request", "not in the URL")


def test_a_jwe_is_401_invalid_token(api):
    header = base64.urlsafe_b64encode(json.dumps({"alg": "RSA-OAEP", "enc": "A256GCM"}).encode()).rstrip(b"=")
    jwe = f'{header.decode()}.a2V5.aXY.Y2lwaGVydGV4dA.dGFn'
    assert_refused(api.get("/api/todolist", headers=bearer(jwe), status=401), 401, "invalid_token", "encrypted")


# -- defective tokens, signed by the misbehaving provider ------------------------------------------------

NOW = int(time.time())

#: test id -> (claims changes, sign() options, the words of the error_description)
DEFECTS: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "expired": ({"exp": NOW - 3600, "iat": NOW - 7200, "nbf": NOW - 7200}, {}, "expired"),
    "expired-beyond-the-skew": ({"exp": NOW - 61}, {}, "expired"),
    "not-yet-valid": ({"nbf": NOW + 3600}, {}, "not valid yet"),
    "wrong-audience": ({"aud": "api://someone-else"}, {}, "another audience"),
    "wrong-issuer": ({"iss": "https://evil.example/rogue"}, {}, "another issuer"),
    "no-exp": ({"exp": None}, {}, "lacks a required claim"),
    "bad-signature": ({}, {"sign_with": "foreign", "kid": "in-jwks"}, "does not verify"),
    "key-of-another-provider": ({}, {"sign_with": "foreign"}, "does not publish"),
    "alg-none": ({}, {"alg": "none"}, "algorithm"),
    "hs256-keyed-with-the-public-key": ({}, {"alg": "HS256-with-public-key"}, "algorithm"),
    "id-token-typ": ({}, {"headers": {"typ": "logout+jwt"}}, "not an access token"),
    "crit-header": ({}, {"headers": {"crit": ["exp"], "exp": 1}}, "header"),
    "jku-header-ignored-unknown-kid": ({}, {"kid": "unknown", "headers": {"jku": "https://evil.example/jwks"}},
                                       "does not publish"),
}


@pytest.mark.parametrize(("changes", "options", "words"), DEFECTS.values(), ids=DEFECTS.keys())
def test_a_defective_token_is_401_invalid_token(rogue, caplog, changes, options, words):
    api = rogue_api(rogue)
    if options.get("kid") == "in-jwks":  # another key's signature under the kid of the provider's key
        options = {**options, "kid": rogue.public_jwks()["keys"][0]["kid"]}
    token = rogue.sign(access_claims(rogue, **changes), **options)
    with caplog.at_level(logging.INFO, logger="msal_wsgi"):
        answer = api.get("/api/items", headers=bearer(token), status=401)
    assert_refused(answer, 401, "invalid_token", words)
    assert "API request to /api/items refused (401 invalid_token)" in caplog.text
    assert "eyJ" not in caplog.text and token not in answer.text


def test_positive_control_a_correct_token_of_the_misbehaving_provider_is_served(rogue):
    api = rogue_api(rogue)
    body = api.get("/api/items", headers=bearer(rogue.sign(access_claims(rogue)))).json
    assert body["caller"]["scopes"] == ["read", "write"] and body["remote_user"] == "rogue-user"


def test_expiry_and_not_before_allow_clock_skew(rogue):
    api = rogue_api(rogue, clock_skew=60)
    for changes in ({"exp": int(time.time()) - 50}, {"nbf": int(time.time()) + 50}):
        assert api.get("/api/items", headers=bearer(rogue.sign(access_claims(rogue, **changes)))).status_int == 200


def test_an_unknown_kid_fetches_the_jwks_once_more_then_is_401(rogue):
    api = rogue_api(rogue)
    assert api.get("/api/items", headers=bearer(rogue.sign(access_claims(rogue)))).status_int == 200
    assert len(rogue.jwks_requests) == 1
    for _ in range(3):
        unknown = rogue.sign(access_claims(rogue), kid="unknown")
        assert_refused(api.get("/api/items", headers=bearer(unknown), status=401), 401, "invalid_token",
                       "does not publish")
    assert len(rogue.jwks_requests) == 2  # one re-fetch, then at most one a minute
    assert UNKNOWN_KID not in str(rogue.public_jwks())


def test_a_rotated_key_is_fetched_once_and_its_tokens_are_served(rogue):
    api = rogue_api(rogue)
    assert api.get("/api/items", headers=bearer(rogue.sign(access_claims(rogue)))).status_int == 200
    rogue.rotate_keys()
    assert api.get("/api/items", headers=bearer(rogue.sign(access_claims(rogue)))).status_int == 200
    assert len(rogue.jwks_requests) == 2


def test_a_token_without_kid_is_tried_against_each_key_of_its_type(rogue):
    rogue.add_key("RS256")
    api = rogue_api(rogue)
    assert api.get("/api/items", headers=bearer(rogue.sign(access_claims(rogue), kid=None))).status_int == 200


def test_only_algorithms_discovery_announces_are_accepted(rogue):
    rogue.add_key("ES256")
    es256 = rogue.sign(access_claims(rogue), alg="ES256")
    assert_refused(rogue_api(rogue).get("/api/items", headers=bearer(es256), status=401), 401, "invalid_token",
                   "algorithm")
    rogue.configure(discovery_overrides={"id_token_signing_alg_values_supported": ["RS256", "ES256"]})
    assert rogue_api(rogue).get("/api/items", headers=bearer(es256)).status_int == 200


def test_id_tokens_and_access_tokens_share_one_jwks_cache(rogue):
    """A web app that is also an API fetches the provider's keys once for both kinds of token."""
    from support.apps import return_to_app

    middleware = MsalMiddleware(api_echo_app, client_id=rogue.client_id, client_secret=rogue.client_secret,
                                oidc_authority=rogue.issuer, redirect_uri="http://localhost/auth/callback",
                                api_audience=ACCESS_TOKEN_AUDIENCE,
                                protect={"/todos": Protect(read=["api://rogue/read"]), "/api": ProtectApi(["read"])})
    app = TestApp(SessionMiddleware(middleware, {"session.type": "memory", "session.key": "sid"}))
    start = app.get("/todos")
    assert return_to_app(app, rogue.sign_in(start.location)).status_int == 302  # id_token validated
    assert len(rogue.jwks_requests) == 1
    assert app.get("/api/x", headers=bearer(rogue.sign(access_claims(rogue)))).status_int == 200
    assert len(rogue.jwks_requests) == 1


def test_the_session_is_never_read_or_written_on_an_api_prefix(rogue):
    middleware = MsalMiddleware(api_echo_app, client_id=rogue.client_id, client_secret=rogue.client_secret,
                                oidc_authority=rogue.issuer, redirect_uri="http://localhost/auth/callback",
                                api_audience=ACCESS_TOKEN_AUDIENCE, protect={"/api": ProtectApi(["read"])})
    app = TestApp(SessionMiddleware(middleware, {"session.type": "memory", "session.key": "sid"}))
    served = app.get("/api/x", headers=bearer(rogue.sign(access_claims(rogue))))
    refused = app.get("/api/x", status=401)
    for answer in (served, refused):
        assert "Set-Cookie" not in answer.headers
    assert served.json["session"] is False  # Beaker's lazy session was never loaded


# -- the cache of validated tokens ---------------------------------------------------------------------

def test_a_validated_token_is_remembered_until_it_expires(rogue):
    seen: list[tuple[str, dict[str, Any]]] = []
    api = rogue_api(rogue, clock_skew=0, on_event=lambda name, data: seen.append((name, dict(data))))
    expires = int(time.time()) + 2
    token = rogue.sign(access_claims(rogue, exp=expires))
    for _ in range(3):
        assert api.get("/api/items", headers=bearer(token)).status_int == 200
    accepted = [data["cached"] for name, data in seen if name == events.API_TOKEN_ACCEPTED]
    assert accepted == [False, True, True]
    time.sleep(max(0.0, expires - time.time()) + 0.1)
    assert_refused(api.get("/api/items", headers=bearer(token), status=401), 401, "invalid_token", "expired")


def test_api_token_cache_zero_validates_every_request(rogue):
    seen: list[bool] = []
    api = rogue_api(rogue, api_token_cache=0,
                    on_event=lambda name, data: seen.append(data["cached"]) if name == events.API_TOKEN_ACCEPTED
                    else None)
    token = rogue.sign(access_claims(rogue))
    for _ in range(2):
        api.get("/api/items", headers=bearer(token))
    assert seen == [False, False]


def test_the_cache_is_bounded_and_a_remembered_token_still_needs_the_methods_scope(rogue):
    cached: list[bool] = []
    api = rogue_api(rogue, api_token_cache=2, on_event=lambda name, data: cached.append(data["cached"])
                    if name == events.API_TOKEN_ACCEPTED else None)
    read_only = rogue.sign(access_claims(rogue, scp="read"))
    assert api.get("/api/items", headers=bearer(read_only)).status_int == 200
    assert_refused(api.post("/api/items", headers=bearer(read_only), status=403), 403, "insufficient_scope")
    others = [rogue.sign(access_claims(rogue, jti=str(n))) for n in range(2)]
    for token in others:
        assert api.get("/api/items", headers=bearer(token)).status_int == 200
    assert api.get("/api/items", headers=bearer(others[-1])).status_int == 200  # still there
    assert api.get("/api/items", headers=bearer(read_only)).status_int == 200  # pushed out by the other two
    assert cached == [False, False, False, True, False]


# -- the provider failing, Entra tenants -------------------------------------------------------------

def test_keys_that_cannot_be_fetched_are_a_503_json_with_retry_after_never_a_page(rogue, caplog):
    rogue.configure(discovery_overrides={"jwks_uri": "https://127.0.0.1:9/jwks"})  # nothing listens on port 9
    api = rogue_api(rogue)
    with caplog.at_level(logging.ERROR, logger="msal_wsgi"):
        answer = api.get("/api/items", headers={**bearer(rogue.sign(access_claims(rogue))), "Accept": "text/html"},
                         status=503)
    assert answer.json["error"] == "temporarily_unavailable" and answer.headers["Retry-After"] == "30"
    assert "identity provider unavailable" in caplog.text


def test_a_provider_that_announces_only_hmac_is_a_503_without_retry_after(rogue):
    rogue.configure(discovery_overrides={"id_token_signing_alg_values_supported": ["HS256"]})
    answer = rogue_api(rogue).get("/api/items", headers=bearer(rogue.sign(access_claims(rogue))), status=503)
    assert answer.json["error"] == "server_error" and "Retry-After" not in answer.headers


# -- configuration --------------------------------------------------------------------------------------

BASE = {"client_id": "todo-api", "oidc_authority": "https://id.example/realm"}


def test_an_api_only_app_needs_no_redirect_uri_and_no_credential():
    settings = Settings(**BASE, api_audience="api://todo", protect={"/api": ProtectApi(["r"])})
    assert settings.api_only and settings.client_credential is None and settings.callback_path is None


def test_an_api_only_app_serves_no_sign_in_endpoints(provider):
    api = make_api(provider.issuer)
    for path in ("/auth/login", "/auth/logout", "/auth/callback", "/"):
        assert api.get(path).json["path"] == path  # passed through to the app


@pytest.mark.parametrize(("options", "named"), [
    ({"protect": {"/api": ProtectApi(["r"]), "/todos": Protect()}, "api_audience": "api://todo",
      "client_secret": "s"}, "redirect_uri"),
    ({"protect": {"/api": ProtectApi(["r"])}}, "api_audience"),
    ({"protect": {"/api": ProtectApi(["r"])}, "api_audience": "api://todo",
      "redirect_uri": "https://app.example/auth/callback"}, "client_secret"),
    ({"protect": {"/api": ProtectApi(["api://other/r"])}, "api_audience": "api://todo"}, "protect"),
    ({"protect": {"/api": ProtectApi(["r"])}, "api_audience": 'api://"todo'}, "api_audience"),
    ({"protect": {"/api": ProtectApi(["r"])}, "api_audience": "api://todo", "api_token_cache": -1},
     "api_token_cache"),
], ids=["web-prefix-needs-redirect-uri", "audience-required", "sign-in-needs-a-credential",
        "full-scope-of-another-api", "audience-with-a-quote", "negative-cache"])
def test_configuration_errors_name_the_setting(options, named):
    with pytest.raises(ConfigurationError) as raised:
        Settings(**BASE, **options)
    assert raised.value.setting == named


def test_a_rule_without_scopes_or_roles_is_refused():
    with pytest.raises(ConfigurationError, match="any application of the tenant"):
        ProtectApi()


@pytest.mark.parametrize(("text", "rule"), [
    ("/api = api: r1 r2 | w", ProtectApi(["r1", "r2"], ["w"])),
    ("/api = api: r roles: A B | B", ProtectApi(["r"], app_read=["A", "B"], app_write=["B"])),
    ("/api = api: roles: A", ProtectApi(app_read=["A"])),
    ("/api = api: api://todo/ToDoList.Read", ProtectApi(["api://todo/ToDoList.Read"])),
], ids=["scopes", "scopes-and-roles", "roles-only", "full-scope"])
def test_the_text_form_of_an_api_rule(text, rule):
    env = {"MSAL_CLIENT_ID": "todo-api", "MSAL_OIDC_AUTHORITY": "https://id.example/realm",
           "MSAL_API_AUDIENCE": "api://todo", "MSAL_PROTECT": text}
    assert dict(Settings.from_env(env).protect) == {"/api": rule}


@pytest.mark.parametrize("text", ["/api = r roles: A", "/api = api: r roles: A roles: B", "/api = api: a | b | c",
                                  "/api = api: r api: s", "/api = api: roles: A | B | C"])
def test_a_malformed_api_rule_names_the_variable(text):
    env = {"MSAL_CLIENT_ID": "todo-api", "MSAL_OIDC_AUTHORITY": "https://id.example/realm",
           "MSAL_API_AUDIENCE": "api://todo", "MSAL_PROTECT": text}
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env(env)
    assert raised.value.setting == "MSAL_PROTECT"


def test_check_describes_an_api_only_configuration(provider):
    import io

    from msal_wsgi.check import main

    out = io.StringIO()
    env = {"MSAL_CLIENT_ID": "todo-api", "MSAL_OIDC_AUTHORITY": provider.issuer, "MSAL_API_AUDIENCE": TODO_API,
           "MSAL_PROTECT": f"/api/todolist = api: {TODO_READ} {TODO_WRITE} | {TODO_WRITE} roles: A | B"}
    assert main(["check"], env=env, out=out) == 0, out.getvalue()
    report = out.getvalue()
    assert "none: an API-only app" in report and f"api_audience: {TODO_API}" in report
    assert f"/api/todolist  API: GET/HEAD/OPTIONS: {TODO_READ} {TODO_WRITE}; other methods: {TODO_WRITE}; " \
           "app-only: A | B" in report


def test_a_web_app_may_have_api_prefixes_beside_its_pages(provider, tokens):
    web = make_testapp(provider, api_audience=TODO_API, protect={
        "/todos": Protect(read=[TODO_READ], write=[TODO_WRITE]), "/api/todolist": ProtectApi([TODO_READ])})
    assert web.get("/todos").status_int == 302  # pages sign in
    answer = web.get("/api/todolist", headers=bearer(tokens["read"]))
    assert answer.json["user"]["username"] == "alice" and "Set-Cookie" not in answer.headers
    assert_refused(web.get("/api/todolist", status=401), 401, None)  # APIs never do
    assert web.get("/auth/login?next=/api/todolist").location.startswith(provider.issuer + "/auth?")


# -- Entra: tenants, multi-tenant issuers, v1 tokens (offline) -----------------------------------------

TENANT = "aaaabbbb-0000-cccc-1111-dddd2222eeee"
OTHER_TENANT = "99998888-7777-6666-5555-444433332222"


def entra_answer(rogue: MisbehavingProvider, tenant: str, claims: dict[str, Any], **settings: Any) -> Any:
    """The answer of an API at an Entra ``tenant`` authority (offline: the ``http_session`` setting's requests go to
    :class:`EntraOffline`) to a GET with a token of ``claims``."""
    entra = EntraOffline(rogue, tenant)
    api = TestApp(MsalMiddleware(api_echo_app, client_id="todo-api", authority=entra.authority,
                                 api_audience="api://todo", protect={"/api": ProtectApi(["ToDoList.Read"])},
                                 http_session=entra.session(), **settings))
    now = int(time.time())
    token = rogue.sign({"aud": "api://todo", "sub": "s", "oid": "o", "scp": "ToDoList.Read", "iat": now,
                        "exp": now + 600, **claims})
    return api.get("/api", headers=bearer(token), expect_errors=True)


def v2(tenant: str) -> str:
    return f"https://login.microsoftonline.com/{tenant}/v2.0"


def v1(tenant: str) -> str:
    return f"https://sts.windows.net/{tenant}/"


@pytest.mark.parametrize(("tenant", "claims", "settings"), [
    ("organizations", {"tid": TENANT, "iss": v2(TENANT)}, {}),
    ("organizations", {"tid": TENANT, "iss": v1(TENANT)}, {}),
    ("organizations", {"tid": TENANT, "iss": v2(TENANT)}, {"allowed_tenants": (TENANT,)}),
    (TENANT, {"tid": TENANT, "iss": v2(TENANT)}, {}),
    (TENANT, {"tid": TENANT, "iss": v1(TENANT)}, {}),
], ids=["template-filled-with-tid", "v1-issuer-of-the-tid", "tenant-allowed", "single-tenant", "single-tenant-v1"])
def test_entra_issuers_are_accepted(rogue, tenant, claims, settings):
    answer = entra_answer(rogue, tenant, claims, **settings)
    assert answer.status_int == 200 and answer.json["caller"]["tenant"] == TENANT


@pytest.mark.parametrize(("tenant", "claims", "settings", "words"), [
    ("organizations", {"tid": OTHER_TENANT, "iss": v2(OTHER_TENANT)}, {"allowed_tenants": (TENANT,)}, "tenant"),
    ("organizations", {"tid": TENANT, "iss": v2(OTHER_TENANT)}, {}, "another issuer"),
    ("organizations", {"tid": TENANT, "iss": v1(OTHER_TENANT)}, {}, "another issuer"),
    ("organizations", {"iss": v2(TENANT)}, {}, "lacks a required claim"),
    (TENANT, {"tid": OTHER_TENANT, "iss": v2(OTHER_TENANT)}, {}, "another issuer"),
    (TENANT, {"tid": OTHER_TENANT, "iss": v1(OTHER_TENANT)}, {}, "another issuer"),
], ids=["another-tenant-than-allowed", "issuer-of-another-tenant-than-tid", "v1-issuer-of-another-tenant",
        "no-tid", "single-tenant-refuses-another", "single-tenant-refuses-another-v1"])
def test_tokens_of_other_entra_tenants_are_401_invalid_token(rogue, tenant, claims, settings, words):
    answer = entra_answer(rogue, tenant, claims, **settings)
    assert_refused(answer, 401, "invalid_token", words)


def test_a_cors_preflight_carries_no_token_and_is_refused_like_any_request(api):
    answer = api.options("/api/todolist", headers={"Origin": "https://spa.example",
                                                   "Access-Control-Request-Method": "POST"}, status=401)
    assert_refused(answer, 401, None)  # CORS middleware belongs outside msal_wsgi (README)


# -- arbitrary headers ------------------------------------------------------------------------------

HEADER_VALUES = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60),
    st.builds(lambda scheme, rest: f"{scheme} {rest}", st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "DPoP"]),
              st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)),
    st.builds(lambda parts: "Bearer " + ".".join(parts),
              st.lists(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=",
                               max_size=40), min_size=1, max_size=6)),
)


@settings(max_examples=300, deadline=None)
@given(value=HEADER_VALUES)
def test_any_authorization_header_is_a_token68_or_a_400_or_401(value):
    from msal_wsgi.bearer import Refused, bearer_token

    try:
        token = bearer_token({"HTTP_AUTHORIZATION": value})
    except Refused as refused:
        assert (refused.status, refused.error) in ((400, "invalid_request"), (401, None), (401, "invalid_token"))
        return
    assert value.lower().startswith("bearer ") and value.endswith(token) and " " not in token and "," not in token


@pytest.fixture(scope="module")
def module_api(devprovider: DevProvider) -> TestApp:
    return make_api(devprovider.issuer)


@settings(max_examples=150, deadline=None)
@given(value=HEADER_VALUES)
def test_any_authorization_header_is_answered_never_a_500(module_api, value):
    answer = module_api.get("/api/todolist", extra_environ={"HTTP_AUTHORIZATION": value}, expect_errors=True)
    assert answer.status_int in (400, 401), answer
    assert answer.headers["WWW-Authenticate"].startswith(f"Bearer {REALM}")
