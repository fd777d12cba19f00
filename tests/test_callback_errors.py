"""Every way a callback can go wrong ends on a clear 4xx page with a way forward, never a 500.

The state is single use, bound to the browser's session, and checked before the
code is redeemed; a replay of a sign-in that completed moves on to its page.
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from beaker.middleware import SessionMiddleware
from support.apps import OFFLINE_ISSUER, browser_of, complete_sign_in, make_testapp, repost_form, sign_in, sign_out
from support.urls import query_of
from webob import Request

from msal_wsgi import MsalMiddleware
from msal_wsgi.signin import MAX_CALLBACK_BODY


def _assert_restart_page(answer, status):
    assert answer.status_int == status
    assert answer.content_type == "text/html"
    assert "Sign in again" in answer.text and "Traceback" not in answer.text
    assert answer.headers["Cache-Control"] == "no-store"


def _query_sign_in(app, provider, path="/todos"):
    """Start a sign-in at ``path`` and sign in at the provider: the callback's parameters (query mode)."""
    return provider.sign_in(app.get(path).location).params


@pytest.mark.parametrize("error,status", [("access_denied", 403), ("server_error", 400), ("invalid_scope", 400)])
def test_provider_error_is_shown_and_logged(provider, caplog, error, status):
    app = make_testapp(provider)
    state = query_of(app.get("/todos").location)["state"]
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
    time.sleep(1.5)
    _assert_restart_page(complete_sign_in(app, provider, start), 400)


def test_pending_sign_ins_are_bounded_dropping_the_oldest(provider):
    app = make_testapp(provider, max_pending_sign_ins=2)
    oldest = app.get("/todos/1")
    app.get("/todos/2")
    app.get("/todos/3")
    mark = provider.mark()
    _assert_restart_page(complete_sign_in(app, provider, oldest), 400)
    assert provider.token_requests_since(mark) == []


def test_repeated_code_or_state_is_rejected_without_redeeming(provider):
    app = make_testapp(provider, response_mode="query")
    params = _query_sign_in(app, provider)
    mark = provider.mark()
    for name in ("code", "state"):
        query = urlencode([*params.items(), (name, "other")])
        answer = app.get("/auth/callback?" + query, status=400)
        assert "malformed" in answer.text
    assert provider.token_requests_since(mark) == []
    assert app.get("/auth/callback", params).status_int == 302  # the state was not consumed by the refusals


def test_state_from_another_browser_is_refused_without_redeeming(provider):
    victim = make_testapp(provider, response_mode="query")
    params = _query_sign_in(victim, provider)
    attacker = browser_of(victim)  # same server, another cookie jar
    attacker.get("/todos")
    mark = provider.mark()
    attacker.get("/auth/callback", params, status=400)
    assert provider.token_requests_since(mark) == []
    assert victim.get("/auth/callback", params).status_int == 302


def test_callback_without_a_session_is_refused(provider):
    app = make_testapp(provider, response_mode="query")
    params = _query_sign_in(app, provider)
    app.reset()  # another browser, or the cookie expired
    _assert_restart_page(app.get("/auth/callback", params, expect_errors=True), 400)


def test_callback_without_code_is_refused(provider):
    app = make_testapp(provider)
    state = query_of(app.get("/todos").location)["state"]
    _assert_restart_page(app.get("/auth/callback", {"state": state}, expect_errors=True), 400)


def test_code_the_provider_rejects_is_a_clear_error(provider):
    app = make_testapp(provider, response_mode="query")
    params = dict(_query_sign_in(app, provider), code="not-a-real-code")
    _assert_restart_page(app.get("/auth/callback", params, expect_errors=True), 400)


def test_replayed_callback_after_sign_out_is_refused(provider):
    app = make_testapp(provider, response_mode="query")
    params = _query_sign_in(app, provider)
    app.get("/auth/callback", params).follow()
    sign_out(app)
    mark = provider.mark()
    answer = app.get("/auth/callback", params, expect_errors=True)
    _assert_restart_page(answer, 400)
    assert provider.token_requests_since(mark) == []


def test_back_button_after_sign_in_moves_on_to_the_saved_page(provider):
    app = make_testapp(provider, response_mode="query")
    params = _query_sign_in(app, provider, "/todos?page=2")
    assert app.get("/auth/callback", params).location.endswith("/todos?page=2")
    mark = provider.mark()
    again = app.get("/auth/callback", params)  # the state is used up, but this sign-in completed
    assert again.status_int == 302 and again.location.endswith("/todos?page=2")
    assert provider.token_requests_since(mark) == []


def test_expired_second_tab_after_a_completed_sign_in_moves_on(provider):
    app = make_testapp(provider, response_mode="query", sign_in_timeout=2)
    tab_b = _query_sign_in(app, provider, "/todos/b")
    assert complete_sign_in(app, provider, app.get("/todos/a")).status_int == 302  # tab A signs in
    time.sleep(2.2)  # tab B's pending sign-in has expired
    mark = provider.mark()
    answer = app.get("/auth/callback", tab_b)
    assert answer.status_int == 302 and answer.location.endswith("/todos/b")
    assert provider.token_requests_since(mark) == []
    assert app.get("/todos/b").json["remote_user"] == "alice"


@pytest.mark.parametrize(("params", "status"), [
    ({"error": "access_denied"}, 403),
    ({"state": "x" * 40, "code": "y"}, 400),
], ids=["provider-error", "unknown-state"])
def test_a_bad_callback_does_not_sign_a_signed_in_user_out(provider, params, status):
    app = make_testapp(provider)
    sign_in(app, provider)
    app.get("/auth/callback", params, status=status)
    assert app.get("/todos").json["remote_user"] == "alice"


def test_form_post_is_reposted_from_this_site_without_touching_the_session(provider):
    app = make_testapp(provider)
    result = provider.sign_in(app.get("/todos").location)
    app.reset()  # the cross-site POST carries no session cookie
    page = app.post(urlsplit(result.url).path, result.form)
    assert "Set-Cookie" not in page.headers
    assert "form-action 'self'" in page.headers["Content-Security-Policy"]
    assert repost_form(page.text).fields == {**result.form, "msal_wsgi_repost": "1"}


def test_callback_refuses_other_methods_without_touching_the_session():
    app = make_testapp(OFFLINE_ISSUER)  # refused before anything reaches a provider
    answer = app.put("/auth/callback?code=x&state=y", expect_errors=True)
    assert answer.status_int == 405 and "Traceback" not in answer.text
    assert "sid" not in app.cookies


# -- the form_post body, read by the callback itself: bounded, strictly UTF-8, a form and nothing else.
# These requests are built by hand (webob.Request.blank): a client can send them and WebTest cannot
# (a chunked body without Content-Length), or would refuse them.

def _plain_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"app"]


_OFFLINE = SessionMiddleware(MsalMiddleware(_plain_app, client_id="id", client_secret="s",
                                            oidc_authority=OFFLINE_ISSUER,
                                            redirect_uri="https://app.example/auth/callback"),
                             {"session.type": "memory"})


def _post_callback(body: bytes, content_type: str = "application/x-www-form-urlencoded", *, chunked: bool = False,
         stream: io.BytesIO | None = None) -> Any:
    request = Request.blank("/auth/callback", method="POST", body=body, content_type=content_type)
    if chunked:  # what a server hands on for Transfer-Encoding: chunked: no length, a terminated input
        del request.environ["CONTENT_LENGTH"]
        request.environ["wsgi.input"] = stream if stream is not None else io.BytesIO(body)
        request.environ["wsgi.input_terminated"] = True
    return request.get_response(_OFFLINE)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_refused_with_413_without_reading_it_all(chunked):
    body = b"state=s&code=" + b"x" * (MAX_CALLBACK_BODY * 4)
    stream = io.BytesIO(body)
    answer = _post_callback(body, chunked=chunked, stream=stream)
    assert answer.status_int == 413 and "Sign in again" in answer.text
    if chunked:
        assert stream.tell() <= MAX_CALLBACK_BODY + 1


def test_a_body_at_the_limit_is_read():
    body = b"state=s&code=x&" + b"y" * (MAX_CALLBACK_BODY - 15)
    assert len(body) == MAX_CALLBACK_BODY
    assert _post_callback(body).status_int == 200  # the cross-site re-post page: read and understood


@pytest.mark.parametrize(("body", "content_type"), [
    (b"state=s&code=%ff%fe", "application/x-www-form-urlencoded"),
    ("state=s&code=\u00e9".encode("latin-1"), "application/x-www-form-urlencoded"),
    (b"state=s&code=caf%E9", "application/x-www-form-urlencoded; charset=ISO-8859-1"),
], ids=["percent-encoded-non-utf8", "raw-non-ascii", "latin1-charset"])
def test_non_utf8_bodies_are_refused_with_400(caplog, body, content_type):
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        answer = _post_callback(body, content_type)
    assert answer.status_int == 400 and "Traceback" not in answer.text


@pytest.mark.parametrize("content_type", [
    "multipart/form-data; boundary=", "multipart/form-data", "application/json", "text/plain"])
def test_bodies_that_are_not_forms_are_refused_with_400(caplog, content_type):
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        answer = _post_callback(b"--x\r\ncontent-disposition: form-data; name=code\r\n\r\nabc\r\n--x--", content_type)
    assert answer.status_int == 400 and "malformed_response" in caplog.text
