"""Arbitrary query strings, form bodies, huge values and odd bytes: never a 500, never off-origin."""

from __future__ import annotations

from urllib.parse import quote_from_bytes

import pytest
import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.apps import make_testapp, sign_in
from support.urls import stays_home

from msal_wsgi.routing import Router
from msal_wsgi.settings import Protect

NAMES = st.sampled_from(["code", "state", "next", "error", "error_description", "session_state", "iss",
                         "login_hint", "msal_wsgi_repost", "x"])
RAW = st.one_of(st.binary(max_size=40), st.binary(min_size=5000, max_size=40000), st.text(max_size=30).map(str.encode))
PAIRS = st.lists(st.tuples(NAMES, RAW), max_size=6)
ODD = st.sampled_from(["%", "%2", "%zz", "%FF%FE", "&&", "=", "==&=", "%00", "+", ";"])
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _query(pairs, odd):
    return "&".join(f"{quote_from_bytes(name.encode())}={quote_from_bytes(value)}" for name, value in pairs) + odd


@pytest.fixture(scope="module")
def app(devprovider):
    return make_testapp(devprovider)


def _check(answer):
    assert answer.status_int < 500, answer
    if "Location" in answer.headers and answer.location.startswith("http://localhost"):
        return
    if "Location" in answer.headers:  # the only other place: the provider's authorize or end-session URL
        assert not stays_home(answer.location) and "evil" not in answer.location.split("?")[0]


@FUZZ
@given(path=st.sampled_from(["/auth/callback", "/auth/login", "/auth/logout", "/todos"]), pairs=PAIRS, odd=ODD)
def test_get_with_any_query_string(app, path, pairs, odd):
    _check(app.get(path + "?" + _query(pairs, odd), status="*"))


@FUZZ
@given(pairs=PAIRS, odd=ODD, repost=st.booleans())
def test_form_post_callback_with_any_body(app, pairs, odd, repost):
    body = _query(pairs, odd) + ("&msal_wsgi_repost=1" if repost else "")
    _check(app.post("/auth/callback", body, content_type="application/x-www-form-urlencoded", status="*"))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_the_prefix_matcher_takes_any_path(path):
    router = Router({"/todos": Protect(), "/a/b": Protect()})
    hit = router.match(path)
    assert hit is None or hit[0] in ("/todos", "/a/b")


def test_an_oversized_callback_body_is_refused_unread(app):
    app.post("/auth/callback", "state=" + "x" * 70_000, content_type="application/x-www-form-urlencoded", status=413)


def test_a_provider_error_cannot_forge_log_lines(app, caplog):
    app.get("/auth/callback", {"error": "x\nCRITICAL forged line"}, status=400)
    assert "\nCRITICAL forged" not in caplog.text


@pytest.mark.parametrize("path", ["/todos/\xc0\xaf", "/todos\xff", "/profile/\xff\xfe", "/auth/callback\xff"],
                         ids=["overlong-under-a-prefix", "prefix-and-a-byte", "another-prefix", "an-endpoint-and-a-byte"])
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "TRACE"])
@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_a_path_that_is_not_utf8_is_answered_below_500_signed_in_or_not(app, devprovider, path, method, accept):
    if "sid" not in app.cookies:
        sign_in(app, devprovider)
    for cookie in ({}, {"Cookie": f"sid={app.cookies['sid']}"}):  # a fresh client: WebTest's jar rebuilds the URL
        answer = webtest.TestApp(app.app).request("/", method=method, expect_errors=True, headers={
            "Accept": accept, **cookie}, environ={"PATH_INFO": path})
        assert answer.status_int < 500, answer
