"""What msal_wsgi relies on in msal's internals, checked against the installed msal.

``msal_wsgi/_msal.py`` gives one :class:`msal.ConfidentialClientApplication` per process a token
cache *router* (``token_cache=``: it forwards every attribute to the cache of the operation in
progress, held in a ContextVar) and its own HTTP client (``http_client=``: it remembers the
discovery document and raises for 429/5xx answers to code redemption), plus a dict as msal's
``http_cache``. That works only while msal builds and uses its client the way these tests pin.
Each test names one thing we rely on; when one fails on a new msal, the router or the HTTP client
has to change before ``setup.cfg`` admits that version.

The HTTP client here is a fake of the *network*, not of msal: it serves a discovery document
and canned token-endpoint answers and records what msal sends, so that what is under test is
msal's own behaviour. Nothing here touches the network, and nothing of msal is patched; the
only patch is the stdlib clock, for msal's expiry times.

Only :func:`test_our_router_defines_exactly_the_methods_msal_may_capture` imports msal_wsgi, so
the rest runs in a bare venv with msal, pytest, pyjwt and requests; this is how the msal versions
admitted in ``setup.cfg`` were chosen (each one in its own venv)::

    python -m pytest tests/test_msal_contract.py -q -p no:cacheprovider --noconftest \\
        -c /dev/null --rootdir /tmp -k "not router"

Swept on msal 1.31.0 to 1.39.0 (the newest): passed on 1.33.0, 1.34.0, 1.35.0, 1.35.1, 1.36.0,
1.37.0, 1.38.0 and 1.39.0. Failed on 1.31.0, 1.31.1 and 1.32.0: ``import msal`` leaves
``msal.exceptions`` unset, so msal_wsgi._msal cannot even be imported; and on 1.32.1 to 1.32.3:
every 5xx answer makes msal raise KeyError (it builds MsalServiceError without ``error=``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import itertools
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import msal
import pytest
import requests
from msal.exceptions import MsalServiceError

CLIENT_ID = "contract-client"
AUTHORITY = "https://id.example/realm"
DISCOVERY_URL = AUTHORITY + "/.well-known/openid-configuration"
TOKEN_URL = AUTHORITY + "/token"
DISCOVERY = {
    "issuer": AUTHORITY,
    "authorization_endpoint": AUTHORITY + "/authorize",
    "token_endpoint": TOKEN_URL,
    "end_session_endpoint": AUTHORITY + "/logout",
    "jwks_uri": AUTHORITY + "/jwks",
    "response_modes_supported": ["query", "form_post"],
}
REDIRECT_URI = "https://app.example/auth/callback"
SCOPES = ["https://api.example/read"]
#: What a 5xx answer makes msal raise: MsalServiceError, or the HTTPError of the answer's own
#: raise_for_status() (msal up to 1.32.0); msal_wsgi's ``_UNAVAILABLE`` catches both.
SERVER_ERRORS = (MsalServiceError, requests.HTTPError)
#: The cache methods our router defines for real, because msal may capture them as bound methods
#: (``on_removing_rt=self.token_cache.remove_rt``...); everything else it looks up late.
FORWARDED = frozenset({"add", "remove_rt", "update_rt"})
_SIGNING_KEY = "contract-test-signing-key-of-32+bytes"  # msal does not check id_token signatures
_serial = itertools.count(1)


# --- The fake network ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One canned HTTP answer; ``raises`` makes the client raise instead, as ours does for 5xx."""

    status: int = 200
    body: Any = None  # a dict is sent as JSON, a str as is
    headers: dict[str, str] = field(default_factory=dict)
    raises: Exception | None = None


@dataclass(frozen=True)
class FakeResponse:
    """The parts of the :class:`requests.Response` our HTTP client returns that msal reads
    (msal's own ``oauth2cli.http.Response`` shape)."""

    status_code: int
    text: str
    headers: dict[str, str]

    def raise_for_status(self) -> None:
        """As requests does; msal up to 1.32.0 calls it for a 5xx."""
        if self.status_code >= 400:
            raise requests.HTTPError(f"{self.status_code} Error", response=self)


@dataclass(frozen=True)
class Request:
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    @property
    def grant_type(self) -> Any:
        data = self.kwargs.get("data")
        return data.get("grant_type") if isinstance(data, dict) else None


class FakeNetwork:
    """msal's ``http_client``: the provider's discovery document and token endpoint, recorded.

    ``answer(grant_type, *answers)`` queues the token endpoint's answers to that grant; the
    last one repeats.
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.discovery = Answer(body=DISCOVERY)
        self._answers: dict[str, list[Answer]] = {}

    def answer(self, grant_type: str, *answers: Answer) -> None:
        self._answers[grant_type] = list(answers)

    def posts(self, grant_type: str) -> list[Request]:
        return [r for r in self.requests if r.method == "POST" and r.grant_type == grant_type]

    def get(self, *args: Any, **kwargs: Any) -> FakeResponse:
        self.requests.append(Request("GET", args, kwargs))
        return _respond(self.discovery if args and args[0] == DISCOVERY_URL else Answer(404, "not found"))

    def post(self, *args: Any, **kwargs: Any) -> FakeResponse:
        request = Request("POST", args, kwargs)
        self.requests.append(request)
        queue = self._answers.get(request.grant_type) if args and args[0] == TOKEN_URL else None
        if not queue:
            return _respond(Answer(400, {"error": "unsupported_grant_type"}))
        return _respond(queue.pop(0) if len(queue) > 1 else queue[0])

    def close(self) -> None:
        pass


def _respond(answer: Answer) -> FakeResponse:
    if answer.raises is not None:
        raise answer.raises
    text = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
    headers = {"Content-Type": "application/json", **answer.headers}
    return FakeResponse(answer.status, text, headers)


def id_token(sub: str = "user-1", nonce: str | None = None) -> str:
    now = int(time.time())
    claims = {"iss": AUTHORITY, "sub": sub, "aud": CLIENT_ID, "iat": now, "exp": now + 3600,
              "preferred_username": f"{sub}@example.com"}
    if nonce is not None:
        claims["nonce"] = nonce
    return jwt.encode(claims, _SIGNING_KEY, algorithm="HS256")


def tokens(*, refresh_token: str | None = "rt-1", expires_in: int = 3600, idt: str | None = None,
           refresh_in: int | None = None) -> dict[str, Any]:
    """A successful token endpoint answer: a fresh access token ``at-N``, and what is asked for."""
    body: dict[str, Any] = {"access_token": f"at-{next(_serial)}", "token_type": "Bearer",
                            "expires_in": expires_in, "scope": " ".join(SCOPES)}
    if refresh_token:
        body["refresh_token"] = refresh_token
    if idt:
        body["id_token"] = idt
    if refresh_in:
        body["refresh_in"] = refresh_in
    return body


def invalid_grant() -> Answer:
    return Answer(400, {"error": "invalid_grant", "error_description": "the refresh token was revoked"})


# --- The recording token cache ------------------------------------------------------------------


@dataclass(frozen=True)
class Lookup:
    name: str
    operation: str
    thread: int


@dataclass(frozen=True)
class Call:
    name: str
    looked_up_in: str
    called_in: str


class RecordingCache:
    """Stands in for our router as msal's ``token_cache``: every attribute msal looks up is
    forwarded to the real :class:`msal.SerializableTokenCache` of the operation in progress,
    and recorded, with the operation it was looked up in. A bound method msal looks up in one
    operation and calls in another is one msal captured: our router must define it for real.
    """

    def __init__(self) -> None:
        self._lookups: list[Lookup] = []
        self._calls: list[Call] = []
        self._operation = "none"
        self._current = msal.SerializableTokenCache()

    def __getattr__(self, name: str) -> Any:
        self._lookups.append(Lookup(name, self._operation, threading.get_ident()))
        value = getattr(self._current, name)
        if not inspect.ismethod(value):
            return value
        looked_up_in = self._operation

        def forward(*args: Any, **kwargs: Any) -> Any:
            self._calls.append(Call(name, looked_up_in, self._operation))
            return getattr(self._current, name)(*args, **kwargs)

        return forward

    @contextlib.contextmanager
    def operation(self, name: str, cache: msal.SerializableTokenCache | None = None
                  ) -> Iterator[msal.SerializableTokenCache]:
        """Route to ``cache`` (a new, empty one by default) for the operation ``name``, like ``_using``."""
        self._operation, self._current = name, cache if cache is not None else msal.SerializableTokenCache()
        try:
            yield self._current
        finally:
            self._operation, self._current = "none", msal.SerializableTokenCache()

    @property
    def lookups(self) -> list[Lookup]:
        return list(self._lookups)

    @property
    def calls(self) -> list[Call]:
        return list(self._calls)


# --- Building and driving msal ------------------------------------------------------------------


@dataclass
class Msal:
    """One app as msal_wsgi builds it, with its recording cache, fake network and http_cache."""

    app: msal.ConfidentialClientApplication
    cache: RecordingCache
    network: FakeNetwork
    http_cache: dict[Any, Any]

    def sign_in(self, sub: str = "user-1", **answer: Any) -> tuple[dict[str, Any], msal.SerializableTokenCache]:
        """initiate, then redeem a code with the nonce of ``auth_uri``; the result and the user's cache."""
        flow = self.initiate()
        self.network.answer("authorization_code", Answer(body=tokens(idt=id_token(sub, nonce_of(flow)), **answer)))
        with self.cache.operation("redeem") as user_cache:
            result = self.app.acquire_token_by_auth_code_flow(flow, {"state": flow["state"], "code": f"code-{sub}"})
        return result, user_cache

    def initiate(self, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("response_mode", "form_post")
        with self.cache.operation("initiate"):
            flow: dict[str, Any] = self.app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI, **kwargs)
        return flow

    def silent(self, user_cache: msal.SerializableTokenCache, operation: str = "silent",
               **kwargs: Any) -> dict[str, Any] | None:
        """acquire_token_silent_with_error for the cache's one account, as msal_wsgi calls it."""
        with self.cache.operation(operation, user_cache):
            account = self.app.get_accounts()[0]
            result: dict[str, Any] | None = self.app.acquire_token_silent_with_error(
                SCOPES, account, claims_challenge=kwargs.pop("claims_challenge", None), **kwargs)
        return result


def build(network: FakeNetwork | None = None) -> Msal:
    network = network or FakeNetwork()
    cache, http_cache = RecordingCache(), {}
    with cache.operation("construction"):
        app = msal.ConfidentialClientApplication(
            CLIENT_ID, client_credential="secret", authority=None, oidc_authority=AUTHORITY,
            token_cache=cache, http_client=network, http_cache=http_cache)
    return Msal(app, cache, network, http_cache)


def nonce_of(flow: dict[str, Any]) -> str:
    """The nonce msal sent in ``auth_uri``: what the provider puts in the id_token."""
    return parse_qs(urlsplit(flow["auth_uri"]).query)["nonce"][0]


def refresh_tokens_in(cache: msal.SerializableTokenCache) -> list[str]:
    return [rt["secret"] for rt in cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN)]


def every_operation() -> Msal:
    """Everything msal_wsgi asks of msal, once each: sign-in, silent from cache, refresh with
    rotation, a refused refresh, and the client credentials check."""
    m = build()
    _, user_cache = m.sign_in(expires_in=100)  # msal deems < 300 s left expired: the silent call refreshes
    m.network.answer("refresh_token", Answer(body=tokens(refresh_token="rt-2", idt=id_token())), invalid_grant())
    m.silent(user_cache, "refresh with rotation")
    m.silent(user_cache, "silent from cache")
    m.silent(user_cache, "refused refresh", claims_challenge='{"access_token":{"acrs":{"essential":true}}}')
    m.network.answer("client_credentials", Answer(401, {"error": "invalid_client"}))
    with m.cache.operation("client credentials"):
        m.app.acquire_token_for_client([f"{CLIENT_ID}/.default"])
    return m


@pytest.fixture(scope="module")
def fresh_import() -> dict[str, Any]:
    """What a new interpreter has right after ``import msal``, as msal_wsgi._msal sees it at its import."""
    probe = ("import json, logging, msal; print(json.dumps({'exceptions': hasattr(msal, 'exceptions'), "
             "'loggers': [n for n in logging.Logger.manager.loggerDict if n.split('.')[0] == 'msal']}))")
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    answer: dict[str, Any] = json.loads(output)
    return answer


@pytest.fixture(scope="module")
def everything() -> Msal:
    return every_operation()


@pytest.fixture
def m() -> Msal:
    return build()


class Clock:
    """time.time, moved by hand: msal's token expiry and its http_cache read it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock(time.time())
    monkeypatch.setattr(time, "time", clock)
    return clock


# --- 1. The token cache router ------------------------------------------------------------------


def test_msal_keeps_the_token_cache_object_it_is_given(m: Msal) -> None:
    """msal stores ``token_cache=`` as is (``token_cache or TokenCache()``: the router must be truthy)."""
    assert m.app.token_cache is m.cache


def test_methods_msal_binds_at_construction_are_only_those_we_forward_for_real(everything: Msal) -> None:
    """msal builds its client at construction and binds ``remove_rt``/``update_rt`` there; any other
    method bound then would reach the construction's cache, not the user's."""
    bound = {lookup.name for lookup in everything.cache.lookups if lookup.operation == "construction"}
    assert bound <= FORWARDED, bound - FORWARDED


def test_msal_keeps_no_cache_method_across_operations_but_add_remove_rt_and_update_rt(
        everything: Msal) -> None:
    """A method msal keeps across operations must be a real method of the router, which
    forwards at call time; every other one msal looks up anew in each operation."""
    captured = {call.name for call in everything.cache.calls if call.looked_up_in != call.called_in}
    assert captured <= FORWARDED, captured - FORWARDED


def test_every_cache_attribute_msal_looks_up_exists_on_serializable_token_cache(everything: Msal) -> None:
    """The router forwards by ``__getattr__`` to a :class:`msal.SerializableTokenCache`: msal
    must ask it for nothing a real one does not have."""
    names = {lookup.name for lookup in everything.cache.lookups}
    assert {"search", "add"} <= names  # the operations did use the cache
    real = msal.SerializableTokenCache()
    assert {name for name in names if not hasattr(real, name)} == set()


def test_msal_uses_the_token_cache_on_the_calling_thread(everything: Msal) -> None:
    """The router's ContextVar is set by the caller: msal must not reach the cache from another thread."""
    assert {lookup.thread for lookup in everything.cache.lookups} == {threading.get_ident()}


def test_a_rotated_refresh_token_replaces_the_old_one_in_the_cache_of_the_operation(m: Msal) -> None:
    """An RT rotation (a new ``refresh_token`` in the answer) goes through the router, to the
    user's cache of that operation: only the new refresh token is left there."""
    _, user_cache = m.sign_in(expires_in=100)
    m.network.answer("refresh_token", Answer(body=tokens(refresh_token="rt-2")))
    result = m.silent(user_cache)
    assert result is not None and "access_token" in result
    assert refresh_tokens_in(user_cache) == ["rt-2"]


def test_a_refreshed_access_token_is_served_from_the_cache_next_time(m: Msal) -> None:
    """msal files a refreshed token under the account of the answer's ``client_info`` or
    ``id_token``; with either, the next silent call is served from the cache. (Without both,
    msal files it under no account and refreshes on every silent call: msal_wsgi's session fast
    path, which finds the token by its secret, is what spares those providers.)"""
    _, user_cache = m.sign_in(expires_in=100)
    m.network.answer("refresh_token", Answer(body=tokens(idt=id_token())))
    first, second = m.silent(user_cache), m.silent(user_cache)
    assert first is not None and second is not None
    assert second["access_token"] == first["access_token"]
    assert len(m.network.posts("refresh_token")) == 1


def test_an_invalid_grant_to_a_silent_refresh_is_an_error_dict(m: Msal) -> None:
    """A refused refresh (400 ``invalid_grant``) is a result dict with ``error`` and
    ``error_description``, not an exception; msal keeps the refresh token (another scope may still work)."""
    _, user_cache = m.sign_in(expires_in=100)
    m.network.answer("refresh_token", invalid_grant())
    result = m.silent(user_cache)
    assert result is not None
    assert result["error"] == "invalid_grant" and result["error_description"]
    assert refresh_tokens_in(user_cache) == ["rt-1"]


def test_has_state_changed_is_false_after_deserialize_and_true_after_a_refresh(m: Msal) -> None:
    """msal_wsgi writes the session's cache back only when ``has_state_changed`` says so."""
    _, signed_in = m.sign_in(expires_in=100)
    user_cache = msal.SerializableTokenCache()
    user_cache.deserialize(signed_in.serialize())
    assert user_cache.has_state_changed is False
    m.network.answer("refresh_token", Answer(body=tokens()))
    m.silent(user_cache)
    assert user_cache.has_state_changed is True


def test_our_router_defines_exactly_the_methods_msal_may_capture() -> None:
    """Of the cache's attributes, the router (``CacheRouter`` in msal_wsgi._msal, ``_CacheRouter``
    in the older msal_wsgi._client) defines for real exactly those this file allows msal to
    capture, and forwards the rest; its own methods (``using``) are no cache attribute."""
    try:
        module = importlib.import_module("msal_wsgi._msal")
    except ModuleNotFoundError:
        module = importlib.import_module("msal_wsgi._client")
    router = getattr(module, "CacheRouter", None) or module._CacheRouter
    cache_attributes = set(dir(msal.SerializableTokenCache()))
    defined = {name for name in vars(router) if not name.startswith("__")}
    assert defined & cache_attributes == FORWARDED
    assert "__getattr__" in vars(router)


# --- 2. The HTTP client -------------------------------------------------------------------------


def test_discovery_is_one_get_of_the_well_known_url_at_construction(m: Msal) -> None:
    """msal GETs ``<oidc_authority>/.well-known/openid-configuration`` once, while the app is built:
    msal_wsgi's HTTP client keeps that answer (msal does not expose the document) for
    ``end_session_endpoint`` and ``check``."""
    assert [(r.method, r.args) for r in m.network.requests] == [("GET", (DISCOVERY_URL,))]
    m.initiate()
    m.app.get_accounts()
    assert len(m.network.requests) == 1


def test_token_requests_are_posts_to_the_token_endpoint_with_a_data_dict_naming_the_grant(
        everything: Msal) -> None:
    """msal calls ``post(url, data=<dict>, ...)`` with the url as the one positional argument, and a
    ``grant_type`` our HTTP client can read; every keyword is one requests accepts, as ours passes
    them on to a :class:`requests.Session`."""
    accepted = set(inspect.signature(requests.Session.request).parameters)
    posts = [r for r in everything.network.requests if r.method == "POST"]
    assert [r.grant_type for r in posts] == ["authorization_code", "refresh_token", "refresh_token",
                                            "client_credentials"]
    for request in posts:
        assert request.args == (TOKEN_URL,)
        assert isinstance(request.kwargs["data"], dict)
        assert set(request.kwargs) <= accepted


def test_every_get_has_the_url_as_its_one_positional_argument_and_keywords_requests_accepts(
        everything: Msal) -> None:
    """Our ``get(url, **kwargs)`` passes the keywords on to requests."""
    accepted = set(inspect.signature(requests.Session.request).parameters)
    gets = [r for r in everything.network.requests if r.method == "GET"]
    assert gets and all(len(r.args) == 1 and set(r.kwargs) <= accepted for r in gets)


@pytest.mark.parametrize("answer, error", [
    (Answer(404, "no such realm"), ValueError),
    (Answer(200, "<html>not json</html>"), ValueError),
    (Answer(503, "down"), SERVER_ERRORS),
    (Answer(raises=requests.ConnectionError("refused")), requests.ConnectionError),
], ids=["404", "not-json", "503", "connection-error"])
def test_a_failed_discovery_fails_construction_with_value_error_msal_service_error_or_ours(
        answer: Answer, error: type[Exception] | tuple[type[Exception], ...]) -> None:
    """The app cannot be built without discovery; what it raises is what building must catch:
    ValueError, what our HTTP client raised, and for a 5xx one of SERVER_ERRORS (since msal
    1.32.1 MsalServiceError, which is no ValueError and no requests exception)."""
    network = FakeNetwork()
    network.discovery = answer
    with pytest.raises(error):
        build(network)


def test_an_exception_from_post_at_code_redemption_propagates_and_is_not_replayed(m: Msal) -> None:
    """msal replays a 429/5xx answer to code redemption under a key without the code (msal
    1.39: it hashes ``data.get("refresh_token")``), so our post raises requests.HTTPError for
    those: msal lets the exception through and never caches it, so the next try reaches us."""
    flow = m.initiate()
    failure = requests.HTTPError("503 from the token endpoint")
    m.network.answer("authorization_code", Answer(raises=failure))
    for _ in range(2):
        with m.cache.operation("redeem"), pytest.raises(requests.HTTPError) as raised:
            m.app.acquire_token_by_auth_code_flow(flow, {"state": flow["state"], "code": "code-1"})
        assert raised.value is failure
    assert len(m.network.posts("authorization_code")) == 2


def test_a_5xx_answer_to_a_refresh_raises_a_server_error_whose_message_names_only_the_status(m: Msal) -> None:
    """One of SERVER_ERRORS; msal_wsgi logs ``str()`` of an MsalServiceError (of anything else
    only its type): ``HTTP Error: 503``, never the URL or the body."""
    _, user_cache = m.sign_in(expires_in=100)
    m.network.answer("refresh_token", Answer(503, "upstream secret-body"))
    with pytest.raises(SERVER_ERRORS) as raised:
        m.silent(user_cache)
    if isinstance(raised.value, MsalServiceError):
        assert "503" in str(raised.value)
        assert "secret-body" not in str(raised.value) and "id.example" not in str(raised.value)


@pytest.mark.parametrize("headers, replayed_for", [({}, 5), ({"Retry-After": "30"}, 30)],
                         ids=["no-retry-after", "retry-after-30"])
def test_msal_replays_a_5xx_to_a_refresh_for_its_retry_after_or_5_seconds(
        m: Msal, clock: Clock, headers: dict[str, str], replayed_for: int) -> None:
    """msal's throttle (ConfidentialClientApplication) answers the same refresh with the same
    503, without asking the provider, for ``Retry-After`` seconds, or 5 s without one (60 s is
    only for PublicClientApplication)."""
    _, user_cache = m.sign_in(expires_in=100)
    m.network.answer("refresh_token", Answer(503, "down", headers))
    for seconds, asked in [(0, 1), (replayed_for - 1, 1), (2, 2)]:
        clock.advance(seconds)
        with pytest.raises(SERVER_ERRORS):
            m.silent(user_cache)
        assert len(m.network.posts("refresh_token")) == asked


def test_msal_replays_a_400_to_an_identical_refresh_for_60_seconds(m: Msal, clock: Clock) -> None:
    """An HTTP 400 (``invalid_grant``) to the token endpoint is cached for 60 s under the whole
    request: the same refresh within a minute gets the same error without reaching the provider."""
    _, user_cache = m.sign_in(expires_in=100)
    m.network.answer("refresh_token", invalid_grant())
    for seconds, asked in [(0, 1), (59, 1), (2, 2)]:
        clock.advance(seconds)
        result = m.silent(user_cache)
        assert result is not None and result["error"] == "invalid_grant"
        assert len(m.network.posts("refresh_token")) == asked
    assert m.http_cache, "msal keeps its throttle in the http_cache dict it was given"


@pytest.mark.parametrize("grant", ["authorization_code", "refresh_token"])
def test_malformed_json_from_the_token_endpoint_raises_json_decode_error(m: Msal, grant: str) -> None:
    """A 200 that is not JSON raises :class:`json.JSONDecodeError` (a ValueError) at redemption and refresh."""
    if grant == "authorization_code":
        flow = m.initiate()
        m.network.answer(grant, Answer(200, "<html>maintenance</html>"))
        with m.cache.operation("redeem"), pytest.raises(json.JSONDecodeError):
            m.app.acquire_token_by_auth_code_flow(flow, {"state": flow["state"], "code": "code-1"})
    else:
        _, user_cache = m.sign_in(expires_in=100)
        m.network.answer(grant, Answer(200, "<html>maintenance</html>"))
        with pytest.raises(json.JSONDecodeError):
            m.silent(user_cache)


# --- 3. The sign-in flow and silent tokens ------------------------------------------------------


def test_initiate_auth_code_flow_returns_auth_uri_state_nonce_and_code_verifier(m: Msal) -> None:
    """The flow dict msal_wsgi keeps in the session; ``auth_uri`` carries PKCE S256, the state,
    a nonce, and each sign-in option msal_wsgi passes."""
    flow = m.initiate(prompt="login", domain_hint="example.com", login_hint="ann@example.com",
                      claims_challenge='{"id_token":{"acr":{"essential":true}}}')
    assert {"auth_uri", "state", "nonce", "code_verifier"} <= set(flow)
    assert flow["auth_uri"].startswith(DISCOVERY["authorization_endpoint"] + "?")
    query = {name: values[0] for name, values in parse_qs(urlsplit(flow["auth_uri"]).query).items()}
    assert query["state"] == flow["state"] and query["nonce"]
    assert query["code_challenge_method"] == "S256" and query["code_challenge"]
    assert query["redirect_uri"] == REDIRECT_URI and query["response_mode"] == "form_post"
    assert (query["prompt"], query["domain_hint"], query["login_hint"]) == ("login", "example.com", "ann@example.com")
    assert json.loads(query["claims"]) == {"id_token": {"acr": {"essential": True}}}


def test_initiate_auth_code_flow_accepts_none_for_every_option(m: Msal) -> None:
    """msal_wsgi passes every option, ``None`` when unset."""
    flow = m.initiate(prompt=None, domain_hint=None, login_hint=None, claims_challenge=None)
    query = parse_qs(urlsplit(flow["auth_uri"]).query)
    assert not {"prompt", "domain_hint", "login_hint", "claims"} & set(query)


def test_redemption_result_has_the_raw_id_token_and_its_claims(m: Msal) -> None:
    """``id_token`` is the JWT as the provider sent it, ``id_token_claims`` its payload."""
    flow = m.initiate()
    raw = id_token("ann", nonce_of(flow))
    m.network.answer("authorization_code", Answer(body=tokens(idt=raw)))
    with m.cache.operation("redeem"):
        result = m.app.acquire_token_by_auth_code_flow(flow, {"state": flow["state"], "code": "code-1"})
    assert result["id_token"] == raw
    assert result["id_token_claims"]["sub"] == "ann"
    assert result["access_token"].startswith("at-")
    code_request = m.network.posts("authorization_code")[0].kwargs["data"]
    assert code_request["code"] == "code-1" and code_request["code_verifier"] == flow["code_verifier"]


def test_after_redemption_get_accounts_lists_the_user_under_home_account_id(m: Msal) -> None:
    """msal_wsgi keeps ``home_account_id`` to find the account again; from a provider without
    ``client_info`` it is the id token's ``sub``."""
    _, user_cache = m.sign_in("ann")
    with m.cache.operation("accounts", user_cache):
        assert [a["home_account_id"] for a in m.app.get_accounts()] == ["ann"]


def test_a_foreign_state_raises_value_error(m: Msal) -> None:
    flow = m.initiate()
    with m.cache.operation("redeem"), pytest.raises(ValueError, match="state mismatch"):
        m.app.acquire_token_by_auth_code_flow(flow, {"state": "forged", "code": "code-1"})
    assert m.network.posts("authorization_code") == []


def test_a_foreign_nonce_raises_runtime_error_naming_both_nonces(m: Msal) -> None:
    """A nonce mismatch is a RuntimeError, not a ValueError; the message has the id token's nonce
    and the one sent in ``auth_uri`` (the SHA-256 of the flow's ``nonce``)."""
    flow = m.initiate()
    m.network.answer("authorization_code", Answer(body=tokens(idt=id_token(nonce="replayed-nonce"))))
    with m.cache.operation("redeem"), pytest.raises(RuntimeError) as raised:
        m.app.acquire_token_by_auth_code_flow(flow, {"state": flow["state"], "code": "code-1"})
    assert not isinstance(raised.value, ValueError)
    assert "replayed-nonce" in str(raised.value) and nonce_of(flow) in str(raised.value)
    assert nonce_of(flow) == hashlib.sha256(flow["nonce"].encode()).hexdigest()


def test_an_error_in_the_authorization_response_is_an_error_dict(m: Msal) -> None:
    """``?error=access_denied`` comes back as ``{"error", "error_description"}``, without a token request."""
    flow = m.initiate()
    with m.cache.operation("redeem"):
        result = m.app.acquire_token_by_auth_code_flow(
            flow, {"state": flow["state"], "error": "access_denied", "error_description": "the user said no"})
    assert result == {"error": "access_denied", "error_description": "the user said no"}
    assert m.network.posts("authorization_code") == []


def test_the_access_token_entry_is_found_by_its_secret_with_expires_on_and_refresh_on(
        m: Msal, clock: Clock) -> None:
    """msal_wsgi indexes msal's own expiry times: ``search(ACCESS_TOKEN, query={"secret": ...})``
    finds the entry, whose ``expires_on`` and ``refresh_on`` are Unix times as strings or ints."""
    result, user_cache = m.sign_in(expires_in=3600, refresh_in=1800)
    entries = list(user_cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN,
                                     query={"secret": result["access_token"]}))
    assert len(entries) == 1
    assert int(entries[0]["expires_on"]) == int(clock.now) + 3600
    assert int(entries[0]["refresh_on"]) == int(clock.now) + 1800


@pytest.mark.parametrize("left, asked", [(310, 0), (290, 1)], ids=["310s-left", "290s-left"])
def test_msal_serves_a_cached_access_token_only_with_more_than_300_seconds_left(
        m: Msal, clock: Clock, left: int, asked: int) -> None:
    """EXPIRY_MARGIN: with less than 5 minutes left msal refreshes, so msal_wsgi's fast path stops there too."""
    _, user_cache = m.sign_in(expires_in=3600)
    m.network.answer("refresh_token", Answer(body=tokens()))
    clock.advance(3600 - left)
    result = m.silent(user_cache)
    assert result is not None and "access_token" in result
    assert len(m.network.posts("refresh_token")) == asked


def test_past_refresh_on_msal_refreshes_a_token_that_is_still_valid(m: Msal, clock: Clock) -> None:
    """``refresh_in`` (``refresh_on`` in the cache): after it msal asks the token endpoint, though
    the access token has an hour left; msal_wsgi's fast path hands such a call to msal."""
    _, user_cache = m.sign_in(expires_in=7200, refresh_in=1800)
    m.network.answer("refresh_token", Answer(body=tokens()))
    clock.advance(1801)
    m.silent(user_cache)
    assert len(m.network.posts("refresh_token")) == 1


def test_silent_returns_none_without_a_refresh_token(m: Msal) -> None:
    """No usable access token and no refresh token: ``None``, which msal_wsgi reads as "sign in again"."""
    _, user_cache = m.sign_in(expires_in=100, refresh_token=None)
    assert m.silent(user_cache) is None
    assert m.network.posts("refresh_token") == []


def test_silent_returns_none_without_an_account(m: Msal) -> None:
    with m.cache.operation("silent"):
        assert m.app.acquire_token_silent_with_error(SCOPES, None) is None


def test_a_claims_challenge_skips_the_cached_token_and_is_sent_with_the_refresh(m: Msal) -> None:
    """``claims_challenge=`` (from a resource's 401): msal refreshes, with ``claims`` in the request."""
    _, user_cache = m.sign_in(expires_in=3600)
    m.network.answer("refresh_token", Answer(body=tokens()))
    challenge = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'
    result = m.silent(user_cache, claims_challenge=challenge)
    assert result is not None and "access_token" in result
    (refresh,) = m.network.posts("refresh_token")
    assert json.loads(refresh.kwargs["data"]["claims"]) == json.loads(challenge)


def test_a_rejected_client_credential_is_an_invalid_client_error_dict(m: Msal) -> None:
    """``check`` asks for a client credentials token and reads ``error == "invalid_client"``."""
    m.network.answer("client_credentials", Answer(401, {"error": "invalid_client", "error_description": "bad secret"}))
    with m.cache.operation("client credentials"):
        result = m.app.acquire_token_for_client([f"{CLIENT_ID}/.default"])
    assert (result["error"], result["error_description"]) == ("invalid_client", "bad secret")


# --- 4. The import ------------------------------------------------------------------------------


def test_msal_exceptions_is_an_attribute_right_after_import_msal(fresh_import: dict[str, Any]) -> None:
    """msal_wsgi._msal reads ``msal.exceptions.MsalServiceError`` at import, after a bare ``import msal``."""
    assert fresh_import["exceptions"] is True


def test_msal_logs_only_through_loggers_that_exist_once_it_is_imported(
        fresh_import: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    """msal_wsgi masks secrets in msal's log records with a filter on each ``msal*`` logger present
    after ``import msal``: records through a logger created later would go out unmasked."""
    with caplog.at_level(logging.DEBUG, logger="msal"):
        every_operation()
    names = {record.name for record in caplog.records if record.name.split(".")[0] == "msal"}
    assert names, "msal logged nothing at DEBUG"
    assert names <= set(fresh_import["loggers"]), names - set(fresh_import["loggers"])
