"""Extra authorize parameters: prompt, login_hint and domain_hint."""

from __future__ import annotations

import pytest
from support.apps import TODO_READ, make_testapp, return_to_app, sign_in
from support.urls import query_of


def authorize_query(response):
    """The parameters of the authorize URL a sign-in redirect goes to."""
    assert response.status_int == 302, response
    return query_of(response.location)


def test_prompt_and_domain_hint_settings_reach_the_authorize_url(provider):
    app = make_testapp(provider, prompt="select_account", domain_hint="contoso.example")
    query = authorize_query(app.get("/todos"))
    assert query["prompt"] == "select_account" and query["domain_hint"] == "contoso.example"
    assert "login_hint" not in query


def test_no_prompt_or_hints_unless_asked_for(provider):
    query = authorize_query(make_testapp(provider).get("/todos"))
    assert not {"prompt", "login_hint", "domain_hint"} & set(query)


def test_the_sign_in_link_passes_login_and_domain_hints(provider):
    app = make_testapp(provider, domain_hint="contoso.example")
    query = authorize_query(app.get("/auth/login", {"next": "/todos", "login_hint": "bob@fabrikam.example",
                                                    "domain_hint": "fabrikam.example"}))
    assert query["login_hint"] == "bob@fabrikam.example"
    assert query["domain_hint"] == "fabrikam.example"  # the link's hint wins over the setting


@pytest.mark.parametrize("link", [
    "login_hint=a&login_hint=b",
    "login_hint=" + "a" * 257,
], ids=["repeated", "too long"])
def test_doubtful_hints_are_left_out(provider, link):
    app = make_testapp(provider)
    assert "login_hint" not in authorize_query(app.get("/auth/login?next=/todos&" + link))


def test_without_prompt_the_provider_session_signs_the_same_user_in_silently(provider):
    sign_in(make_testapp(provider), provider, login="alice")
    app = make_testapp(provider)
    result = provider.sign_in(app.get("/todos").location, login="bob", session=provider.last_session)
    assert result.prompts == []  # single sign-on: no page shown, bob never had a chance
    assert return_to_app(app, result).follow().json["remote_user"] == "alice"


def test_prompt_login_lets_another_user_sign_in_over_a_provider_session(provider):
    sign_in(make_testapp(provider), provider, login="alice")
    app = make_testapp(provider, prompt="login")
    result = provider.sign_in(app.get("/todos").location, login="bob", session=provider.last_session)
    assert result.prompts == ["login", "consent"]  # bob has not consented to the app before
    page = return_to_app(app, result).follow()
    assert page.json["remote_user"] == "bob"


def test_prompt_consent_asks_for_consent_again(provider):
    sign_in(make_testapp(provider), provider, login="carol")
    app = make_testapp(provider, prompt="consent")
    result = provider.sign_in(app.get("/todos").location, login="carol", session=provider.last_session)
    assert result.prompts == ["consent"]
    assert return_to_app(app, result).follow().json["token"]["scopes"] == [TODO_READ]


def test_hints_pass_through_a_real_provider_sign_in(provider):
    app = make_testapp(provider)
    start = app.get("/auth/login", {"next": "/todos", "login_hint": "dave", "domain_hint": "contoso.example"})
    result = provider.sign_in(start.location, login="dave")
    assert result.prompts == ["login", "consent"]
    assert return_to_app(app, result).follow().json["remote_user"] == "dave"
