"""The dev provider's stock mode behaves as oidc-provider does by default, driven by plain msal.

These are the rules the incremental-consent tests rely on: a refresh token only with
``prompt=consent``; one that covers only the scopes of its sign-in (``invalid_scope``
for others); consent asked per scope; every refresh rotates the refresh token.
"""

from __future__ import annotations

import re

import msal
import pytest
from support.apps import REDIRECT_URI, SECRETS, TODO_READ, TODO_WRITE

pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended:UserWarning")


@pytest.fixture
def app(stock_devprovider) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication("todo-web", client_credential=SECRETS["todo-web"],
                                              oidc_authority=stock_devprovider.issuer)


def _sign_in(provider, app, scopes, session=None, **flow_args):
    flow = app.initiate_auth_code_flow(list(scopes), redirect_uri=REDIRECT_URI, **flow_args)
    result = provider.sign_in(flow["auth_uri"], session=session)
    return app.acquire_token_by_auth_code_flow(flow, result.params), result.prompts


def test_no_refresh_token_without_prompt_consent(stock_devprovider, app):
    tokens, prompts = _sign_in(stock_devprovider, app, [TODO_READ])
    assert "access_token" in tokens and "refresh_token" not in tokens
    assert prompts == ["login", "consent"]


def test_a_refresh_token_covers_only_the_scopes_of_its_sign_in(stock_devprovider, app):
    tokens, _ = _sign_in(stock_devprovider, app, [TODO_READ], prompt="consent")
    assert tokens["refresh_token"]
    (account,) = app.get_accounts()
    refused = app.acquire_token_silent_with_error([TODO_WRITE], account)
    assert refused["error"] == "invalid_scope" and "refresh token missing requested scope" in \
        refused["error_description"]


def test_consent_is_asked_per_scope_and_refresh_tokens_rotate(stock_devprovider, app):
    browser = stock_devprovider.browser()
    first, prompts = _sign_in(stock_devprovider, app, [TODO_READ], session=browser, prompt="consent")
    assert prompts == ["login", "consent"]
    page = browser.get(app.initiate_auth_code_flow([TODO_WRITE], redirect_uri=REDIRECT_URI,
                                                   prompt="consent")["auth_uri"], timeout=10)
    listed = re.findall(r"<li>([^<]+)", page.text)
    assert TODO_WRITE in listed and TODO_READ not in listed  # only what the grant lacks
    (account,) = app.get_accounts()
    app.token_cache.remove_at(next(iter(app.token_cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN))))
    refreshed = app.acquire_token_silent_with_error([TODO_READ], account)
    assert refreshed["refresh_token"] != first["refresh_token"]
