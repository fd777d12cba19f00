"""Building blocks for tests of API prefixes: an API behind the middleware, and real access tokens.

Valid tokens come from the devprovider for real: a user's through a sign-in of the web client
(``user_token``), an application's through msal's client credentials (``app_token``). Defective
ones are signed by :class:`~support.misbehaving.MisbehavingProvider`, against whose issuer
``rogue_api`` is configured.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any
from urllib.parse import parse_qs

import msal
import requests
import urllib3
import webtest

from devprovider import DevProvider
from msal_wsgi import ACQUIRE_TOKEN, CALLER, USER, InteractionRequired, MsalMiddleware, ProtectApi

from .apps import TODO_READ, TODO_WRITE, make_testapp, sign_in
from .misbehaving import ACCESS_TOKEN_AUDIENCE, MisbehavingProvider

TODO_API = "api://todo"
APP_READ, APP_WRITE = "ToDoList.Read.All", "ToDoList.ReadWrite.All"
#: The to-do API's rule: read scopes on GET, the write scope otherwise; the same for app roles.
TODO_RULE = ProtectApi(read=[TODO_READ, TODO_WRITE], write=[TODO_WRITE],
                       app_read=[APP_READ, APP_WRITE], app_write=[APP_WRITE])
DAEMONS = {"todo-daemon": "todo-daemon-secret", "todo-daemon-norole": "todo-daemon-norole-secret"}
ROGUE_READ, ROGUE_WRITE = "read", "write"


def api_echo_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Reports what the middleware handed over on an API prefix; ``?obo=SCOPES`` calls acquire_token
    (``&raise=1``: and lets InteractionRequired through to the middleware)."""
    caller, user = environ.get(CALLER), environ.get(USER)
    body: dict[str, Any] = {
        "path": environ.get("PATH_INFO"),
        "remote_user": environ.get("REMOTE_USER"),
        "caller": caller and {"id": caller.id, "app_id": caller.app_id, "app_only": caller.app_only,
                              "scopes": sorted(caller.scopes), "roles": sorted(caller.roles),
                              "tenant": caller.tenant},
        "user": user and {"id": user.id, "username": user.username},
        "acquire_token": ACQUIRE_TOKEN in environ,
        "session": "beaker.session" in environ and environ["beaker.session"].accessed(),
    }
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "obo" in query:
        try:
            token = environ[ACQUIRE_TOKEN](query["obo"][0].split())
            body["obo"] = {"value": token.value, "scopes": list(token.scopes), "expires_on": token.expires_on}
        except InteractionRequired as exc:
            if "raise" in query:
                raise
            body["obo"] = {"error": exc.reason}
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def api_settings(issuer: str, **overrides: Any) -> dict[str, Any]:
    """An API-only app: no redirect_uri, no credential, the to-do rule at /api/todolist."""
    options: dict[str, Any] = {"client_id": "todo-api", "oidc_authority": issuer, "api_audience": TODO_API,
                                   "protect": {"/api/todolist": TODO_RULE}}
    options.update(overrides)
    return options


def make_api(issuer: str, *, app: Any = api_echo_app, **overrides: Any) -> webtest.TestApp:
    """``app`` behind an API-only MsalMiddleware, without any session middleware, driven by WebTest (lint on)."""
    middleware = MsalMiddleware(app, **api_settings(issuer, **overrides))
    testapp = webtest.TestApp(middleware)
    testapp.middleware = middleware  # type: ignore[attr-defined]
    return testapp


def rogue_api(rogue: MisbehavingProvider, **overrides: Any) -> webtest.TestApp:
    """An API at /api whose tokens the misbehaving provider signs (audience ``api://rogue``)."""
    options: dict[str, Any] = {"api_audience": ACCESS_TOKEN_AUDIENCE,
                                   "protect": {"/api": ProtectApi(read=[ROGUE_READ], write=[ROGUE_WRITE])}}
    options.update(overrides)
    return make_api(rogue.issuer, **options)


def access_claims(rogue: MisbehavingProvider, **changes: Any) -> dict[str, Any]:
    """The claims of a correct user's access token for ``api://rogue``; a value of None removes the claim."""
    now = int(time.time())
    claims = {"iss": rogue.issuer, "aud": ACCESS_TOKEN_AUDIENCE, "sub": "rogue-user", "azp": "rogue-client",
              "scp": f"{ROGUE_READ} {ROGUE_WRITE}", "iat": now, "nbf": now, "exp": now + 600}
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def user_token(provider: DevProvider, login: str = "alice", scope: str = TODO_READ) -> str:
    """A user's access token for ``scope``, from a real sign-in of the web client ``todo-web``."""
    web = make_testapp(provider)
    page = sign_in(web, provider, "/todos", login=login)
    if scope == TODO_READ:
        return str(page.json["token"]["value"])
    acquired = web.get("/todos", {"acquire": scope}).json["acquired"]
    assert "value" in acquired, acquired
    return str(acquired["value"])


def app_token(provider: DevProvider, client_id: str = "todo-daemon", resource: str = TODO_API) -> str:
    """An application's own access token for ``resource`` (client credentials, through msal)."""
    client = msal.ConfidentialClientApplication(client_id, client_credential=DAEMONS[client_id],
                                                oidc_authority=provider.issuer)
    result = client.acquire_token_for_client([f"{resource}/.default"])
    assert "access_token" in result, result
    return str(result["access_token"])


def bearer(token: str, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}"}


class JsonNetwork(requests.adapters.HTTPAdapter):
    """A fake of the network only, for hosts this machine cannot reach: each https request gets the JSON
    document :meth:`answer` gives (200), or ``missing`` (404, default ``{}``) when it gives None;
    :attr:`asked` logs every URL asked, query included."""

    def __init__(self, missing: object = None) -> None:
        super().__init__()
        self.missing = {} if missing is None else missing
        self.asked: list[str] = []

    def answer(self, request: requests.PreparedRequest) -> object | None:
        raise NotImplementedError

    def send(self, request: requests.PreparedRequest, *args: object, **kwargs: object) -> requests.Response:
        self.asked.append(str(request.url))
        document = self.answer(request)
        body = json.dumps(self.missing if document is None else document).encode()
        raw = urllib3.HTTPResponse(body=io.BytesIO(body), status=404 if document is None else 200,
                                   preload_content=False, headers={"Content-Type": "application/json"})
        return self.build_response(request, raw)

    def session(self) -> requests.Session:
        """A requests.Session (for the ``http_session`` setting) whose https requests this fake answers."""
        session = requests.Session()
        session.mount("https://", self)
        return session


class EntraOffline(JsonNetwork):
    """login.microsoftonline.com, which this machine cannot reach, for an ``authority``: a fake of the
    network only. It serves Entra's discovery document for the authority's tenant (``organizations``:
    the ``{tenantid}`` template), the misbehaving provider's JWKS, whose keys sign the tokens, and
    :attr:`token_response` at the token endpoint (404 while it is empty)."""

    def __init__(self, rogue: MisbehavingProvider, tenant: str = "organizations") -> None:
        super().__init__()
        self.rogue = rogue
        self.authority = f"https://login.microsoftonline.com/{tenant}"
        self.token_response: dict[str, Any] = {}
        issuer_tenant = "{tenantid}" if tenant in ("organizations", "common") else tenant
        self.discovery = {
            "issuer": f"https://login.microsoftonline.com/{issuer_tenant}/v2.0",
            "authorization_endpoint": f"{self.authority}/oauth2/v2.0/authorize",
            "token_endpoint": f"{self.authority}/oauth2/v2.0/token",
            "jwks_uri": f"{self.authority}/discovery/v2.0/keys",
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "response_modes_supported": ["query", "fragment", "form_post"],
        }

    def answer(self, request: requests.PreparedRequest) -> object | None:
        url = str(request.url).split("?")[0]
        if url == self.discovery["jwks_uri"]:
            return self.rogue.public_jwks()
        if url == f"{self.authority}/v2.0/.well-known/openid-configuration":
            return self.discovery
        if url == self.discovery["token_endpoint"]:
            return self.token_response or None
        return None
