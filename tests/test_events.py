"""What happens is logged to ``msal_wsgi`` and told to an optional metrics hook, without secrets."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from support.apps import JSON, OFFLINE_ISSUER, SECRETS, TODO_READ, Told, make_testapp, sign_in, sign_out
from support.environment import ini_settings

from msal_wsgi import ConfigurationError, Settings


def test_a_session_tells_its_story(provider, caplog):
    hook = Told()
    app = make_testapp(provider, on_event=hook, response_mode="query")
    with caplog.at_level(logging.DEBUG, logger="msal_wsgi"):
        answer = provider.sign_in(app.get("/todos").location)
        code = answer.params["code"]
        token = app.get("/auth/callback", answer.params).follow().json["token"]["value"]
        app.get("/todos")
        app.get("/todos?acquire=api://r2/access")
        sign_out(app)
        app.get("/todos", headers=JSON, status=401)
    assert hook.names == ["interaction_required", "sign_in.started", "sign_in.completed",
                          "token.cache_hit", "token.cache_hit",  # the page after sign-in, the next one
                          "token.cache_hit", "token.refreshed",  # the route's token, then api://r2's
                          "sign_out", "session.ended", "interaction_required"]
    events = dict(hook.events[1:3] + hook.events[5:8])
    assert events["sign_in.started"] == {"scopes": (TODO_READ,), "claims_challenge": False, "next": "/todos"}
    assert events["sign_in.completed"] == {"user": "alice", "same_account": False, "scopes": (TODO_READ,)}
    assert events["token.cache_hit"] == {"scopes": (TODO_READ,)}
    assert events["token.refreshed"] == {"user": "alice", "scopes": ("api://r2/access",)}
    assert events["sign_out"] == {"signed_in": True}
    assert hook.events[-1][1] == {"reason": "not signed in", "path": "/todos", "redirect": False}
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("INFO", "sign-in completed for alice") in messages
    assert ("INFO", "sign-out (someone was signed in: True)") in messages
    assert ("INFO", "token refreshed for alice (scopes api://r2/access)") in messages
    for secret in (token, SECRETS["todo-web"], code):
        assert secret not in caplog.text


@pytest.mark.parametrize(("params", "reason"), [
    ({"error": "access_denied", "error_description": "the user said no"}, "access_denied"),
    ({"error": "server_error", "error_description": "try later"}, "provider_error"),
    ({"state": "never-issued", "code": "x"}, "unknown_state"),
], ids=["access-denied", "provider-error", "unknown-state"])
def test_failed_sign_in_is_a_warning_with_its_reason(provider, caplog, params, reason):
    hook = Told()
    app = make_testapp(provider, on_event=hook)
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        app.get("/auth/callback", params, status=[400, 403])
    assert hook.names == ["sign_in.failed"] and hook.events[0][1]["reason"] == reason
    assert caplog.records[0].levelno == logging.WARNING


def test_a_failing_hook_is_logged_and_the_request_goes_on(provider, caplog):
    def broken(name: str, data: Any) -> None:
        raise RuntimeError("metrics backend down")

    app = make_testapp(provider, on_event=broken)
    with caplog.at_level(logging.ERROR, logger="msal_wsgi"):
        assert sign_in(app, provider).json["remote_user"] == "alice"
    assert "on_event hook failed for sign_in.completed" in caplog.text


def test_ini_names_the_hook_by_import_path():
    settings = Settings.from_mapping(ini_settings(OFFLINE_ISSUER, on_event="logging:getLogger"))
    assert settings.on_event is logging.getLogger


@pytest.mark.parametrize("value", ["no_such_module:hook", "logging:no_such_function"])
def test_unimportable_hook_names_the_setting(value):
    with pytest.raises(ConfigurationError, match="'on_event'"):
        Settings.from_mapping(ini_settings(OFFLINE_ISSUER, on_event=value))
