"""Every way a callback can go wrong ends on a clear 4xx page with a way forward, never a 500."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import pytest

from support.apps import complete_sign_in, make_testapp, sign_in


def _assert_restart_page(answer, status):
    assert answer.status_int == status
    assert answer.content_type == "text/html"
    assert "Sign in again" in answer.text and "Traceback" not in answer.text
    assert answer.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("error,status", [("access_denied", 403), ("server_error", 400), ("invalid_scope", 400)])
def test_provider_error_is_shown_and_logged(provider, caplog, error, status):
    app = make_testapp(provider)
    start = app.get("/todos")
    state = dict(p.split("=", 1) for p in urlsplit(start.location).query.split("&"))["state"]
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        answer = app.get("/auth/callback", {"error": error, "error_description": "<b>nope</b>", "state": state},
                         expect_errors=True)
    _assert_restart_page(answer, status)
    assert "&lt;b&gt;nope&lt;/b&gt;" in answer.text
    assert "next=%2Ftodos" in answer.text
    assert error in caplog.text


def test_unknown_state_is_refused_before_any_redemption(provider):
    app = make_testapp(provider)
    app.get("/todos")
    mark = provider.mark()
    answer = app.get("/auth/callback", {"code": "abc", "state": "forged"}, expect_errors=True)
    _assert_restart_page(answer, 400)
    assert provider.token_requests_since(mark) == []


def test_expired_state_is_refused(provider):
    app = make_testapp(provider, sign_in_timeout=1)
    start = app.get("/todos")
    import time

    time.sleep(1.5)
    _assert_restart_page(complete_sign_in(app, provider, start), 400)


def test_replayed_callback_after_sign_out_is_refused(provider):
    app = make_testapp(provider, response_mode="query")
    start = app.get("/todos")
    result = provider.sign_in(start.location)
    app.get("/auth/callback", dict(result.params)).follow()
    app.get("/auth/logout")
    mark = provider.mark()
    answer = app.get("/auth/callback", dict(result.params), expect_errors=True)
    _assert_restart_page(answer, 400)
    assert provider.token_requests_since(mark) == []


def test_callback_without_a_session_is_refused(provider):
    app = make_testapp(provider, response_mode="query")
    start = app.get("/todos")
    result = provider.sign_in(start.location)
    app.reset()  # another browser, or the cookie expired
    _assert_restart_page(app.get("/auth/callback", dict(result.params), expect_errors=True), 400)


def test_callback_without_code_is_refused(provider):
    app = make_testapp(provider)
    start = app.get("/todos")
    state = dict(p.split("=", 1) for p in urlsplit(start.location).query.split("&"))["state"]
    _assert_restart_page(app.get("/auth/callback", {"state": state}, expect_errors=True), 400)


def test_code_the_provider_rejects_is_a_clear_error(provider):
    app = make_testapp(provider, response_mode="query")
    start = app.get("/todos")
    result = provider.sign_in(start.location)
    params = dict(result.params, code="not-a-real-code")
    _assert_restart_page(app.get("/auth/callback", params, expect_errors=True), 400)


def test_form_post_is_reposted_from_this_site_without_touching_the_session(provider):
    app = make_testapp(provider)
    start = app.get("/todos")
    result = provider.sign_in(start.location)
    app.reset()  # the cross-site POST carries no session cookie
    page = app.post(urlsplit(result.url).path, result.form)
    assert "Set-Cookie" not in page.headers
    assert "form-action 'self'" in page.headers["Content-Security-Policy"]
    assert page.forms["f"]["msal_wsgi_repost"].value == "1"


def test_signed_in_user_still_reaches_the_app_after_a_bad_callback(provider):
    app = make_testapp(provider)
    sign_in(app, provider)
    app.get("/auth/callback", {"error": "access_denied"}, expect_errors=True)
    assert app.get("/todos").json["remote_user"] == "alice"


def test_callback_refuses_other_methods_without_touching_the_session(provider):
    app = make_testapp(provider)
    answer = app.put("/auth/callback?code=x&state=y", expect_errors=True)
    assert answer.status_int == 405 and "Traceback" not in answer.text
    assert "sid" not in app.cookies
