"""Beaker installed by msal_wsgi (``session_options``): a failed save is a 503, however the app answers.

Beaker writes the session when the response starts. An app that returns a
generator starts its response lazily, during iteration, after the middleware has
returned: the save must still be answered with a 503 page, not escape to the
server. The store is a real Redis made full (reads work, writes fail).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import webtest
from support.apps import echo_app, settings_for, sign_in
from support.servers import RedisServer

from msal_wsgi import MsalMiddleware


def lazy_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    """A generator app: the response starts (and Beaker saves) only when the server iterates."""
    environ["beaker.session"]["visits"] = environ["beaker.session"].get("visits", 0) + 1
    environ["beaker.session"].save()
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"counted"


def routed(environ: dict[str, Any], start_response: Any) -> Any:
    """``*/count`` is the lazy app; the rest is the echo app."""
    return (lazy_app if environ["PATH_INFO"].endswith("/count") else echo_app)(environ, start_response)


@pytest.mark.parametrize("path", ["/count", "/todos/count"], ids=["public-path", "protected-path"])
def test_a_lazy_app_whose_save_fails_gets_a_503_page(provider, tmp_path, caplog, path):
    with RedisServer(tmp_path / "redis") as redis, redis.client() as admin:
        options = {"type": "ext:redis", "url": redis.url, "key": "sid", "save_accessed_time": False}
        app = webtest.TestApp(MsalMiddleware(routed, **settings_for(provider, session_options=options)))
        sign_in(app, provider)
        assert app.get(path).text == "counted"
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")  # full: reads work, writes fail
        with caplog.at_level(logging.ERROR, logger="msal_wsgi"):
            page = app.get(path, status=503)
        assert page.headers["Retry-After"] and "Traceback" not in page.text
        assert "could not be saved" in caplog.text and "OutOfMemoryError" in caplog.text
        admin.config_set("maxmemory", "0")
        assert app.get(path).text == "counted"
