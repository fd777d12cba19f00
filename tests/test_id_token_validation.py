"""Sign-in as a certified relying party: every id_token and authorization response is validated.

Modeled on the OpenID Foundation's Basic RP test plan: a provider of our own
(:class:`~support.misbehaving.MisbehavingProvider`, on loopback over TLS) produces
one defect at a time, and the middleware must refuse it, with a 4xx page naming no
secret, a log line, and nothing signed in; each rule has a positive control that
signs in. Entra's multi-tenant issuer template is checked offline at the end, with
tokens the same provider signs.
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import pytest
from support.api import EntraOffline
from support.apps import echo_app, return_to_app
from support.misbehaving import IdTokenDefects, MisbehavingProvider
from support.urls import query_of
from webtest import TestApp

from msal_wsgi import MsalMiddleware, Protect, Settings

READ = "api://rogue/read"


def rp_app(rogue: MisbehavingProvider, app: Any = echo_app, **overrides: Any) -> TestApp:
    """``app`` (the echo app) behind msal_wsgi signing in at ``rogue``, with Beaker memory sessions."""
    from beaker.middleware import SessionMiddleware

    options: dict[str, Any] = {"client_id": rogue.client_id, "client_secret": rogue.client_secret,
                               "oidc_authority": rogue.issuer, "redirect_uri": "http://localhost/auth/callback",
                               "protect": {"/todos": Protect(read=[READ])}}
    options.update(overrides)
    middleware = MsalMiddleware(app, **options)
    return TestApp(SessionMiddleware(middleware, {"session.type": "memory", "session.key": "sid",
                                                  "session.save_accessed_time": False}))


def sign_in(app: TestApp, rogue: MisbehavingProvider) -> Any:
    """Visit /todos, sign in at the provider, bring its answer back; the callback's answer."""
    start = app.get("/todos")
    assert start.status_int == 302 and start.location.startswith(rogue.issuer + "/authorize?"), start
    return return_to_app(app, rogue.sign_in(start.location))


def assert_refused(app: TestApp, answer: Any, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    assert answer.status_int in (400, 403), answer
    assert "Sign in again" in answer.text and "Traceback" not in answer.text
    assert f"sign-in failed ({reason})" in caplog.text
    again = app.get("/todos")  # nothing was signed in
    assert again.status_int == 302


def assert_signed_in(app: TestApp, answer: Any) -> dict[str, Any]:
    assert answer.status_int == 302 and answer.location.endswith("/todos"), answer
    page = answer.follow()
    assert page.json["remote_user"] == "rogue-user"
    return dict(page.json)


NOW = int(time.time())

#: OIDF Basic RP test id (or rule) -> the defect, the reason msal_wsgi logs.
REFUSED = {
    "rp-id_token-sig-none": (IdTokenDefects(alg="none"), "invalid_id_token"),
    "rp-id_token-bad-sig-rs256": (IdTokenDefects(sign_with="foreign"), "invalid_id_token"),
    "hs256-keyed-with-the-public-key": (IdTokenDefects(alg="HS256-with-public-key"), "invalid_id_token"),
    "rp-id_token-aud": (IdTokenDefects(claims_overrides={"aud": "someone-else"}), "invalid_id_token"),
    "azp-of-another-client": (IdTokenDefects(claims_overrides={"aud": ["rp-client", "other"], "azp": "other"}),
                              "invalid_id_token"),
    "several-audiences-without-azp": (IdTokenDefects(claims_overrides={"aud": ["rp-client", "other"]}),
                                      "invalid_id_token"),
    "azp-alone-of-another-client": (IdTokenDefects(claims_overrides={"azp": "other"}), "invalid_id_token"),
    "rp-id_token-issuer-mismatch": (IdTokenDefects(claims_overrides={"iss": "https://evil.example/rogue"}),
                                    "invalid_id_token"),
    "expired-an-hour-ago": (IdTokenDefects(claims_overrides={"exp": NOW - 3600}), "invalid_id_token"),
    "rp-id_token-iat": (IdTokenDefects(claims_overrides={"iat": None}), "invalid_id_token"),
    "rp-id_token-sub": (IdTokenDefects(claims_overrides={"sub": None}), "invalid_id_token"),
    "rp-nonce-invalid": (IdTokenDefects(claims_overrides={"nonce": "wrong"}), "nonce_mismatch"),
    "no-nonce": (IdTokenDefects(claims_overrides={"nonce": None}), "nonce_mismatch"),
    "unknown-kid": (IdTokenDefects(kid="unknown"), "invalid_id_token"),
}


@pytest.mark.parametrize(("defect", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_a_defective_id_token_signs_no_one_in(rogue, caplog, defect, reason):
    rogue.configure(id_token=defect)
    app = rp_app(rogue)
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        answer = sign_in(app, rogue)
    assert_refused(app, answer, reason, caplog)
    assert "nonce" not in answer.text.lower() and "eyJ" not in caplog.text  # no nonce or token shown


def test_positive_control_a_correct_id_token_signs_in(rogue):
    app = rp_app(rogue)
    body = assert_signed_in(app, sign_in(app, rogue))
    assert body["token"]["scopes"] == [READ]
    assert len(rogue.jwks_requests) == 1


@pytest.mark.parametrize("keys", [1, 2], ids=["rp-id_token-kid-absent-single-jwks",
                                              "rp-id_token-kid-absent-multiple-jwks"])
def test_an_id_token_without_kid_is_tried_against_each_key(rogue, keys):
    for _ in range(keys - 1):
        rogue.add_key("RS256")  # published, not signing: the token is signed by the first key
    rogue.configure(id_token=IdTokenDefects(kid=None))
    app = rp_app(rogue)
    assert_signed_in(app, sign_in(app, rogue))


def test_rp_key_rotation_op_sign_key_fetches_the_jwks_once_more(rogue):
    app = rp_app(rogue)
    assert_signed_in(app, sign_in(app, rogue))
    rogue.rotate_keys()
    app.reset()
    assert_signed_in(app, sign_in(app, rogue))
    assert len(rogue.jwks_requests) == 2


def test_a_flood_of_unknown_kids_fetches_the_jwks_at_most_once_a_minute(rogue, caplog):
    app = rp_app(rogue)
    assert_signed_in(app, sign_in(app, rogue))
    rogue.configure(id_token=IdTokenDefects(kid="unknown"))
    for _ in range(5):
        app.reset()
        assert sign_in(app, rogue).status_int == 400
    assert len(rogue.jwks_requests) == 2  # the first fetch, then one re-fetch for the unknown kid


def test_rp_token_endpoint_client_secret_basic_when_the_provider_accepts_only_that(rogue):
    rogue.configure(accept_auth_methods={"client_secret_basic"})
    app = rp_app(rogue)
    assert_signed_in(app, sign_in(app, rogue))
    assert [r["auth_method"] for r in rogue.token_requests] == ["client_secret_basic"]


@pytest.mark.parametrize(("setting", "sent"), [("auto", "client_secret_post"),
                                               ("client_secret_basic", "client_secret_basic"),
                                               ("client_secret_post", "client_secret_post")])
def test_token_endpoint_auth_method_setting_chooses_how_the_secret_is_sent(rogue, setting, sent):
    app = rp_app(rogue, token_endpoint_auth_method=setting)
    assert_signed_in(app, sign_in(app, rogue))
    assert [r["auth_method"] for r in rogue.token_requests] == [sent]


def test_rp_discovery_issuer_not_matching_config_starts_no_sign_in(rogue, caplog):
    rogue.configure(discovery_overrides={"issuer": rogue.issuer + "/other"})
    app = rp_app(rogue)
    with caplog.at_level(logging.ERROR, logger="msal_wsgi"):
        answer = app.get("/todos", status=503)
    assert "Retry-After" not in answer.headers and "Sign-in is unavailable" in answer.text
    assert "Discovery §4.3" in caplog.text and rogue.issuer + "/other" in caplog.text
    assert rogue.token_requests == []


def test_check_says_what_differs_when_discovery_names_another_issuer(rogue):
    from msal_wsgi.check import main

    rogue.configure(discovery_overrides={"issuer": rogue.issuer + "/other"})
    out = io.StringIO()
    env = {"MSAL_CLIENT_ID": rogue.client_id, "MSAL_CLIENT_SECRET": rogue.client_secret,
           "MSAL_OIDC_AUTHORITY": rogue.issuer, "MSAL_REDIRECT_URI": "http://localhost/auth/callback"}
    assert main(["check"], env=env, out=out) == 1
    report = out.getvalue()
    assert "FAILED" in report and repr(rogue.issuer + "/other") in report and repr(rogue.issuer) in report


@pytest.mark.parametrize(("iss", "announced", "reason"), [
    ("https://evil.example/rogue", False, "wrong_iss_parameter"),
    (None, True, "missing_iss_parameter"),
], ids=["rfc9207-another-issuer", "rfc9207-announced-but-missing"])
def test_the_iss_response_parameter_is_checked_before_any_code_is_redeemed(rogue, caplog, iss, announced, reason):
    rogue.configure(iss_parameter=iss,
                    discovery_overrides={"authorization_response_iss_parameter_supported": announced})
    app = rp_app(rogue)
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        answer = sign_in(app, rogue)
    assert_refused(app, answer, reason, caplog)
    assert rogue.token_requests == []


@pytest.mark.parametrize("announced", [False, True])
def test_positive_control_the_right_iss_parameter_signs_in(rogue, announced):
    rogue.configure(iss_parameter="correct",
                    discovery_overrides={"authorization_response_iss_parameter_supported": announced})
    app = rp_app(rogue)
    assert_signed_in(app, sign_in(app, rogue))


@pytest.mark.parametrize(("knobs", "reason"), [
    ({"token_type": "mac"}, "unsupported_token_type"),
    ({"token_type": None}, "unsupported_token_type"),
    ({"omit_access_token": True}, "no_access_token"),
    ({"omit_id_token": True}, "invalid_id_token"),
], ids=["token-type-mac", "token-type-missing", "no-access-token", "no-id-token"])
def test_a_defective_token_response_signs_no_one_in(rogue, caplog, knobs, reason):
    if knobs.get("token_type", "") is None:
        knobs = {"token_response_overrides": {"token_type": None}}
    rogue.configure(**knobs)
    app = rp_app(rogue)
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        answer = sign_in(app, rogue)
    assert_refused(app, answer, reason, caplog)


def test_positive_control_token_type_is_case_insensitive(rogue):
    rogue.configure(token_type="bearer")
    app = rp_app(rogue)
    assert_signed_in(app, sign_in(app, rogue))


def test_a_refresh_whose_id_token_names_another_subject_is_not_used(rogue, caplog):
    app = rp_app(rogue)
    assert_signed_in(app, sign_in(app, rogue))
    rogue.configure(id_token=IdTokenDefects(claims_overrides={"sub": "mallory"}))
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        body = app.get("/todos?acquire=api://rogue/other").json  # a refresh: another scope
    assert body["acquired"]["error"].startswith("the refreshed id_token was refused")
    assert "another subject" in caplog.text
    assert [r["grant_type"] for r in rogue.token_requests] == ["authorization_code", "refresh_token"]


def test_positive_control_a_refresh_with_a_good_id_token_is_used(rogue):
    app = rp_app(rogue)
    assert_signed_in(app, sign_in(app, rogue))
    body = app.get("/todos?acquire=api://rogue/other").json
    assert body["acquired"]["scopes"] == ["api://rogue/other"]


def test_remote_user_claim_names_another_claim(rogue):
    app = rp_app(rogue, remote_user_claim="name")
    answer = sign_in(app, rogue)
    assert answer.follow().json["remote_user"] == "Rogue User"


# -- Entra multi-tenant authorities, offline -----------------------------------------------------------

TENANT = "aaaabbbb-0000-cccc-1111-dddd2222eeee"
OTHER_TENANT = "99998888-7777-6666-5555-444433332222"
CLIENT = "11112222-bbbb-3333-cccc-4444dddd5555"
ORGANIZATIONS = "https://login.microsoftonline.com/organizations"
ENTRA_READ = "api://todo/ToDoList.Read"


def entra_sign_in(rogue: MisbehavingProvider, tid: str, *, issuer_tenant: str | None = None, **settings: Any) -> Any:
    """Sign in through an /organizations authority whose token response carries a user of ``tid`` (in an
    id_token issued by ``issuer_tenant``, default ``tid``); the callback's answer. Requests to Entra go
    through the ``http_session`` setting, to :class:`EntraOffline`."""
    network = EntraOffline(rogue)
    app = rp_app(rogue, oidc_authority=None, authority=ORGANIZATIONS, client_id=CLIENT, client_secret="secret",
                 response_mode="query", protect={"/todos": Protect(read=[ENTRA_READ])}, http_session=network.session(),
                 **settings)
    authorize = app.get("/todos", status=302).location
    assert authorize.startswith(f"{ORGANIZATIONS}/oauth2/v2.0/authorize?"), authorize
    query = query_of(authorize)
    now = int(time.time())
    issuer = f"https://login.microsoftonline.com/{tid if issuer_tenant is None else issuer_tenant}/v2.0"
    id_token = rogue.sign({"iss": issuer, "aud": CLIENT, "tid": tid,
                           "sub": "pairwise-sub", "oid": "00000000-0000-0000-0000-00000000000a",
                           "preferred_username": "alice@contoso.example", "name": "Alice", "iat": now,
                           "nbf": now, "exp": now + 3600, "nonce": query["nonce"]})
    network.token_response = {"token_type": "Bearer", "access_token": rogue.sign({"aud": "api://todo"}),
                              "expires_in": 3600, "refresh_token": "rt", "id_token": id_token, "scope": ENTRA_READ}
    return app.get("/auth/callback", {"code": "code", "state": query["state"]}, expect_errors=True)


def assert_entra_user_signed_in(answer: Any) -> None:
    assert answer.status_int == 302 and answer.location.endswith("/todos"), answer
    body = answer.follow().json
    assert body["user"]["id"] == "00000000-0000-0000-0000-00000000000a" and body["user"]["tenant"] == TENANT
    assert body["remote_user"] == body["user"]["id"] and body["user"]["username"] == "alice@contoso.example"


def test_a_multi_tenant_issuer_template_is_filled_with_the_token_tid(rogue):
    assert_entra_user_signed_in(entra_sign_in(rogue, TENANT))


def test_allowed_tenants_lets_the_listed_tenant_in(rogue):
    assert_entra_user_signed_in(entra_sign_in(rogue, TENANT, allowed_tenants=(TENANT,)))


def test_allowed_tenants_keeps_other_tenants_out_naming_the_tenant(rogue, caplog):
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        answer = entra_sign_in(rogue, OTHER_TENANT, allowed_tenants=(TENANT,))
    assert answer.status_int == 403 and "Accounts of your organization cannot sign in" in answer.text
    assert "sign-in failed (tenant_not_allowed)" in caplog.text and OTHER_TENANT in caplog.text


def test_an_issuer_naming_another_tenant_than_tid_is_refused(rogue, caplog):
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        answer = entra_sign_in(rogue, TENANT, issuer_tenant=OTHER_TENANT)
    assert answer.status_int == 400 and "sign-in failed (invalid_id_token)" in caplog.text
    assert "wrong_issuer" in caplog.text


def test_allowed_tenants_must_be_tenant_ids():
    from msal_wsgi import ConfigurationError

    with pytest.raises(ConfigurationError, match="allowed_tenants"):
        Settings(client_id=CLIENT, client_secret="s", authority=ORGANIZATIONS,
                 redirect_uri="https://app.example/auth/callback", allowed_tenants=("contoso.com",))


# -- discovery and token answers that do not fit: a clear 503, never a 500 -----------------------------

@pytest.mark.parametrize("overrides", [
    {"id_token_signing_alg_values_supported": ["HS256", "none"]},
    {"jwks_uri": None},
    {"jwks_uri": "http://127.0.0.1:9/jwks"},
], ids=["only-symmetric-algorithms", "no-jwks-uri", "plain-http-jwks-uri"])
def test_discovery_without_usable_keys_starts_no_sign_in(rogue, caplog, overrides):
    rogue.configure(discovery_overrides=overrides)
    app = rp_app(rogue)
    with caplog.at_level(logging.ERROR, logger="msal_wsgi"):
        answer = app.get("/todos", status=503)
    assert "Sign-in is unavailable" in answer.text and "does not fit the settings" in caplog.text


def test_keys_that_cannot_be_fetched_are_a_passing_outage_at_the_callback(rogue, caplog):
    rogue.configure(discovery_overrides={"jwks_uri": rogue.issuer + "/no-such-keys"})
    app = rp_app(rogue)
    with caplog.at_level(logging.ERROR, logger="msal_wsgi"):
        answer = sign_in(app, rogue)
    assert answer.status_int == 503 and answer.headers["Retry-After"]
    assert "cannot fetch the provider's signing keys" in caplog.text


def test_an_error_in_a_200_token_response_is_a_passing_outage(rogue):
    rogue.configure(token_response_overrides={"error": "temporarily_unavailable", "access_token": None,
                                              "id_token": None})
    app = rp_app(rogue)
    assert sign_in(app, rogue).status_int == 503


def test_a_refresh_without_an_id_token_is_used(rogue):
    app = rp_app(rogue)
    assert_signed_in(app, sign_in(app, rogue))
    rogue.configure(id_token_on_refresh=False)
    assert app.get("/todos?acquire=api://rogue/other").json["acquired"]["scopes"] == ["api://rogue/other"]


def test_a_refresh_without_an_access_token_is_a_503_keeping_the_session(rogue):
    app = rp_app(rogue)
    assert_signed_in(app, sign_in(app, rogue))
    rogue.configure(omit_access_token=True)
    answer = app.get("/todos?acquire=api://rogue/other", headers={"Accept": "application/json"}, status=503)
    assert answer.json["error"] == "temporarily_unavailable"
    rogue.configure(omit_access_token=False)
    assert app.get("/todos").json["remote_user"] == "rogue-user"


def test_a_claims_challenge_always_asks_the_token_endpoint(rogue):
    app = rp_app(rogue, app=claims_app)
    assert_signed_in(app, sign_in(app, rogue))
    before = len(rogue.token_requests)
    app.get("/todos/claims")
    app.get("/todos/claims")
    assert [r["grant_type"] for r in rogue.token_requests[before:]] == ["refresh_token", "refresh_token"]


def claims_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """``/todos/claims`` acquires the route's token again with a claims challenge (conditional access)."""
    if environ["PATH_INFO"] == "/todos/claims":
        token = environ["msal_wsgi.acquire_token"]([READ], claims_challenge='{"access_token":{"acrs":{"essential":true}}}')
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(token.expires_on).encode()]
    return echo_app(environ, start_response)


def test_an_entra_token_without_tid_is_refused(rogue, caplog):
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        answer = entra_sign_in(rogue, "", issuer_tenant=TENANT)
    assert answer.status_int == 400 and "sign-in failed (invalid_id_token)" in caplog.text
    assert "tid" in caplog.text
