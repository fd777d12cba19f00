"""State is single use, bound to the browser's session, and checked before the code is redeemed."""

from __future__ import annotations

import time

import webtest
from support.apps import complete_sign_in, make_testapp, sign_in


def _query_sign_in(app, provider, path="/todos"):
    start = app.get(path)
    return provider.sign_in(start.location).params


def test_repeated_code_or_state_is_rejected_without_redeeming(provider):
    app = make_testapp(provider, response_mode="query")
    params = _query_sign_in(app, provider)
    mark = provider.mark()
    for name in ("code", "state"):
        query = "&".join(f"{k}={v}" for k, v in params.items()) + f"&{name}=other"
        answer = app.get("/auth/callback?" + query, status=400)
        assert "malformed" in answer.text
    assert provider.token_requests_since(mark) == []
    assert app.get("/auth/callback", params).status_int == 302  # the state was not consumed by the refusals


def test_state_from_another_browser_is_refused_without_redeeming(provider):
    victim = make_testapp(provider, response_mode="query")
    params = _query_sign_in(victim, provider)
    attacker = webtest.TestApp(victim.app)  # same server, another cookie jar
    attacker.get("/todos")
    mark = provider.mark()
    attacker.get("/auth/callback", params, status=400)
    assert provider.token_requests_since(mark) == []
    assert victim.get("/auth/callback", params).status_int == 302


def test_back_button_after_sign_in_moves_on_to_the_saved_page(provider):
    app = make_testapp(provider, response_mode="query")
    params = _query_sign_in(app, provider, "/todos?page=2")
    assert app.get("/auth/callback", params).location.endswith("/todos?page=2")
    mark = provider.mark()
    again = app.get("/auth/callback", params)  # the state is used up, but this sign-in completed
    assert again.status_int == 302 and again.location.endswith("/todos?page=2")
    assert provider.token_requests_since(mark) == []


def test_pending_sign_ins_drop_the_oldest(provider):
    app = make_testapp(provider, response_mode="query", max_pending_sign_ins=2)
    oldest = _query_sign_in(app, provider)
    app.get("/todos")
    app.get("/todos")
    mark = provider.mark()
    app.get("/auth/callback", oldest, status=400)
    assert provider.token_requests_since(mark) == []


def test_unknown_state_while_signed_in_does_not_sign_out(provider):
    app = make_testapp(provider)
    sign_in(app, provider)
    app.get("/auth/callback", {"state": "x" * 40, "code": "y"}, status=400)
    assert app.get("/todos").json["remote_user"] == "alice"


def test_expired_second_tab_after_a_completed_sign_in_moves_on(provider):
    app = make_testapp(provider, response_mode="query", sign_in_timeout=2)
    tab_b = provider.sign_in(app.get("/todos/b").location)
    assert complete_sign_in(app, provider, app.get("/todos/a")).status_int == 302  # tab A signs in
    time.sleep(2.2)  # tab B's pending sign-in has expired
    mark = provider.mark()
    answer = app.get("/auth/callback", dict(tab_b.params))
    assert answer.status_int == 302 and answer.location.endswith("/todos/b")
    assert provider.token_requests_since(mark) == []
    assert app.get("/todos/b").json["remote_user"] == "alice"
