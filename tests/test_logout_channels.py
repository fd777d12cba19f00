"""Logouts the provider starts end the sessions it names, on every server sharing the store.

Back-channel (OpenID Connect Back-Channel Logout 1.0): the dev provider, with a client registered with
the ``backchannel_logout_uri`` of server A (``OP_BACKCHANNEL_LOGOUT``), POSTs a logout token there when
the user signs out at the provider; the next request on server B is asked to sign in. The logout
token's validation is shown with the misbehaving provider, one defect at a time. Front-channel (1.0):
the provider's page frames ``/auth/frontchannel-logout?iss=...&sid=...`` without the session cookie,
as Entra does; oidc-provider 9 has no front-channel logout, so the tests make that request themselves.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from support.apps import JSON, Told, browser_of, make_testapp, return_to_app, sign_out
from support.misbehaving import MisbehavingProvider
from support.servers import Browser, RedisServer, free_port, sample_server
from support.sessions import TEST_SESSION_KEYS, stored_session
from support.urls import query_of
from webtest import TestApp

from devprovider import DevProvider
from msal_wsgi.jose import BACKCHANNEL_LOGOUT_EVENT

SID = "rogue-session-1"
PATH = "/auth/backchannel-logout"
#: Servers behind one URL share the session key as they share the store (the sample would make one each).
SHARED_KEY = {"MSAL_SESSION_KEYS": TEST_SESSION_KEYS[0]}


# -- back-channel, end to end: the dev provider and two servers ---------------------------------

def _provider_calling(devprovider: DevProvider, workdir: Path, port: int) -> DevProvider:
    """A second dev provider (the first one's TLS) whose todo-web calls back-channel logout on ``port``."""
    return DevProvider().start(workdir, tls_of=devprovider,
                               OP_BACKCHANNEL_LOGOUT=f"todo-web=http://127.0.0.1:{port}{PATH}")


def _sign_out_at_the_provider(provider: DevProvider) -> None:
    """The user ends their session at the provider's own end-session page, not through the app."""
    provider.end_session(provider.metadata["end_session_endpoint"])


def _asked_to_sign_in(browser: Browser, url: str, provider: DevProvider) -> bool:
    answer = browser.get(url)
    return answer.is_redirect and answer.headers["location"].startswith(provider.issuer + "/auth?")


def test_signing_out_at_the_provider_ends_the_session_on_every_server_sharing_redis(devprovider, tmp_path):
    port_a = free_port()
    with _provider_calling(devprovider, tmp_path / "op", port_a) as op, RedisServer(tmp_path / "redis") as redis, \
            sample_server(op, tmp_path / "a", port=port_a, SAMPLE_SESSION_URL=redis.url, **SHARED_KEY) as a, \
            sample_server(op, tmp_path / "b", SAMPLE_SESSION_URL=redis.url, **SHARED_KEY,
                          MSAL_REDIRECT_URI=a.url + "/auth/callback") as b:
        browser = Browser(op)
        assert "Signed in as <b>alice</b>" in browser.sign_in(a.url + "/todos").text
        assert "Signed in as <b>alice</b>" in browser.get(b.url + "/todos").text
        with redis.client() as client:
            assert len(client.keys("beaker_cache:*:session")) == 1
            assert len(client.keys("msal_wsgi:*:index:*")) == 2  # the sign-in's sid and sub

        _sign_out_at_the_provider(op)  # the provider POSTs a logout token to A

        assert _asked_to_sign_in(browser, b.url + "/todos", op)  # B: the session is gone from Redis
        with redis.client() as client:
            assert client.keys("beaker_cache:*:session") == [] or all(
                b"msal_wsgi" not in (client.get(key) or b"") for key in client.keys("beaker_cache:*:session"))
        assert "backchannel logout by sid: 1 session(s) ended" in a.log_path.read_text()
        assert f"POST {PATH} 200" in a.access_log_path.read_text().replace("<", "").replace(">", "")


def test_signing_out_at_the_provider_ends_the_session_across_servers_sharing_files(devprovider, tmp_path):
    port_a = free_port()
    shared = str(tmp_path / "shared-data")  # both servers' file sessions and logout index
    with _provider_calling(devprovider, tmp_path / "op", port_a) as op, \
            sample_server(op, tmp_path / "a", port=port_a, SAMPLE_DATA_DIR=shared) as a, \
            sample_server(op, tmp_path / "b", SAMPLE_DATA_DIR=shared, MSAL_REDIRECT_URI=a.url + "/auth/callback") as b:
        browser, other = Browser(op), Browser(op)
        browser.sign_in(a.url + "/todos")
        alice_at_the_provider = op.last_session
        other.sign_in(b.url + "/todos", login="bob")  # another user, not signed out
        files = {path.stem for path in Path(shared, "sessions", "container_file").rglob("*.cache")}
        alice = browser.session.cookies["msal_wsgi_sample"]
        assert files == {alice, other.session.cookies["msal_wsgi_sample"]}

        op.end_session(op.metadata["end_session_endpoint"], session=alice_at_the_provider)

        assert not list(Path(shared, "sessions", "container_file").rglob(f"{alice}.cache"))  # the file is gone
        assert _asked_to_sign_in(browser, b.url + "/todos", op)
        assert "Signed in as <b>bob</b>" in other.get(a.url + "/todos").text


# -- back-channel: validating the logout token (the misbehaving provider signs them) -----------------

def rp(rogue: MisbehavingProvider, **overrides: Any) -> TestApp:
    return make_testapp(rogue.issuer, client_id=rogue.client_id, client_credential=rogue.client_secret,
                        protect={"/todos": {"read": ["api://rogue/read"]}}, **overrides)


def signed_in(rogue: MisbehavingProvider, app: TestApp, sid: str | None = SID) -> TestApp:
    rogue.configure(user_claims={"name": "Rogue User", "preferred_username": "rogue-user",
                                 **({"sid": sid} if sid else {})})
    back = return_to_app(app, rogue.sign_in(app.get("/todos").location))
    assert back.status_int == 302 and app.get("/todos").status_int == 200
    return app


def logout_token(rogue: MisbehavingProvider, **changes: Any) -> str:
    """A correct logout token for the rogue user and SID (a value of None removes a claim)."""
    now = int(time.time())
    claims = {"iss": rogue.issuer, "aud": rogue.client_id, "iat": now, "exp": now + 120, "jti": f"jti-{time.time_ns()}",
              "sub": "rogue-user", "sid": SID, "events": {BACKCHANNEL_LOGOUT_EVENT: {}}}
    signing = {k: changes.pop(k) for k in ("alg", "kid", "sign_with", "headers") if k in changes}
    claims.update(changes)
    return rogue.sign({k: v for k, v in claims.items() if v is not None}, **signing)


def post(app: TestApp, token: str, status: int | str = "*") -> Any:
    return app.post(PATH, {"logout_token": token}, status=status)


def test_a_valid_logout_token_ends_the_session_of_its_sid_and_is_200_no_store(rogue):
    app = signed_in(rogue, rp(rogue))
    sid = app.cookies["sid"]
    answer = post(browser_of(app), logout_token(rogue))  # the provider's request carries no cookie
    assert answer.status_int == 200 and answer.headers["Cache-Control"] == "no-store"
    assert app.get("/todos", headers=JSON, status=401).json["error"] == "interaction_required"
    assert stored_session(sid).is_new  # the session is gone from the store


def test_a_logout_token_is_used_once(rogue):
    app = signed_in(rogue, rp(rogue))
    token = logout_token(rogue)
    assert post(app, token).status_int == 200
    signed_in(rogue, app)  # signed in again, same provider session
    replayed = post(app, token)
    assert replayed.status_int == 400 and replayed.json["error"] == "invalid_request"
    assert app.get("/todos").status_int == 200


def test_a_logout_token_with_sub_only_ends_every_session_of_the_user(rogue):
    first = signed_in(rogue, rp(rogue))
    second = signed_in(rogue, browser_of(first), sid="rogue-session-2")
    bystander = signed_in(rogue, browser_of(first), sid="rogue-session-3")
    rogue.configure(user_sub="someone-else")
    other = signed_in(rogue, browser_of(first), sid="rogue-session-4")
    assert post(first, logout_token(rogue, sid=None)).status_int == 200
    for app in (first, second, bystander):
        assert app.get("/todos", headers=JSON, status=401)
    assert other.get("/todos").status_int == 200


def test_a_logout_token_for_another_sid_ends_nothing(rogue):
    app = signed_in(rogue, rp(rogue))
    assert post(app, logout_token(rogue, sid="another-session")).status_int == 200
    assert app.get("/todos").status_int == 200


DEFECTS = {  # Back-Channel Logout 1.0 §2.4, §2.6; id token rules (OIDC Core §3.1.3.7) as §2.6 step 3 says
    "bad-signature": {"sign_with": "foreign"},
    "alg-none": {"alg": "none"},
    "hs256-keyed-with-the-public-key": {"alg": "HS256-with-public-key"},
    "wrong-issuer": {"iss": "https://evil.example/rogue"},
    "wrong-audience": {"aud": "another-client"},
    "expired": {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200},
    "issued-in-the-future": {"iat": int(time.time()) + 3600},
    "no-iat": {"iat": None},
    "no-jti": {"jti": None},
    "no-events": {"events": None},
    "events-without-the-logout-event": {"events": {"http://schemas.openid.net/event/other": {}}},
    "event-not-an-object": {"events": {BACKCHANNEL_LOGOUT_EVENT: "yes"}},
    "nonce": {"nonce": "n-0S6_WzA2Mj"},
    "neither-sid-nor-sub": {"sid": None, "sub": None},
    "typ-of-an-access-token": {"headers": {"typ": "at+jwt"}},
    "too-old-without-exp": {"exp": None, "iat": int(time.time()) - 3600},
}


@pytest.mark.parametrize("defect", list(DEFECTS.values()), ids=list(DEFECTS))
def test_a_defective_logout_token_is_400_and_ends_nothing(rogue, defect):
    app = signed_in(rogue, rp(rogue))
    answer = post(browser_of(app), logout_token(rogue, **dict(defect)))
    assert answer.status_int == 400 and answer.json["error"] == "invalid_request"
    assert answer.headers["Cache-Control"] == "no-store" and "eyJ" not in answer.text
    assert app.get("/todos").status_int == 200


def test_positive_control_typ_logout_jwt_is_accepted(rogue):
    app = signed_in(rogue, rp(rogue))
    assert post(app, logout_token(rogue, headers={"typ": "logout+jwt"})).status_int == 200


@pytest.mark.parametrize(("method", "body", "status"), [
    ("GET", None, 405),
    ("POST", {"token": "x"}, 400),
    ("POST", "logout_token=a&logout_token=b", 400),
    ("POST", {"logout_token": "not a jwt"}, 400),
], ids=["get", "no-logout-token", "two-logout-tokens", "not-a-jwt"])
def test_malformed_back_channel_requests(rogue, method, body, status):
    app = rp(rogue)
    if method == "GET":
        assert app.get(PATH, status=status).headers["Allow"] == "POST"
    elif isinstance(body, str):
        assert app.post(PATH, body, content_type="application/x-www-form-urlencoded", status=status)
    else:
        assert app.post(PATH, body, status=status).json["error"] == "invalid_request"


class DictSessions:
    """Session middleware of another kind than Beaker: a dict with save(), one per cookie-less test."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Any) -> Any:
        session = _DictSession()
        environ["beaker.session"] = session
        return self.app(environ, start_response)


class _DictSession(dict):  # type: ignore[type-arg]
    def save(self) -> None:
        pass


def test_a_session_store_without_an_index_answers_501(rogue):
    app = TestApp(DictSessions(rp(rogue).middleware))
    answer = post(app, logout_token(rogue), status=501)
    assert answer.json["error"] == "not_supported"


# -- front-channel ----------------------------------------------------------------------------

def frontchannel(app: TestApp, **params: str) -> Any:
    return app.get("/auth/frontchannel-logout", params, status="*")


def test_front_channel_logout_ends_the_sessions_of_the_sid_without_their_cookie(rogue):
    app = signed_in(rogue, rp(rogue))
    other_tab = signed_in(rogue, browser_of(app), sid="rogue-session-2")
    framed = frontchannel(browser_of(app), iss=rogue.issuer, sid=SID)  # the provider's iframe: no cookie
    assert framed.status_int == 200 and "signed out" in framed.text
    assert framed.headers["Cache-Control"] == "no-cache, no-store"
    assert f"frame-ancestors 'self' {rogue.issuer.rsplit('/', 1)[0]}" in framed.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in framed.headers
    assert app.get("/todos", headers=JSON, status=401)
    assert other_tab.get("/todos").status_int == 200  # another provider session of the same user


def test_front_channel_logout_with_the_cookie_and_no_parameters_ends_that_session(rogue):
    app = signed_in(rogue, rp(rogue))
    assert frontchannel(app).status_int == 200
    assert app.get("/todos", headers=JSON, status=401)


@pytest.mark.parametrize("params", [
    {"iss": "https://evil.example/rogue", "sid": SID}, {"sid": SID}, {"iss": "ISSUER"},
], ids=["another-issuer", "sid-without-iss", "iss-without-sid"])
def test_front_channel_logout_of_another_issuer_or_half_given_is_400(rogue, params):
    app = signed_in(rogue, rp(rogue))
    params = {k: rogue.issuer if v == "ISSUER" else v for k, v in params.items()}
    framed = frontchannel(browser_of(app), **params)
    assert framed.status_int == 400 and framed.headers["Cache-Control"] == "no-cache, no-store"
    assert app.get("/todos").status_int == 200


def test_sign_out_here_takes_the_session_out_of_the_logout_index(rogue):
    hook = Told()
    app = signed_in(rogue, rp(rogue, on_event=hook))
    assert sign_out(app).status_int == 303
    assert post(browser_of(app), logout_token(rogue)).status_int == 200
    assert ("logout.received", {"channel": "backchannel", "by": "sid", "sessions": 0}) in hook.events


@pytest.mark.parametrize(("body", "content_type"), [
    ('{"logout_token": "x"}', "application/json"),
    ("logout_token=" + "a" * (65 * 1024), "application/x-www-form-urlencoded"),
    ("logout_token=caf\xe9", "application/x-www-form-urlencoded"),
], ids=["json", "over-64-kb", "not-ascii"])
def test_a_back_channel_body_that_is_not_a_small_form_is_400(rogue, body, content_type):
    answer = rp(rogue).post(PATH, body.encode("latin-1"), content_type=content_type, status=400)
    assert answer.json["error"] == "invalid_request"


def test_a_logout_token_of_a_tenant_not_allowed_is_400(rogue):
    tenant, other = "aaaabbbb-0000-cccc-1111-dddd2222eeee", "ffffffff-0000-cccc-1111-dddd2222eeee"
    app = rp(rogue, allowed_tenants=[tenant])
    rogue.configure(user_claims={"name": "Rogue User", "tid": tenant, "sid": SID})
    return_to_app(app, rogue.sign_in(app.get("/todos").location))
    assert app.get("/todos").status_int == 200
    assert post(app, logout_token(rogue, tid=other)).status_int == 400
    assert app.get("/todos").status_int == 200
    assert post(app, logout_token(rogue, tid=tenant)).status_int == 200


def test_a_provider_that_cannot_be_reached_is_a_503_with_retry_after():
    app = make_testapp("https://127.0.0.1:9/op")  # nothing listens on port 9
    answer = app.post(PATH, {"logout_token": "a.b.c"}, status=503)
    assert answer.json["error"] == "temporarily_unavailable" and answer.headers["Retry-After"]


def test_front_channel_logout_is_a_get(rogue):
    assert rp(rogue).post("/auth/frontchannel-logout", status=405).headers["Allow"] == "GET, HEAD"


class _EntraClient:
    """What the logout channels read of the identity client: Entra's multi-tenant issuer template."""

    class provider:
        issuer = "https://login.microsoftonline.com/{tenantid}/v2.0"


@pytest.mark.parametrize(("tenant", "allowed", "status"), [
    ("aaaabbbb-0000-cccc-1111-dddd2222eeee", (), 200),
    ("aaaabbbb-0000-cccc-1111-dddd2222eeee", ("aaaabbbb-0000-cccc-1111-dddd2222eeee",), 200),
    ("ffffffff-0000-cccc-1111-dddd2222eeee", ("aaaabbbb-0000-cccc-1111-dddd2222eeee",), 400),
    ("common", (), 400),
], ids=["any-tenant", "allowed-tenant", "tenant-not-allowed", "not-a-tenant-id"])
def test_front_channel_logout_from_entra_fills_the_tenant_of_its_issuer(tenant, allowed, status):
    from beaker.middleware import SessionMiddleware
    from support.apps import settings_for
    from support.sessions import MEMORY_SESSIONS
    from webob import Request

    from msal_wsgi import Settings
    from msal_wsgi._session import Sessions
    from msal_wsgi.events import Events
    from msal_wsgi.logout import LogoutChannels

    settings = Settings(**settings_for("https://login.microsoftonline.com/organizations/v2.0",
                                       allowed_tenants=list(allowed)))
    channels = LogoutChannels(settings, _EntraClient(), Sessions("beaker.session", "fp"), Events(None))  # type: ignore[arg-type]

    def app(environ: dict, start_response: Any) -> Any:
        return channels.frontchannel(Request(environ))(environ, start_response)

    iss = f"https://login.microsoftonline.com/{tenant}/v2.0"
    answer = TestApp(SessionMiddleware(app, MEMORY_SESSIONS)).get(
        "/auth/frontchannel-logout", {"iss": iss, "sid": "an-entra-sid"}, status="*")
    assert answer.status_int == status
    assert "frame-ancestors 'self' https://login.microsoftonline.com" in answer.headers["Content-Security-Policy"]


# -- sign-out here, with Entra's login_hint claim (the misbehaving provider issues it on demand) --------

def test_sign_out_passes_entras_login_hint_claim_as_logout_hint(rogue):
    app = rp(rogue)
    rogue.configure(user_claims={"name": "Rogue User", "login_hint": "O.aW1hIGEgbG9naW4gaGludA"})
    return_to_app(app, rogue.sign_in(app.get("/todos").location))
    out = sign_out(app)
    assert out.status_int == 303 and out.location.startswith(rogue.issuer + "/logout?")
    query = query_of(out.location)
    assert query["logout_hint"] == "O.aW1hIGEgbG9naW4gaGludA" and query["id_token_hint"].count(".") == 2
