"""What protecting a web API costs: µs per validated request in process, and requests/s under gunicorn.

The token is real: a user's access token for ``api://todo``, from a sign-in through the
DevProvider. In process, each stack serves the same tiny app (WSGI calls with a prepared
environ, interleaved rounds, as in :mod:`benchmarks.hot_path`):

* the bare app;
* the sample's old hand-written validator (``TokenValidator``, copied below as it was in
  ``sample_app.py``): PyJWT's decode with a cached key per kid, then the scope;
* msal_wsgi's API mode validating every request (``api_token_cache=0``), and with its cache
  of validated tokens (the default);

and beside them PyJWT's own ``jwt.decode`` of the same token with the same key (the floor of a
signature check) and ``msal_wsgi.jose.validate_access_token`` alone. Under load, gunicorn serves
the same endpoint protected (with and without the cache) and unprotected, driven by wrk.
"""

from __future__ import annotations

import gc
import os
import statistics
import threading
import time
from collections.abc import Iterable
from typing import Any, Callable

import jwt
import requests
from webob import Request
from webob.exc import HTTPForbidden, HTTPUnauthorized

from devprovider import DevProvider
from msal_wsgi import MsalMiddleware, ProtectApi, jose

from . import load
from .stacks import WSGIApp, by_prefix, tiny_app

READ, READWRITE = "api://todo/ToDoList.Read", "api://todo/ToDoList.ReadWrite"
AUDIENCE = "api://todo"
RULE = ProtectApi(read=[READ, READWRITE], write=[READWRITE])
ROUNDS, PER_ROUND = 10, 1000
ENDPOINTS = [
    ("protected, token cache", "/api/1"),
    ("protected, no token cache", "/nocache/1"),
    ("unprotected", "/open/1"),
]


class TokenValidator:
    """The sample's old to-do API check, as it was (the comparison baseline): RS256 signature from the
    provider's JWKS, issuer, audience, scope."""

    def __init__(self, metadata_url: str, audience: str) -> None:
        self._metadata_url = metadata_url
        self._audience = audience
        self._lock = threading.Lock()
        self._issuer: str | None = None
        self._keys: dict[str, Any] = {}

    def _refresh_keys(self) -> None:
        metadata = requests.get(self._metadata_url, timeout=10).json()
        jwks = requests.get(metadata["jwks_uri"], timeout=10).json()
        self._issuer = metadata["issuer"]
        self._keys = {k["kid"]: jwt.PyJWK(k).key for k in jwks["keys"] if k.get("use", "sig") == "sig"}

    def claims(self, authorization: str | None, needed: tuple[str, ...]) -> dict[str, Any]:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            with self._lock:
                if kid not in self._keys:  # first use, or the provider rotated its keys
                    self._refresh_keys()
            claims = jwt.decode(token, self._keys[kid], algorithms=["RS256"], audience=self._audience,
                                issuer=self._issuer, options={"require": ["exp", "iss", "aud"]})
        except (jwt.PyJWTError, KeyError) as exc:
            raise HTTPUnauthorized(headers={"WWW-Authenticate": f'Bearer error="invalid_token", '
                                                                f'error_description="{type(exc).__name__}"'})
        granted = set(str(claims.get("scp") or claims.get("scope") or "").split())
        if not any(s in granted or s.rsplit("/", 1)[-1] in granted for s in needed):
            raise HTTPForbidden(headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'})
        return claims


def old_sample(app: WSGIApp, issuer: str) -> WSGIApp:
    """The old to-do API's gate: a webob Request, the validator, then the app."""
    validator = TokenValidator(issuer + "/.well-known/openid-configuration", AUDIENCE)

    def gate(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        try:
            validator.claims(request.headers.get("Authorization"), (READ, READWRITE))
        except (HTTPUnauthorized, HTTPForbidden) as refusal:
            return refusal(environ, start_response)  # type: ignore[no-any-return]
        return app(environ, start_response)

    return gate


def protected(app: WSGIApp, issuer: str, *, cache: bool) -> WSGIApp:
    return MsalMiddleware(app, client_id="todo-api", oidc_authority=issuer, api_audience=AUDIENCE,
                          api_token_cache=1024 if cache else 0,
                          protect={"/api": RULE, "/nocache": RULE})


def load_app() -> WSGIApp:
    """What gunicorn serves under wrk (configured by ``BENCH_ISSUER``): the tiny app at ``/api`` and
    ``/nocache`` behind msal_wsgi (with and without the validated-token cache), at ``/open`` alone."""
    issuer = os.environ["BENCH_ISSUER"]
    return by_prefix({"/api": protected(tiny_app, issuer, cache=True),
                      "/nocache": protected(tiny_app, issuer, cache=False)}, tiny_app)


def _time(run: Callable[[], Any], n: int) -> float:
    """Mean µs of ``n`` calls."""
    clock = time.perf_counter_ns
    started = clock()
    for _ in range(n):
        run()
    return (clock() - started) / n / 1000


def _wsgi_call(app: WSGIApp, environ: dict[str, Any]) -> Callable[[], None]:
    status: list[str] = []

    def start_response(s: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        status.append(s)

    def call() -> None:
        status.clear()
        for _chunk in app(dict(environ), start_response):
            pass
        if not status[0].startswith("200"):
            raise RuntimeError(f"answered {status[0]}")

    return call


def table(dev: DevProvider, token: str) -> str:
    """Median µs per validated request (of the per-round means), each stack and each validator alone."""
    claims = jwt.decode(token, options={"verify_signature": False})
    header = jwt.get_unverified_header(token)
    jwks = requests.get(dev.metadata["jwks_uri"], timeout=10).json()
    keys = jose.KeySet(lambda: jwks)
    key = keys.candidates(header)[0]
    environ = Request.blank("/api/todolist", headers={"Authorization": f"Bearer {token}",
                                                      "Accept": "application/json"}).environ
    nocache = dict(environ, PATH_INFO="/nocache/todolist")
    runs: dict[str, Callable[[], Any]] = {
        "(a) bare app": _wsgi_call(tiny_app, environ),
        "(b) old sample TokenValidator": _wsgi_call(old_sample(tiny_app, dev.issuer), environ),
        "(c) msal_wsgi, no token cache": _wsgi_call(protected(tiny_app, dev.issuer, cache=False), nocache),
        "(d) msal_wsgi, token cache": _wsgi_call(protected(tiny_app, dev.issuer, cache=True), environ),
        "PyJWT jwt.decode alone": lambda: jwt.decode(token, key.key, algorithms=["RS256"], audience=AUDIENCE,
                                                     issuer=dev.issuer),
        "jose.validate_access_token": lambda: jose.validate_access_token(
            token, keys, issuer=dev.issuer, audiences=[AUDIENCE], algorithms=["RS256"]),
    }
    for run in runs.values():  # warm up: discovery, the JWKS, the caches
        for _ in range(50):
            run()
    means: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(ROUNDS):
        for label, run in runs.items():
            gc.collect()
            means[label].append(_time(run, PER_ROUND))
    median = {label: statistics.median(values) for label, values in means.items()}
    floor = median["PyJWT jwt.decode alone"]
    lines = [(f"a real access token ({len(token)} bytes, {header.get('alg')}, aud {claims.get('aud')}), JWKS cached; "
             f"median of {ROUNDS} rounds of {PER_ROUND}"),
             f"{'per validated API request':<34}{'us':>8}{'x PyJWT decode':>16}"]
    lines += [f"{label:<34}{value:>8.1f}{value / floor:>16.2f}" for label, value in median.items()]
    lines.append(f"  msal_wsgi without its cache adds {median['(c) msal_wsgi, no token cache'] - floor:+.1f} us to "
                 f"PyJWT's decode; the cache saves {median['(c) msal_wsgi, no token cache'] - median['(d) msal_wsgi, token cache']:.1f} us "
                 f"a request; the old validator costs {median['(b) old sample TokenValidator']:.1f} us")
    return "\n".join(lines)


def run_load(dev: DevProvider, token: str) -> tuple[str, bool]:
    """gunicorn + wrk: the protected endpoint against the same endpoint unprotected."""
    header = f"Authorization: Bearer {token}"
    return load.compare(ENDPOINTS, "benchmarks.api:load_app()",
                        {"BENCH_ISSUER": dev.issuer, "REQUESTS_CA_BUNDLE": str(dev.ca_path)}, [header],
                        baseline="/open/1", expect_refused=("/api/1", "/nocache/1"))
