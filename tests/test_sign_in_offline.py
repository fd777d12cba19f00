"""The sign-in endpoint and the callback without the devprovider: offline, or at the misbehaving provider
of our own on its own test CA (``local_rogue``, in-process), quick enough for the mutation runs.

Each way a callback fails answers the status the README's event table promises; a sign-in link asks
only for configured scopes and passes hints up to 256 characters; a replayed callback moves on.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.apps import JSON, OFFLINE_ISSUER, SAME_ORIGIN, Told, make_testapp, return_to_app
from support.misbehaving import IdTokenDefects, MisbehavingProvider
from support.urls import query_of

from msal_wsgi import Protect, SignInFailure

READ = "api://rogue/read"
WRITE = "api://rogue/write"
#: What msal adds to every sign-in's scopes.
OIDC_SCOPES = {"openid", "profile", "offline_access"}
TENANT = "aaaabbbb-0000-cccc-1111-dddd2222eeee"
OTHER_TENANT = "99998888-7777-6666-5555-444433332222"


def rogue_app(rogue: MisbehavingProvider, told: Told | None = None, **overrides: Any) -> Any:
    """The echo app behind msal_wsgi signing in at ``rogue``, /todos protected (read and write scopes)."""
    options: dict[str, Any] = {"client_id": rogue.client_id, "client_credential": rogue.client_secret,
                               "protect": {"/todos": Protect(read=[READ], write=[WRITE])},
                               "response_mode": "query", "on_event": told or Told()}
    return make_testapp(rogue.issuer, **{**options, **overrides})


def asked_scopes(authorize_url: str) -> list[str]:
    """The scopes a redirect to the provider asks for, but the OpenID Connect ones msal adds."""
    return [scope for scope in query_of(authorize_url)["scope"].split() if scope not in OIDC_SCOPES]


# -- every failure's status -------------------------------------------------------------------------

#: Each reason of sign_in.failed, how the provider or the browser brings it about (provider knobs,
#: settings, changes to the callback's parameters: None leaves one out) and its status: 403 when the
#: user or their tenant is refused, 400 for the others (README, "Events"). response_too_large (413)
#: needs a form_post body over 64 KB: tests/test_callback_errors.py.
FAILED = {
    "access_denied": (403, {"error": "access_denied"}, {}, {}),
    "provider_error": (400, {"error": "temporarily_unavailable"}, {}, {}),
    "unknown_state": (400, {}, {}, {"state": "forged"}),
    "malformed_response": (400, {}, {}, {"code": "x" * 8193}),
    "no_code": (400, {}, {}, {"code": None}),
    "missing_iss_parameter": (400, {"discovery_overrides": {"authorization_response_iss_parameter_supported": True}},
                              {}, {}),
    "wrong_iss_parameter": (400, {"iss_parameter": "https://127.0.0.1:9/elsewhere"}, {}, {}),
    "code_rejected": (400, {}, {}, {"code": "a-code-it-never-issued"}),
    "nonce_mismatch": (400, {"id_token": IdTokenDefects(claims_overrides={"nonce": "another"})}, {}, {}),
    "invalid_id_token": (400, {"id_token": IdTokenDefects(alg="none")}, {}, {}),
    "unsupported_token_type": (400, {"token_type": "mac"}, {}, {}),
    "no_access_token": (400, {"omit_access_token": True}, {}, {}),
    "tenant_not_allowed": (403, {"user_claims": {"preferred_username": "rogue-user", "tid": OTHER_TENANT}},
                           {"allowed_tenants": (TENANT,)}, {}),
}


def test_every_reason_a_sign_in_fails_for_is_tried_here():
    assert {*FAILED, "response_too_large"} == {reason.value for reason in SignInFailure}


@pytest.mark.parametrize(("reason", "status", "knobs", "settings", "changes"),
                         [(reason, *case) for reason, case in FAILED.items()], ids=FAILED.keys())
def test_each_failed_callback_answers_its_status_and_signs_no_one_in(local_rogue, reason, status, knobs, settings,
                                                                      changes):
    local_rogue.configure(**knobs)
    told = Told()
    app = rogue_app(local_rogue, told, **settings)
    params = {**local_rogue.sign_in(app.get("/todos").location).params, **changes}
    answer = app.get("/auth/callback", {name: value for name, value in params.items() if value is not None},
                     status="*")
    told_reasons = [str(failed["reason"]) for failed in told.of("sign_in.failed")]
    assert (answer.status_int, told_reasons) == (status, [reason])
    assert "Sign in again" in answer.text and answer.headers["Cache-Control"] == "no-store"
    assert app.get("/todos", headers=JSON, status=401)  # nothing was signed in


# -- the callback: signing in, and moving on -----------------------------------------------------------

def test_a_callback_in_form_post_mode_is_reposted_then_signs_in(local_rogue):
    told = Told()
    app = rogue_app(local_rogue, told, response_mode="form_post")
    back = return_to_app(app, local_rogue.sign_in(app.get("/todos/7").location))
    assert back.status_int == 302 and back.location == "http://localhost/todos/7"
    assert back.follow().json["remote_user"] == "rogue-user"
    assert [data["scopes"] for data in told.of("sign_in.completed")] == [(READ,)]


def test_a_replayed_callback_of_a_completed_sign_in_moves_on_without_redeeming(local_rogue):
    app = rogue_app(local_rogue)
    params = local_rogue.sign_in(app.get("/todos?page=2").location).params
    assert app.get("/auth/callback", params).location == "http://localhost/todos?page=2"
    redeemed = len(local_rogue.token_requests)
    again = app.get("/auth/callback", params)  # the back button
    assert again.status_int == 302 and again.location == "http://localhost/todos?page=2"
    assert len(local_rogue.token_requests) == redeemed


def test_a_signed_in_user_with_an_unknown_state_gets_the_failure_page_and_stays_signed_in(local_rogue):
    app = rogue_app(local_rogue)
    params = local_rogue.sign_in(app.get("/todos").location).params
    app.get("/auth/callback", params)
    answer = app.get("/auth/callback", {"state": "forged", "code": "c"}, status=400)
    assert "Sign in again" in answer.text
    assert app.get("/todos").json["remote_user"] == "rogue-user"


def test_a_form_posted_while_signed_out_comes_back_as_the_resubmission_page(local_rogue):
    app = rogue_app(local_rogue)
    start = app.post("/todos", {"description": "milk"}, headers=SAME_ORIGIN)
    assert start.status_int == 302 and start.location.startswith(local_rogue.issuer)
    page = return_to_app(app, local_rogue.sign_in(start.location))
    assert page.status_int == 200 and page.forms["f"].action == "/todos"
    assert asked_scopes(start.location) == [WRITE]  # a POST needs the write scopes


# -- the sign-in endpoint -----------------------------------------------------------------------------

@pytest.mark.parametrize(("scope", "asked"), [
    (WRITE, [WRITE]),
    (f"{READ} {WRITE}", [READ, WRITE]),
    (f"{WRITE}  {WRITE}", [WRITE]),
    ("api://other/scope", [READ]),
    (f"{WRITE} api://other/scope", [READ]),
    ("", [READ]),
    (WRITE + " " * (4096 - len(WRITE)), [WRITE]),
    (WRITE + " " * (4097 - len(WRITE)), [READ]),
], ids=["another-configured-scope", "every-configured-scope", "given-twice", "unconfigured", "one-unconfigured",
        "empty", "4096-characters", "4097-characters"])
def test_a_sign_in_link_asks_for_configured_scopes_only(local_rogue, scope, asked):
    app = rogue_app(local_rogue)
    start = app.get("/auth/login", {"next": "/todos", "scope": scope})
    assert start.status_int == 302 and asked_scopes(start.location) == asked


@pytest.mark.parametrize("hint", ["login_hint", "domain_hint"])
@pytest.mark.parametrize(("values", "sent"), [
    (["bob@contoso.example"], "bob@contoso.example"),
    (["b" * 256], "b" * 256),
    (["b" * 257], None),
    (["bob@contoso.example", "eve@contoso.example"], None),
], ids=["one", "256-characters", "257-characters", "given-twice"])
def test_a_sign_in_link_passes_a_hint_of_up_to_256_characters_given_once(local_rogue, hint, values, sent):
    app = rogue_app(local_rogue)
    start = app.get("/auth/login", [("next", "/todos"), *((hint, value) for value in values)])
    assert query_of(start.location).get(hint) == sent


@pytest.mark.parametrize(("next_values", "next_url"), [
    (["/todos/1"], "/todos/1"),
    (["/todos/1", "/todos/2"], "/"),
    ([], "/"),
], ids=["next", "next-twice-goes-home", "no-next"])
def test_the_sign_in_started_event_says_where_it_goes_back_to(local_rogue, next_values, next_url):
    told = Told()
    app = rogue_app(local_rogue, told)
    app.get("/auth/login", [("next", value) for value in next_values], status=302)
    (started,) = told.of("sign_in.started")
    assert started["next"] == next_url and started["claims_challenge"] is False


def test_the_sign_in_started_event_carries_the_first_200_characters_of_next(local_rogue):
    told = Told()
    app = rogue_app(local_rogue, told)
    next_url = "/todos/" + "x" * 300
    app.get("/auth/login", {"next": next_url}, status=302)
    assert [data["next"] for data in told.of("sign_in.started")] == [next_url[:200]]


# -- where an API caller's login_url comes back to (offline: the 401 needs no provider) --------------

@pytest.mark.parametrize(("referer", "back_to"), [
    ("http://localhost/todos?page=2", "/todos?page=2"),
    ("http://evil.example/todos?page=2", "/todos/1"),
    ("http://zz.example/todos?page=2", "/todos/1"),
    ("https://localhost/todos?page=2", "/todos/1"),
], ids=["a-page-of-this-app", "another-site-sorting-before", "another-site-sorting-after", "another-scheme"])
def test_an_api_callers_login_url_comes_back_to_the_calling_page_of_this_app_only(referer, back_to):
    app = make_testapp(OFFLINE_ISSUER)
    answer = app.get("/todos/1", headers={**JSON, "Referer": referer}, status=401)
    assert query_of(answer.json["login_url"])["next"] == back_to
