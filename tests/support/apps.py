"""Building blocks for tests: the app behind the middleware, and a browser-like sign-in."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import webtest
from beaker.middleware import SessionMiddleware

from devprovider import DevProvider, Form, SignInResult, forms
from msal_wsgi import ACQUIRE_TOKEN, TOKEN, USER, InteractionRequired, MsalMiddleware, Protect, Settings
from msal_wsgi.signin import REPOST_FIELD

from .sessions import MEMORY_SESSIONS, TEST_SESSION_KEYS

TODO_READ = "api://todo/ToDoList.Read"
TODO_WRITE = "api://todo/ToDoList.ReadWrite"
REDIRECT_URI = "http://localhost/auth/callback"
SECRETS = {
    "todo-web": "todo-web-secret",
    "todo-web-short": "todo-web-short-secret",
    "todo-web-rotating": "todo-web-rotating-secret",
    "todo-web-refresh-in": "todo-web-refresh-in-secret",
}
#: The client whose credential is a certificate (``DevProvider.client_certificate_path``).
CERT_CLIENT = "todo-web-cert"
#: An issuer nothing answers at: for tests that build settings or an app but never reach a provider.
OFFLINE_ISSUER = "https://id.example/realm"
#: Seconds after sign-in until msal treats a 303 s access token (todo-web-short, todo-web-rotating)
#: as expired: it keeps a 300 s margin.
STALE_AFTER = 3.3
#: The headers of an API call: answered with JSON (401, 503), never with a redirect or a page.
JSON = {"Accept": "application/json"}


class Told:
    """An ``on_event`` hook that keeps every event it is told, in order (``events``: name and data)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, data: Any) -> None:
        self.events.append((name, dict(data)))

    def of(self, name: str) -> list[dict[str, Any]]:
        """The data of each event ``name``."""
        return [data for told, data in self.events if told == name]

    @property
    def names(self) -> list[str]:
        """The name of each event, in order."""
        return [name for name, _ in self.events]

    @property
    def reasons(self) -> list[str]:
        """The reason of each ``sign_in.failed``."""
        return [str(data["reason"]) for data in self.of("sign_in.failed")]


def in_parallel(count: int, call: Any) -> list[Any]:
    """``call()`` in ``count`` threads released at once (a barrier); their results, in order."""
    barrier = threading.Barrier(count)

    def one(_: int) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def echo_app(environ: dict, start_response: Any) -> list[bytes]:
    """Reports what the middleware handed over; ``?acquire=SCOPES`` calls acquire_token."""
    token = environ.get(TOKEN)
    user = environ.get(USER)
    body: dict[str, Any] = {
        "path": environ.get("PATH_INFO"),
        "remote_user": environ.get("REMOTE_USER"),
        "user": user and {"name": user.name, "username": user.username, "sub": user.claims.get("sub"), "id": user.id,
                          "tenant": user.tenant},
        "token": token and {"value": token.value, "expires_on": token.expires_on, "scopes": list(token.scopes)},
    }
    acquire = parse_qs(environ.get("QUERY_STRING", "")).get("acquire")
    if acquire:
        try:
            other = environ[ACQUIRE_TOKEN](acquire[0].split())
            body["acquired"] = {"value": other.value, "scopes": list(other.scopes)}
        except InteractionRequired as exc:
            body["acquired"] = {"error": exc.reason}
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def settings_for(provider: DevProvider | str, client_id: str = "todo-web", **overrides: Any) -> dict[str, Any]:
    """MsalMiddleware's keyword settings for ``client_id`` at ``provider`` (or an issuer): /todos and /profile
    protected."""
    options: dict[str, Any] = {
        "client_id": client_id,
        "client_credential": SECRETS.get(client_id),  # todo-web-cert: pass client_credential
        "oidc_authority": provider if isinstance(provider, str) else provider.issuer,
        "redirect_uri": REDIRECT_URI,
        "protect": {"/todos": Protect(read=[TODO_READ], write=[TODO_WRITE]), "/profile": Protect()},
        "session_keys": TEST_SESSION_KEYS,  # what msal_wsgi keeps is sealed, as in production
    }
    if not isinstance(provider, str) and provider.mode == "stock":
        options["prompt"] = "consent"  # its refresh tokens need offline_access, granted only with prompt=consent
    options.update(overrides)
    return options


def make_testapp(provider: DevProvider | str, *, app: Any = echo_app, session: dict[str, Any] | None = None,
                 settings: Settings | None = None, **overrides: Any) -> webtest.TestApp:
    """echo_app behind MsalMiddleware behind Beaker (memory sessions), driven by WebTest with lint on.

    ``provider`` is the provider, or only an issuer (:data:`OFFLINE_ISSUER`) for a test
    that never reaches one. The middleware gets ``settings`` as they are, or else
    :func:`settings_for` with ``overrides``. ``session`` adds Beaker options.
    """
    if settings is not None:
        middleware = MsalMiddleware(app, settings, **overrides)
    else:
        middleware = MsalMiddleware(app, **settings_for(provider, **overrides))
    options = {**MEMORY_SESSIONS, **(session or {})}
    testapp = webtest.TestApp(SessionMiddleware(middleware, options))
    testapp.middleware = middleware  # type: ignore[attr-defined]
    testapp.session_options = options  # type: ignore[attr-defined]
    testapp.session_keys = middleware.settings.session_keys  # type: ignore[attr-defined]
    return testapp


def browser_of(testapp: webtest.TestApp, sid: str | None = None) -> webtest.TestApp:
    """Another browser (cookie jar) on the same server and session store, holding session ``sid`` if given."""
    other = webtest.TestApp(testapp.app)
    other.session_options = getattr(testapp, "session_options", MEMORY_SESSIONS)  # type: ignore[attr-defined]
    other.session_keys = getattr(testapp, "session_keys", TEST_SESSION_KEYS)  # type: ignore[attr-defined]
    if sid is not None:
        other.set_cookie("sid", sid)
    return other


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
    assert repost.status_int == 200, repost
    form = repost_form(repost.text)
    return testapp.post(urlsplit(form.action).path, params=form.fields, expect_errors=True)


def repost_form(page: str) -> Form:
    """The form of the app's re-post page (id ``f``), which carries the provider's answer on from the app's site."""
    found = [form for form in forms(page) if form.attrs.get("id") == "f"]
    assert len(found) == 1, f"no re-post form in {page[:500]}"
    assert found[0].method == "post" and found[0].fields.get(REPOST_FIELD) == "1", found[0]
    return found[0]


def sign_in(testapp: webtest.TestApp, provider: DevProvider, path: str = "/todos",
            login: str = "alice") -> webtest.TestResponse:
    """Visit ``path``, sign in, and return the page the callback sends the browser to."""
    back = complete_sign_in(testapp, provider, testapp.get(path), login=login)
    assert back.status_int == 302, back
    return back.follow()


#: What Chromium sends with a form POST from one of the app's own pages.
SAME_ORIGIN = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}


def sign_out(testapp: webtest.TestApp, next_url: str | None = None, *,
             headers: dict[str, str] | None = None) -> webtest.TestResponse:
    """Open the sign-out page and press its button, as a browser does (``headers``: of that POST, by
    default a same-origin form's); returns the answer to the POST (a 303 to the provider, or a page)."""
    page = testapp.get("/auth/logout", {"next": next_url} if next_url else {})
    assert page.status_int == 200 and page.headers["Cache-Control"] == "no-store", page
    (form,) = forms(page.text)
    assert form.method == "post", form
    return testapp.post(urlsplit(form.action).path, form.fields, headers=SAME_ORIGIN if headers is None else headers,
                        expect_errors=True)


def claims_of(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified: what a test reads of a token the provider issued."""
    return jwt.decode(token, options={"verify_signature": False})


def certificate_credential(pem_path: Path) -> dict[str, str]:
    """The ``client_credential`` of a PEM file holding a private key and its certificate."""
    pem = pem_path.read_text()
    return {"private_key": pem, "public_certificate": pem}
