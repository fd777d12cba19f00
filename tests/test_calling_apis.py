"""The wrapped app calls a web API with the user's token, and answers its claims challenges.

The to-do API here is a real HTTP server on loopback; the web app calls it with
``requests`` and :class:`msal_wsgi.BearerAuth`, as an app in production would.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import requests
from support.apps import claims_of, complete_sign_in, make_testapp, sign_in
from support.urls import query_of
from webob import Request, Response
from webob.dec import wsgify

from msal_wsgi import MIDDLEWARE, BearerAuth, MsalWsgiError, Protect, claims_challenge

CLAIMS = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'
ENCODED = base64.b64encode(CLAIMS.encode()).decode()


class TodoApi:
    """A to-do API that reads the bearer token's audience and subject, and can demand claims once."""

    def __init__(self) -> None:
        self.audiences: list[str] = []
        self.challenge: str | None = None

    @wsgify
    def __call__(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not token:
            return Response(status=401, headers={"WWW-Authenticate": "Bearer"})
        claims = claims_of(token)
        self.audiences.append(claims["aud"])
        if self.challenge:
            header = f'Bearer realm="", error="insufficient_claims", claims="{self.challenge}"'
            self.challenge = None
            return Response(status=401, headers={"WWW-Authenticate": header})
        return Response(json_body=[{"owner": claims["sub"], "description": "water the plants"}])


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def todo_api() -> Iterator[SimpleNamespace]:
    api = TodoApi()
    server = make_server("127.0.0.1", 0, api, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(api=api, url=f"http://127.0.0.1:{server.server_port}/todos")
    finally:
        server.shutdown()
        server.server_close()


def web_app(api_url: str) -> Any:
    """The web app: its /todos pages show the to-do API's answer; ``?scopes=`` picks another token."""

    @wsgify
    def app(request: Request) -> Response:
        scopes = request.GET.get("scopes")
        auth = BearerAuth(request.environ, scopes=scopes.split() if scopes else None)
        answer = requests.get(api_url, auth=auth, timeout=10)
        challenge = claims_challenge(answer)
        if challenge:
            return request.environ[MIDDLEWARE].start_sign_in(request.environ, claims_challenge=challenge)
        return Response(json_body={"status": answer.status_code, "todos": answer.json()})

    return app


def test_bearer_auth_sends_the_routes_token(provider, todo_api):
    app = make_testapp(provider, app=web_app(todo_api.url))
    page = sign_in(app, provider, "/todos", login="alice")
    assert page.json == {"status": 200, "todos": [{"owner": "alice", "description": "water the plants"}]}
    assert todo_api.api.audiences == ["api://todo"]


def test_bearer_auth_with_scopes_acquires_another_resource_silently(provider, todo_api):
    app = make_testapp(provider, app=web_app(todo_api.url))
    sign_in(app, provider, "/todos")
    mark = provider.mark()
    assert app.get("/todos", {"scopes": "api://r3/access"}).json["status"] == 200
    assert todo_api.api.audiences[-1] == "api://r3"
    assert len(provider.token_requests_since(mark)) == 1  # one refresh-token redemption
    assert provider.requests_since(mark, "/auth") == []  # and no interaction
    mark = provider.mark()
    app.get("/todos", {"scopes": "api://r3/access"})
    assert provider.requests_since(mark) == []  # then served from the session


def test_claims_challenge_sends_the_user_to_sign_in_again_and_back(provider, todo_api):
    started: list[bool] = []  # an on_event hook, counting sign-ins with a claims challenge
    app = make_testapp(provider, app=web_app(todo_api.url),
                       on_event=lambda name, data: started.append(data["claims_challenge"])
                       if name == "sign_in.started" else None)
    signed_in = complete_sign_in(app, provider, app.get("/todos/list?sort=due"))
    todo_api.api.challenge = ENCODED
    challenged = signed_in.follow()
    assert challenged.status_int == 302 and challenged.location.startswith(provider.issuer + "/auth?")
    assert json.loads(query_of(challenged.location)["claims"]) == json.loads(CLAIMS)
    back = complete_sign_in(app, provider, challenged)
    assert back.status_int == 302 and back.location.endswith("/todos/list?sort=due")
    assert back.follow().json["todos"][0]["owner"] == "alice"
    assert started == [False, True]


def test_bearer_auth_on_a_sign_in_only_path_says_what_is_missing(provider, todo_api):
    app = make_testapp(provider, app=web_app(todo_api.url), protect={"/profile": Protect()})
    with pytest.raises(MsalWsgiError, match="no access token"):
        sign_in(app, provider, "/profile")


def _answer(status: int, header: str | None) -> SimpleNamespace:
    return SimpleNamespace(status_code=status, headers={"WWW-Authenticate": header} if header else {})


@pytest.mark.parametrize(("status", "header", "expected"), [
    (401, f'Bearer realm="", error="insufficient_claims", claims="{ENCODED}"', CLAIMS),
    (401, f"Bearer error=insufficient_claims, claims={ENCODED}", CLAIMS),
    (401, f'Bearer claims="{base64.urlsafe_b64encode(CLAIMS.encode()).decode().rstrip("=")}"', CLAIMS),
    (401, f'PoP nonce="abc", Bearer realm="api", claims="{ENCODED}"', CLAIMS),
    (401, f'Basic realm="x", claims="{ENCODED}"', None),
    (403, f'Bearer claims="{ENCODED}"', None),
    (401, 'Bearer error="invalid_token"', None),
    (401, None, None),
    (401, 'Bearer claims="not base64!"', None),
    (401, f'Bearer claims="{base64.b64encode(b"[1, 2]").decode()}"', None),
], ids=["entra", "unquoted", "base64url-unpadded", "second-challenge", "other-scheme", "not-401",
        "no-claims", "no-header", "bad-base64", "not-an-object"])
def test_claims_challenge_parsing(status, header, expected):
    assert claims_challenge(_answer(status, header)) == expected
