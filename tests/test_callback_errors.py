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
from support.apps import (
    OFFLINE_ISSUER,
    Told,
    browser_of,
    complete_sign_in,
    make_testapp,
    repost_form,
    sign_in,
    sign_out,
)
from support.urls import query_of
from webob import Request

from msal_wsgi import MsalMiddleware
from msal_wsgi.signin import MAX_CALLBACK_BODY, REPOST_FIELD


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


#: The largest callback body read: 64 KB, as SECURITY.md states (signin.MAX_CALLBACK_BODY).
BODY_LIMIT = 64 * 1024


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_at_the_limit_is_read_and_one_byte_more_is_refused(chunked):
    body = b"state=s&code=x&" + b"y" * (BODY_LIMIT - 15)
    assert len(body) == BODY_LIMIT == MAX_CALLBACK_BODY
    assert _post_callback(body, chunked=chunked).status_int == 200  # the cross-site re-post page: read and understood
    assert _post_callback(body + b"y", chunked=chunked).status_int == 413


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


# -- decided before any redemption: an app whose issuer nothing answers at (OFFLINE_ISSUER). A path
# that called the provider would answer 503; each of these answers by itself, and says why in the
# sign_in.failed event.

#: The longest value of each callback parameter (signin.CALLBACK_LIMITS), written out: a change of
#: one of them is a change of behaviour these tests catch.
LIMITS = {"code": 8192, "state": 512, "error": 128, "error_description": 2048, "error_uri": 2048,
          "session_state": 512, "client_info": 4096, "iss": 2048}


def _offline(**overrides: Any) -> tuple[Any, Told]:
    told = Told()
    return make_testapp(OFFLINE_ISSUER, on_event=told, **overrides), told


def _callback(query: str | list[tuple[str, str]], **overrides: Any) -> tuple[Any, str | None]:
    """GET the callback with ``query``: the answer, and the sign_in.failed reason (None without one)."""
    app, told = _offline(**overrides)
    answer = app.get("/auth/callback?" + (query if isinstance(query, str) else urlencode(query)), status="*")
    assert len(told.reasons) <= 1
    return answer, (told.reasons or [None])[0]


def _at(name: str, length: int) -> list[tuple[str, str]]:
    """A callback query with ``name`` ``length`` characters long (and an unknown state beside it)."""
    value = "e" * length if name == "error" else "x" * length
    return [(name, value)] if name == "state" else [("state", "unknown"), (name, value)]


@pytest.mark.parametrize("name", LIMITS)
def test_each_callback_parameter_is_accepted_at_its_limit(name):
    answer, reason = _callback(_at(name, LIMITS[name]))
    # read and understood: the state is unknown (or the provider's error is shown), not malformed
    assert reason == ("provider_error" if name == "error" else "unknown_state")
    assert answer.status_int == 400


@pytest.mark.parametrize("name", LIMITS)
def test_each_callback_parameter_one_character_over_its_limit_is_malformed(name):
    answer, reason = _callback(_at(name, LIMITS[name] + 1))
    assert (answer.status_int, reason) == (400, "malformed_response")
    assert "The sign-in response was malformed." in answer.text and "Sign in again" in answer.text


def test_the_limits_are_the_ones_tested_here():
    from msal_wsgi.signin import CALLBACK_LIMITS

    assert CALLBACK_LIMITS == LIMITS


@pytest.mark.parametrize("name", [*LIMITS, REPOST_FIELD])
def test_a_callback_parameter_given_twice_is_malformed(name):
    value = "1" if name == REPOST_FIELD else "v"
    answer, reason = _callback([("state", "unknown"), (name, value), (name, value)] if name != "state"
                               else [(name, value), (name, value)])
    assert (answer.status_int, reason) == (400, "malformed_response")


@pytest.mark.parametrize(("query", "reason"), [
    ("state=unknown&state=", "malformed_response"),
    ("iss=&iss=" + OFFLINE_ISSUER, "malformed_response"),
    ("other=1&state=a&state=b", "malformed_response"),
    ("state=unknown&error=", "provider_error"),
], ids=["repeated-with-an-empty-value", "iss-empty-then-given", "repeated-after-an-unknown-parameter",
        "an-empty-error-is-an-error"])
def test_empty_and_unknown_parameters_do_not_hide_the_others(query, reason):
    answer, told = _callback(query)
    assert (answer.status_int, told) == (400, reason)


def test_the_log_shows_the_first_100_characters_of_a_content_type_that_is_not_a_form(caplog):
    content_type = "application/" + "x" * 100 + "-end"
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        answer = _post_callback(b"state=s", content_type)
    assert answer.status_int == 400
    assert f"the callback body is not a form ({content_type[:100]!r})" in caplog.text


@pytest.mark.parametrize(("query", "reason"), [
    (f"state=unknown&{REPOST_FIELD}=1", "unknown_state"),
    (f"state=unknown&{REPOST_FIELD}=11", "malformed_response"),
    ("state=unknown&other=1&other=2&long=" + "x" * 10_000, "unknown_state"),
    ("state=unknown&code=abc", "unknown_state"),
    ("code=abc", "unknown_state"),
    ("state=&code=abc", "unknown_state"),
    ("", "unknown_state"),
], ids=["repost-mark-of-one-character", "repost-mark-longer", "other-parameters-ignored", "unknown-state",
        "no-state", "empty-state", "nothing"])
def test_a_callback_without_a_known_state_is_refused_before_any_redemption(query, reason):
    answer, told = _callback(query)
    assert (answer.status_int, told) == (400, reason)
    assert "Sign in again" in answer.text


@pytest.mark.parametrize(("error", "status", "reason"), [
    ("access_denied", 403, "access_denied"),
    ("consent_required", 403, "access_denied"),
    ("server_error", 400, "provider_error"),
    ("interaction_required", 400, "provider_error"),
], ids=["access-denied", "consent-required", "server-error", "interaction-required"])
def test_a_provider_error_is_shown_even_for_an_unknown_state(error, status, reason):
    answer, told = _callback([("state", "unknown"), ("error", error), ("error_description", "Not <today>")])
    assert (answer.status_int, told) == (status, reason)
    assert "The identity provider said: Not &lt;today&gt;" in answer.text


def test_a_provider_error_without_a_description_shows_the_error():
    answer, _ = _callback([("error", "server_error"), ("error_description", "")])
    assert "The identity provider said: server_error" in answer.text


def test_the_failure_page_signs_in_again_and_links_home_under_the_mount_point():
    app, told = _offline(redirect_uri="http://localhost/app/auth/callback")
    answer = app.get("/app/auth/callback?state=unknown", extra_environ={"SCRIPT_NAME": "/app"}, status=400)
    page = answer.html
    assert page.find("a", class_="button")["href"] == "/app/auth/login"
    assert page.find("a", string="Back to the home page")["href"] == "/app/"
    assert told.reasons == ["unknown_state"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
def test_the_callback_accepts_get_and_post_only(method):
    app, told = _offline()
    answer = app.request("/auth/callback?code=x&state=y", method=method, status="*")
    assert answer.status_int == 405 and told.reasons == []
    assert "sid" not in app.cookies
    if method != "HEAD":
        assert "The sign-in callback accepts GET and POST." in answer.text


def _form_post(app: Any, fields: list[tuple[str, str]], **kwargs: Any) -> Any:
    return app.post("/auth/callback", urlencode(fields), content_type="application/x-www-form-urlencoded",
                    status="*", **kwargs)


def test_a_form_post_is_reposted_with_the_callback_parameters_only():
    app, told = _offline()
    fields = [("code", "c"), ("state", "s"), ("iss", OFFLINE_ISSUER), ("other", "dropped")]
    page = _form_post(app, fields)
    assert page.status_int == 200 and told.reasons == [] and "Set-Cookie" not in page.headers
    form = repost_form(page.text)
    assert urlsplit(form.action).path == "/auth/callback"
    assert form.fields == {"code": "c", "state": "s", "iss": OFFLINE_ISSUER, REPOST_FIELD: "1"}


def test_the_repost_goes_to_the_callback_under_the_mount_point():
    app, _ = _offline(redirect_uri="http://localhost/app/auth/callback")
    page = app.post("/app/auth/callback", "state=s", content_type="application/x-www-form-urlencoded",
                    extra_environ={"SCRIPT_NAME": "/app"})
    assert repost_form(page.text).action == "/app/auth/callback"


@pytest.mark.parametrize(("mark", "status", "reason"), [
    ("1", 400, "unknown_state"),
    ("0", 200, None),
    ("", 200, None),
], ids=["reposted", "other-mark", "empty-mark"])
def test_only_the_repost_of_this_site_is_read_as_the_answer(mark, status, reason):
    app, told = _offline()
    answer = _form_post(app, [("state", "unknown"), ("code", "c"), (REPOST_FIELD, mark)])
    assert answer.status_int == status and told.reasons == ([reason] if reason else [])
    if status == 200:
        assert repost_form(answer.text).fields[REPOST_FIELD] == "1"


@pytest.mark.parametrize(("fields", "reason"), [
    ([("state", "x" * 513)], "malformed_response"),
    ([("state", "a"), ("state", "b")], "malformed_response"),
    ([("code", "x" * 8193), ("state", "s")], "malformed_response"),
    ([(REPOST_FIELD, "1"), (REPOST_FIELD, "1"), ("state", "s")], "malformed_response"),
], ids=["state-over-its-limit", "state-twice", "code-over-its-limit", "repost-mark-twice"])
def test_a_form_post_body_is_held_to_the_same_rules(fields, reason):
    app, told = _offline()
    answer = _form_post(app, fields)
    assert (answer.status_int, told.reasons) == (400, [reason])


def test_a_form_body_with_a_charset_parameter_is_a_form():
    app, _ = _offline()
    answer = app.post("/auth/callback", "state=s&code=c", status="*",
                      content_type="application/x-www-form-urlencoded; charset=UTF-8")
    assert answer.status_int == 200 and repost_form(answer.text).fields["state"] == "s"


def test_a_declared_length_over_the_limit_is_refused_unread():
    body = b"state=s&code=" + b"x" * MAX_CALLBACK_BODY
    request = Request.blank("/auth/callback", method="POST", body=body,
                            content_type="application/x-www-form-urlencoded")
    request.environ["wsgi.input"] = io.BytesIO(b"state=s")  # what it says it sends is what counts
    assert request.get_response(_OFFLINE).status_int == 413
