"""Configuration a newcomer can get wrong is reported, naming what to fix, not shown as a brief outage."""

from __future__ import annotations

import logging

import pytest
from beaker.middleware import SessionMiddleware
from support.apps import echo_app
from webtest import TestApp

from msal_wsgi import ConfigurationError, MsalMiddleware, Protect, Settings

BASE = {"MSAL_CLIENT_ID": "id", "MSAL_CLIENT_SECRET": "s", "MSAL_OIDC_AUTHORITY": "https://id.example/realm",
        "MSAL_REDIRECT_URI": "https://app.example/auth/callback"}


@pytest.mark.parametrize(("typo", "nearest"), [("MSAL_CLIENTID", "MSAL_CLIENT_ID"),
                                               ("MSAL_REDIRECT_URL", "MSAL_REDIRECT_URI"),
                                               ("MSAL_PROTECTED", "MSAL_PROTECT")])
def test_an_unknown_msal_variable_is_an_error_naming_the_nearest_one(typo, nearest):
    with pytest.raises(ConfigurationError, match=f"did you mean '{nearest}'") as raised:
        Settings.from_env({**BASE, typo: "x"})
    assert raised.value.setting == typo


def test_msal_s_own_variables_are_left_alone():
    assert Settings.from_env({**BASE, "MSAL_FORCE_REGION": "westus"}).client_id == "id"


def test_an_untrusted_provider_certificate_is_a_misconfiguration_naming_requests_ca_bundle(
        provider, monkeypatch, caplog):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")  # does not hold the test CA
    app = TestApp(SessionMiddleware(MsalMiddleware(
        echo_app, client_id="todo-web", client_secret="todo-web-secret", oidc_authority=provider.issuer,
        redirect_uri="http://localhost/auth/callback", protect={"/todos": Protect()}), {"session.type": "memory"}))
    with caplog.at_level(logging.ERROR, logger="msal_wsgi"):
        page = app.get("/todos", status=503)
    assert "Sign-in is unavailable" in page.text and "Retry-After" not in page.headers
    assert "REQUESTS_CA_BUNDLE" in caplog.text and "certificate verify failed" in caplog.text
