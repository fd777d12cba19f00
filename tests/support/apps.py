"""Building blocks for tests: the app behind the middleware, and a browser-like sign-in."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import webtest
from beaker.middleware import SessionMiddleware

from devprovider import DevProvider, SignInResult
from msal_wsgi import ACQUIRE_TOKEN, TOKEN, USER, InteractionRequired, MsalMiddleware, Protect, Settings

TODO_READ = "api://todo/ToDoList.Read"
TODO_WRITE = "api://todo/ToDoList.ReadWrite"
REDIRECT_URI = "http://localhost/auth/callback"
SECRETS = {
    "todo-web": "todo-web-secret",
    "todo-web-short": "todo-web-short-secret",
    "todo-web-rotating": "todo-web-rotating-secret",
    "todo-web-refresh-in": "todo-web-refresh-in-secret",
}


def echo_app(environ: dict, start_response: Any) -> list[bytes]:
    """Reports what the middleware handed over; ``?acquire=SCOPES`` calls acquire_token."""
    token = environ.get(TOKEN)
    user = environ.get(USER)
    body: dict[str, Any] = {
        "path": environ.get("PATH_INFO"),
        "remote_user": environ.get("REMOTE_USER"),
        "user": user and {"name": user.name, "username": user.username, "sub": user.claims.get("sub")},
        "token": token and {"value": token.value, "expires_on": token.expires_on, "scopes": list(token.scopes)},
    }
    query = environ.get("QUERY_STRING", "")
    if query.startswith("acquire="):
        scopes = query[len("acquire="):].replace("%2F", "/").replace("%3A", ":").split("+")
        try:
            other = environ[ACQUIRE_TOKEN](scopes)
            body["acquired"] = {"value": other.value, "scopes": list(other.scopes)}
        except InteractionRequired as exc:
            body["acquired"] = {"error": exc.reason}
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def settings_for(provider: DevProvider, client_id: str = "todo-web", **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = dict(
        client_id=client_id,
        client_credential=SECRETS.get(client_id),  # todo-web-cert: pass client_credential
        oidc_authority=provider.issuer,
        redirect_uri=REDIRECT_URI,
        protect={"/todos": Protect(read=[TODO_READ], write=[TODO_WRITE]), "/profile": Protect()},
    )
    if provider.mode == "stock":  # its refresh tokens need offline_access, granted only with prompt=consent
        options["prompt"] = "consent"
    options.update(overrides)
    return options


def make_testapp(provider: DevProvider, *, app: Any = echo_app, session: dict[str, Any] | None = None,
                 settings: Settings | None = None, **overrides: Any) -> webtest.TestApp:
    """echo_app behind MsalMiddleware behind Beaker (memory sessions), driven by WebTest with lint on.

    The middleware gets ``settings`` as they are, or else :func:`settings_for` with ``overrides``.
    """
    if settings is not None:
        middleware = MsalMiddleware(app, settings, **overrides)
    else:
        middleware = MsalMiddleware(app, **settings_for(provider, **overrides))
    options = {"session.type": "memory", "session.key": "sid", "session.save_accessed_time": False}
    options.update(session or {})
    testapp = webtest.TestApp(SessionMiddleware(middleware, options))
    testapp.middleware = middleware  # type: ignore[attr-defined]
    return testapp


def complete_sign_in(testapp: webtest.TestApp, provider: DevProvider, authorize: webtest.TestResponse,
                     login: str = "alice") -> webtest.TestResponse:
    """From the 302 to the provider, sign in there and bring the answer back to the app's callback.

    A form_post answer is first re-posted from the app's own page, as a browser would.
    """
    assert authorize.status_int == 302, authorize
    assert authorize.location.startswith(provider.issuer + "/auth?"), authorize.location
    return return_to_app(testapp, provider.sign_in(authorize.location, login=login))


def return_to_app(testapp: webtest.TestApp, result: SignInResult) -> webtest.TestResponse:
    """Bring the provider's answer to the app's callback (re-posting a form_post answer first)."""
    path = urlsplit(result.url).path
    if result.form is None:
        return testapp.get(path, params=dict(result.params), expect_errors=True)
    repost = testapp.post(path, params=result.form)
    assert repost.status_int == 200 and "msal_wsgi_repost" in repost.text, repost
    form = repost.forms["f"]
    return form.submit(expect_errors=True)


def sign_in(testapp: webtest.TestApp, provider: DevProvider, path: str = "/todos",
            login: str = "alice") -> webtest.TestResponse:
    """Visit ``path``, sign in, and return the page the callback sends the browser to."""
    back = complete_sign_in(testapp, provider, testapp.get(path), login=login)
    assert back.status_int == 302, back
    return back.follow()


def session_of(testapp: webtest.TestApp) -> Any:
    """The Beaker memory session behind the test browser's cookie, as the server stores it."""
    from beaker.session import Session

    return Session({}, id=testapp.cookies["sid"], type="memory", use_cookies=False)
