"""The answers msal_wsgi gives itself: error pages, JSON errors, the re-post page; and who gets which."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from html import escape
from typing import Any

from webob import Response

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}
h1{{font-size:1.4rem}}.button{{display:inline-block;padding:.5rem 1rem;background:#0b5cad;color:#fff;
border:0;border-radius:4px;text-decoration:none;font:inherit;cursor:pointer}}</style></head>
<body><h1>{title}</h1><p>{message}</p>{link}<p><a href="{home}">Back to the home page</a></p></body></html>
"""


def _no_store(response: Response) -> Response:
    response.cache_control = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def error_page(status: int, title: str, message: str, *, link: tuple[str, str] | None = None,
               retry_after: int | None = None, home: str = "/") -> Response:
    """A short HTML page; ``link`` is ``(href, text)`` for the way forward, ``home`` the app's root."""
    anchor = f'<p><a class="button" href="{escape(link[0])}">{escape(link[1])}</a></p>' if link else ""
    response = Response(_PAGE.format(title=escape(title), message=escape(message), link=anchor, home=escape(home)),
                        status=status, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return _no_store(response)


def json_error(status: int, error: str, description: str, *, retry_after: int | None = None,
               login_url: str | None = None, fields: Mapping[str, Any] | None = None) -> Response:
    """A JSON error body ``{"error": ..., "error_description": ...}`` (and ``fields``) for API callers."""
    body: dict[str, Any] = {"error": error, "error_description": description, **(fields or {})}
    if login_url:
        body["login_url"] = login_url
    response = Response(json_body=body, status=status, charset="utf-8")
    if status == 401:
        # There is no registered scheme for cookie sessions; this names ours and says where to go.
        challenge = f'Session realm="msal_wsgi", error="{error}"'
        if login_url:
            challenge += f', login_url="{login_url}"'
        response.headers["WWW-Authenticate"] = challenge
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return _no_store(response)


def bearer_error(status: int, realm: str, error: str | None, description: str, *, scope: str | None = None,
                 claims: str | None = None, body: Mapping[str, Any] | None = None,
                 retry_after: int | None = None) -> Response:
    """An API's answer to a bearer token (RFC 6750 §3): ``WWW-Authenticate: Bearer realm="...",
    error="...", error_description="...", scope="..."`` and a JSON body saying the same.

    ``error`` None (a request without a token, §3.1) puts no error in the header and
    ``missing_token`` in the body; ``claims`` is a base64 claims challenge (Entra's
    ``insufficient_claims``); ``body`` adds fields to the JSON.
    """
    params = [("realm", realm)]
    if error:
        params += [("error", error), ("error_description", description)]
    if scope:
        params.append(("scope", scope))
    if claims:
        params.append(("claims", claims))
    # RFC 6750 §3: these values are quoted strings of printable ASCII without '"' and '\\'.
    challenge = "Bearer " + ", ".join(f'{name}="{_QUOTABLE.sub("", value)}"' for name, value in params)
    document: dict[str, Any] = {"error": error or "missing_token", "error_description": description}
    if scope:
        document["scope"] = scope
    document.update(body or {})
    response = Response(json_body=document, status=status, charset="utf-8")
    response.headers["WWW-Authenticate"] = challenge
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return _no_store(response)


_QUOTABLE = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')


def forbidden(message: str, requirement: str, needed: tuple[str, ...], *, page: bool) -> Response:
    """403 for an authorization rule that refused: a page for a browser, else JSON naming what was missing."""
    if page:
        return error_page(403, "Access denied", message)
    return json_error(403, "access_denied", message, fields={"requirement": requirement, "needed": list(needed)})


def repost_page(action: str, fields: Mapping[str, str], *, title: str = "Signing you in",
                button: str = "Continue signing in") -> Response:
    """A page of this site that POSTs ``fields`` to ``action`` by itself (a button when scripts are off).

    It re-submits a cross-site ``form_post`` callback from this site, so the session cookie
    (``SameSite=Lax``) comes along, and a form kept across a sign-in (:mod:`msal_wsgi.replay`).
    Its CSP allows only its own script (by nonce) and a same-origin form action, and no framing.
    """
    nonce = secrets.token_urlsafe(16)
    inputs = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items())
    body = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title></head>'
        f'<body><form method="post" action="{escape(action)}" id="f">{inputs}'
        f'<noscript><button type="submit">{escape(button)}</button></noscript></form>'
        f'<script nonce="{nonce}">document.getElementById("f").submit()</script></body></html>'
    )
    response = Response(body, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; form-action 'self'; frame-ancestors 'none'")
    return _no_store(response)


def form_page(status: int, title: str, message: str, action: str, fields: Mapping[str, str],
              button: str, *, home: str = "/") -> Response:
    """A short page with one button that POSTs ``fields`` to ``action`` (the sign-out confirmation).

    Not framable; no script. No ``form-action`` either: the POST's answer redirects to the provider.
    """
    inputs = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items())
    form = (f'<form method="post" action="{escape(action)}">{inputs}'
            f'<button class="button" type="submit">{escape(button)}</button></form>')
    response = Response(_PAGE.format(title=escape(title), message=escape(message), link=form, home=escape(home)),
                        status=status, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    return _no_store(response)


def wants_redirect(environ: Mapping[str, Any]) -> bool:
    """Whether the request is a browser navigation (pages, sign-in redirects) rather than an API call (JSON, 401)."""
    mode = environ.get("HTTP_SEC_FETCH_MODE")
    if mode and mode != "navigate":
        return False
    if environ.get("HTTP_X_REQUESTED_WITH"):
        return False
    accept = environ.get("HTTP_ACCEPT", "")
    return not ("json" in accept and "html" not in accept)
