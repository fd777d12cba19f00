"""Entra workforce tenants, External ID (ciamlogin.com) and B2C authorities, offline.

These hosts cannot be reached from the test machine, so msal's HTTP requests go
through a transport adapter (on the ``http_session`` setting) that answers the discovery documents recorded
below (shortened, fields as Entra serves them) and 404s anything else. It is a
fake of the network only: the settings, msal's authority handling and our
middleware are the real ones. That shows which discovery URL msal derives from each
authority and that sign-in and sign-out use the endpoints it announces. Any
other OpenID Connect provider (``oidc_authority``) is covered end to end by the
local provider in the rest of the suite.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import pytest
import requests
import webtest
from support.api import JsonNetwork
from support.apps import OFFLINE_ISSUER, TODO_READ, make_testapp, sign_out
from support.sessions import TEST_SESSION_KEYS
from support.urls import query_of

from msal_wsgi import Protect, Settings

TENANT_ID = "aaaabbbb-0000-cccc-1111-dddd2222eeee"
CLIENT_ID = "11112222-bbbb-3333-cccc-4444dddd5555"
REDIRECT_URI = "https://app.example/auth/callback"


def entra_document(base: str, issuer: str) -> dict[str, object]:
    """A v2.0 discovery document whose endpoints live under ``base``."""
    return {
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "issuer": issuer,
        "response_modes_supported": ["query", "fragment", "form_post"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
    }


WORKFORCE = entra_document(f"https://login.microsoftonline.com/{TENANT_ID}",
                           f"https://login.microsoftonline.com/{TENANT_ID}/v2.0")
CIAM = entra_document(f"https://contoso.ciamlogin.com/{TENANT_ID}",
                      f"https://{TENANT_ID}.ciamlogin.com/{TENANT_ID}/v2.0")
B2C = entra_document("https://contoso.b2clogin.com/contoso.onmicrosoft.com/b2c_1_signupsignin",
                     f"https://contoso.b2clogin.com/{TENANT_ID}/v2.0/")

# authority setting -> (the discovery URL msal asks, the document recorded there)
AUTHORITIES = {
    "workforce tenant by name": (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com",
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration",
        WORKFORCE),
    "workforce tenant by id": (
        f"https://login.microsoftonline.com/{TENANT_ID}",
        f"https://login.microsoftonline.com/{TENANT_ID}/v2.0/.well-known/openid-configuration",
        WORKFORCE),
    "external id (ciam)": (
        "https://contoso.ciamlogin.com/",
        "https://contoso.ciamlogin.com/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration",
        CIAM),
    "external id (ciam) with tenant": (
        f"https://contoso.ciamlogin.com/{TENANT_ID}",
        f"https://contoso.ciamlogin.com/{TENANT_ID}/v2.0/.well-known/openid-configuration",
        CIAM),
    "b2c user flow": (
        "https://contoso.b2clogin.com/contoso.onmicrosoft.com/B2C_1_signupsignin",
        "https://contoso.b2clogin.com/contoso.onmicrosoft.com/B2C_1_signupsignin/v2.0/.well-known/openid-configuration",
        B2C),
}


class RecordedDiscovery(JsonNetwork):
    """Answers GETs of recorded documents by exact URL, 404 otherwise."""

    def __init__(self, documents: dict[str, object]) -> None:
        super().__init__(missing={"error": "not_recorded"})
        self.documents = documents

    def answer(self, request: requests.PreparedRequest) -> object | None:
        return self.documents.get(str(request.url)) if request.method == "GET" else None


def offline_app(authority: str, documents: dict[str, object]) -> tuple[webtest.TestApp, RecordedDiscovery]:
    """echo_app behind MsalMiddleware at ``authority``, its requests to the provider answered by ``documents``."""
    network = RecordedDiscovery(documents)
    app = make_testapp(OFFLINE_ISSUER, settings=Settings(
        client_id=CLIENT_ID, client_credential="secret", authority=authority, redirect_uri=REDIRECT_URI,
        protect={"/todos": Protect(read=[TODO_READ])}, session_keys=TEST_SESSION_KEYS,
        http_session=network.session()))
    assert app.middleware.settings.authority == authority  # passed to msal unchanged
    return app, network


@pytest.mark.parametrize("authority,discovery_url,document", AUTHORITIES.values(), ids=AUTHORITIES.keys())
def test_sign_in_and_sign_out_use_the_endpoints_the_authority_announces(authority, discovery_url, document):
    app, network = offline_app(authority, {discovery_url: document})
    sign_in = app.get("/todos", headers={"Accept": "text/html"}, status=302)
    assert network.asked == [discovery_url]  # tenant discovery only: no instance discovery
    authorize = urlsplit(sign_in.location)
    assert f"{authorize.scheme}://{authorize.netloc}{authorize.path}" == document["authorization_endpoint"]
    query = query_of(sign_in.location)
    assert query["client_id"] == CLIENT_ID and query["redirect_uri"] == REDIRECT_URI
    assert query["response_mode"] == "form_post"
    assert query["scope"].split() == [TODO_READ, "offline_access", "openid", "profile"]
    hinted = app.get("/auth/login", {"next": "/todos", "login_hint": "alice@contoso.example"}, status=302)
    assert query_of(hinted.location)["login_hint"] == "alice@contoso.example"
    signed_out = sign_out(app, headers={"Origin": "https://app.example", "Sec-Fetch-Site": "same-origin"})
    assert signed_out.status_int == 303, signed_out
    assert signed_out.location.split("?")[0] == document["end_session_endpoint"]


def test_an_unknown_tenant_is_reported_as_the_provider_being_unavailable(caplog):
    # Entra answers 400 for a tenant that does not exist; here nothing is recorded: 404.
    app, _ = offline_app("https://login.microsoftonline.com/no-such-tenant", {})
    with caplog.at_level(logging.ERROR, logger="msal_wsgi"):
        page = app.get("/todos", headers={"Accept": "text/html"}, status=503)
    assert "Please try again shortly" in page.text and page.headers["Retry-After"]
    assert "no-such-tenant" not in page.text and "identity provider unavailable" in caplog.text
    assert "no-such-tenant" in caplog.text
