"""An API calls a downstream API for its caller: Entra's on-behalf-of grant, end to end.

The devprovider registers the to-do API as the confidential client ``todo-api`` and
implements the grant msal sends (``urn:ietf:params:oauth:grant-type:jwt-bearer`` with
``requested_token_use=on_behalf_of``): a user's token for ``api://todo`` becomes that user's
token for ``api://r1``. With a credential, ``environ['msal_wsgi.acquire_token']`` on an API
prefix does the exchange, and keeps each downstream token per caller until it expires.
"""

from __future__ import annotations

import base64
import json
import logging

import jwt
import pytest
import requests
from support.api import app_token, bearer, make_api, user_token
from support.apps import in_parallel

from devprovider import DevProvider
from msal_wsgi import MIDDLEWARE, BearerAuth
from msal_wsgi.calling import bearer_params

DOWNSTREAM = "api://r1/access"


@pytest.fixture(scope="module")
def users(devprovider: DevProvider) -> dict[str, str]:
    return {"alice": user_token(devprovider, "obo-alice"), "bob": user_token(devprovider, "obo-bob")}


@pytest.fixture
def api(provider: DevProvider):  # type: ignore[no-untyped-def]
    return make_api(provider.issuer, client_secret="todo-api-secret")


def claims(token: str) -> dict:  # type: ignore[type-arg]
    return jwt.decode(token, options={"verify_signature": False})


def test_the_api_gets_a_token_of_its_caller_for_the_downstream_api(api, users, provider, caplog):
    mark = provider.mark()
    with caplog.at_level(logging.INFO, logger="msal_wsgi"):
        body = api.get("/api/todolist", {"obo": DOWNSTREAM}, headers=bearer(users["alice"])).json
    assert body["acquire_token"] is True and body["obo"]["scopes"] == [DOWNSTREAM]
    downstream = claims(body["obo"]["value"])
    assert downstream["aud"] == "api://r1" and downstream["sub"] == "obo-alice"
    assert downstream["client_id"] == "todo-api" and downstream["scope"] == DOWNSTREAM
    assert len(provider.token_requests_since(mark)) == 1
    assert f"token acquired on behalf of obo-alice (scopes {DOWNSTREAM})" in caplog.text
    assert users["alice"] not in caplog.text and body["obo"]["value"] not in caplog.text


def test_the_downstream_token_is_kept_per_caller(api, users, provider):
    first = api.get("/api/todolist", {"obo": DOWNSTREAM}, headers=bearer(users["alice"])).json["obo"]["value"]
    mark = provider.mark()
    again = api.get("/api/todolist", {"obo": DOWNSTREAM}, headers=bearer(users["alice"])).json["obo"]["value"]
    assert again == first and provider.token_requests_since(mark) == []
    bobs = api.get("/api/todolist", {"obo": DOWNSTREAM}, headers=bearer(users["bob"])).json["obo"]["value"]
    assert claims(bobs)["sub"] == "obo-bob" and len(provider.token_requests_since(mark)) == 1


def test_parallel_requests_of_one_caller_exchange_once(api, users, provider):
    mark = provider.mark()
    tokens = set(in_parallel(8, lambda: api.get("/api/todolist", {"obo": DOWNSTREAM},
                                                headers=bearer(users["bob"])).json["obo"]["value"]))
    assert len(tokens) == 1 and claims(tokens.pop())["sub"] == "obo-bob"
    assert len(provider.token_requests_since(mark)) == 1


def test_an_app_only_caller_has_no_one_to_act_for(api, provider):
    assert api.get("/api/todolist", headers=bearer(app_token(provider))).json["acquire_token"] is False


def test_without_a_credential_there_is_no_on_behalf_of(provider, users):
    assert make_api(provider.issuer).get("/api/todolist", headers=bearer(users["alice"])).json[
        "acquire_token"] is False


def test_a_refused_exchange_is_a_403_json_for_the_client_never_a_redirect(api, users):
    answer = api.get("/api/todolist", {"obo": "api://undeclared/x", "raise": "1"},
                     headers={**bearer(users["alice"]), "Accept": "text/html"}, status=403)
    assert answer.json["error"] == "interaction_required" and "Location" not in answer.headers
    assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="api://todo", error="interaction_required"')


def test_a_rejected_api_credential_is_a_503_json_naming_no_secret(provider, users, caplog):
    api = make_api(provider.issuer, client_secret="wrong-secret")
    with caplog.at_level(logging.ERROR, logger="msal_wsgi"):
        answer = api.get("/api/todolist", {"obo": DOWNSTREAM}, headers=bearer(users["alice"]), status=503)
    assert answer.json["error"] == "server_error" and "Retry-After" not in answer.headers
    assert "rejected this application's credentials" in caplog.text and "wrong-secret" not in caplog.text


def test_a_claims_challenge_from_the_app_reaches_the_client_as_insufficient_claims(provider, users):
    challenge = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        return environ[MIDDLEWARE].start_sign_in(environ, claims_challenge=challenge)(environ, start_response)

    answer = make_api(provider.issuer, app=app).get("/api/todolist", headers=bearer(users["alice"]), status=401)
    params = bearer_params(answer.headers["WWW-Authenticate"])
    assert params["error"] == "insufficient_claims" and answer.json["error"] == "insufficient_claims"
    assert base64.urlsafe_b64decode(params["claims"]).decode() == challenge


def test_bearer_auth_sends_the_on_behalf_of_token(provider, users):
    def app(environ, start_response):  # type: ignore[no-untyped-def]
        sent = BearerAuth(environ, scopes=[DOWNSTREAM])(requests.Request("GET", "https://downstream.example").prepare())
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"authorization": sent.headers["Authorization"]}).encode()]

    api = make_api(provider.issuer, app=app, client_secret="todo-api-secret")
    authorization = api.get("/api/todolist", headers=bearer(users["bob"])).json["authorization"]
    assert authorization.startswith("Bearer ") and claims(authorization[7:])["aud"] == "api://r1"
