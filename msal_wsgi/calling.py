"""Calling web APIs from the wrapped app: a ``requests`` auth, and claims challenges.

::

    answer = requests.get(TODO_API, auth=BearerAuth(environ))  # the route's token
    answer = requests.get(GRAPH_ME, auth=BearerAuth(environ, scopes=["User.Read"]))  # on demand
    challenge = claims_challenge(answer)
    if challenge:  # conditional access: the user must sign in again, satisfying these claims
        return environ["msal_wsgi.middleware"].start_sign_in(environ, claims_challenge=challenge)
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import requests

from ._environ import ACQUIRE_TOKEN, TOKEN
from .errors import MsalWsgiError

# One auth-param (name=token or name="quoted string") or a bare token (an auth scheme), then a comma.
_ITEM = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)(?:\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*))?\s*,?')


class BearerAuth(requests.auth.AuthBase):
    """``requests`` auth sending the signed-in user's access token.

    :param environ: the WSGI environ of a request on a protected path.
    :param scopes: scopes to acquire a token for with ``environ['msal_wsgi.acquire_token']``
        (silently, from the session or by refresh token); without them the route's own
        token ``environ['msal_wsgi.token']`` is sent.

    The token is looked up when each request is sent. :class:`~msal_wsgi.InteractionRequired`
    propagates when a token for ``scopes`` needs the user (sign-in or consent).
    """

    def __init__(self, environ: Mapping[str, Any], scopes: Iterable[str] | None = None) -> None:
        self._environ = environ
        self._scopes = None if scopes is None else tuple(scopes)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._scopes is not None:
            acquire = self._environ.get(ACQUIRE_TOKEN)
            if acquire is None:
                raise MsalWsgiError("BearerAuth(scopes=...) needs a request on a protected path "
                                    "(no msal_wsgi.acquire_token in the environ)")
            token = acquire(self._scopes)
        else:
            token = self._environ.get(TOKEN)
            if token is None:
                raise MsalWsgiError("no access token in the environ: protect this path with scopes, "
                                    "or pass BearerAuth(environ, scopes=[...])")
        request.headers["Authorization"] = token.authorization
        return request


class _Answer(Protocol):
    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


def claims_challenge(response: _Answer) -> str | None:
    """The claims challenge of an API's 401 answer, decoded, else ``None``.

    Entra ID APIs that enforce conditional access (and continuous access evaluation)
    answer ``401`` with ``WWW-Authenticate: Bearer ..., error="insufficient_claims",
    claims="<base64 JSON>"``. Returns the JSON text, ready for
    ``start_sign_in(environ, claims_challenge=...)`` or ``acquire_token(..., claims_challenge=...)``.
    """
    if response.status_code != 401:
        return None
    encoded = bearer_params(response.headers.get("WWW-Authenticate", "")).get("claims")
    if not encoded:
        return None
    try:
        text = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True).decode()
        value = json.loads(text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return text if isinstance(value, dict) else None


def bearer_params(header: str) -> dict[str, str]:
    """The auth-params of the ``Bearer`` challenge in a ``WWW-Authenticate`` header value."""
    params: dict[str, str] = {}
    scheme = None
    for match in _ITEM.finditer(header):
        name, value = match.group(1), match.group(2)
        if value is None:
            scheme = name.lower()
        elif scheme == "bearer":
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params.setdefault(name.lower(), value)
    return params
