"""The callback reads a form_post body itself: bounded, strictly UTF-8, a form and nothing else.

These requests are built by hand (``webob.Request.blank``) because a client can send them and
WebTest cannot (a chunked body without Content-Length), or would refuse them.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from beaker.middleware import SessionMiddleware
from webob import Request

from msal_wsgi import MsalMiddleware
from msal_wsgi.signin import MAX_CALLBACK_BODY


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"app"]


MIDDLEWARE = SessionMiddleware(MsalMiddleware(app, client_id="id", client_secret="s",
                                              oidc_authority="https://id.example/realm",
                                              redirect_uri="https://app.example/auth/callback"),
                               {"session.type": "memory"})


def post(body: bytes, content_type: str = "application/x-www-form-urlencoded", *, chunked: bool = False,
         stream: io.BytesIO | None = None) -> Any:
    request = Request.blank("/auth/callback", method="POST", body=body, content_type=content_type)
    if chunked:  # what a server hands on for Transfer-Encoding: chunked: no length, a terminated input
        del request.environ["CONTENT_LENGTH"]
        request.environ["wsgi.input"] = stream if stream is not None else io.BytesIO(body)
        request.environ["wsgi.input_terminated"] = True
    return request.get_response(MIDDLEWARE)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_refused_with_413_without_reading_it_all(chunked):
    body = b"state=s&code=" + b"x" * (MAX_CALLBACK_BODY * 4)
    stream = io.BytesIO(body)
    answer = post(body, chunked=chunked, stream=stream)
    assert answer.status_int == 413 and "Sign in again" in answer.text
    if chunked:
        assert stream.tell() <= MAX_CALLBACK_BODY + 1


def test_a_body_at_the_limit_is_read():
    body = b"state=s&code=x&" + b"y" * (MAX_CALLBACK_BODY - 15)
    assert len(body) == MAX_CALLBACK_BODY
    assert post(body).status_int == 200  # the cross-site re-post page: read and understood


@pytest.mark.parametrize(("body", "content_type"), [
    (b"state=s&code=%ff%fe", "application/x-www-form-urlencoded"),
    ("state=s&code=\u00e9".encode("latin-1"), "application/x-www-form-urlencoded"),
    (b"state=s&code=caf%E9", "application/x-www-form-urlencoded; charset=ISO-8859-1"),
], ids=["percent-encoded-non-utf8", "raw-non-ascii", "latin1-charset"])
def test_non_utf8_bodies_are_refused_with_400(caplog, body, content_type):
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        answer = post(body, content_type)
    assert answer.status_int == 400 and "Traceback" not in answer.text


@pytest.mark.parametrize("content_type", [
    "multipart/form-data; boundary=", "multipart/form-data", "application/json", "text/plain"])
def test_bodies_that_are_not_forms_are_refused_with_400(caplog, content_type):
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        answer = post(b"--x\r\ncontent-disposition: form-data; name=code\r\n\r\nabc\r\n--x--", content_type)
    assert answer.status_int == 400 and "malformed_response" in caplog.text
