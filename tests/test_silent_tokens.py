"""Once signed in, tokens come silently: from the session, or by refresh token when they expire.

The session's token index (the hot path) serves a token only when msal itself would:
msal stops serving a cached access token when less than 5 minutes are left or once its
``refresh_on`` (from the provider's ``refresh_in``) has passed; the index must stop at the
same instant, and must never hand out a token for other scopes, another client or
authority. Another user's token and sign-out are in test_session_fixation.py and
test_sign_out.py.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
from beaker.session import Session
from support.apps import JSON, SECRETS, STALE_AFTER, TODO_READ, TODO_WRITE, claims_of, make_testapp, sign_in
from support.sessions import (
    ALL_SESSION_KEYS,
    SESSION_CACHE,
    SESSION_USER,
    cache_secrets,
    msal_cache,
    session_of,
    stored_session,
)

from msal_wsgi import InteractionRequired
from msal_wsgi._session import StoredUser

#: msal's acquire_token_silent serves a cached access token while at least this much of it is left
#: (``expires_in < 5*60`` is expired, in msal/application.py): the index must agree with msal, not with itself.
EXPIRY_MARGIN = 5 * 60


def msal_entry(app, token: str) -> dict:
    """The times msal's cache gave ``token``, as the session's index keeps them (the msal caches in the
    session hold no access tokens: each is kept once, in the index, and put back when msal needs it)."""
    _, expires_on, refresh_on, _ = next(e for e in session_of(app)[SESSION_USER]["tokens"].values() if e[0] == token)
    return {"expires_on": expires_on, "refresh_on": refresh_on}

pytestmark = pytest.mark.both_provider_modes  # Entra-like and stock provider (issue 10)


def test_silent_hit_makes_no_provider_request(provider):
    app = make_testapp(provider)
    first = sign_in(app, provider).json["token"]["value"]
    mark = provider.mark()
    for _ in range(5):
        assert app.get("/todos").json["token"]["value"] == first
    assert provider.requests_since(mark) == []


def test_token_entering_the_refresh_window_is_refreshed_with_exactly_one_token_request(provider):
    app = make_testapp(provider, client_id="todo-web-short")  # 303 s tokens
    first = sign_in(app, provider).json["token"]["value"]
    window = int(msal_entry(app, first)["expires_on"]) - EXPIRY_MARGIN
    mark = provider.mark()
    assert app.get("/todos").json["token"]["value"] == first
    assert provider.requests_since(mark) == []
    time.sleep(max(0.0, window - time.time()) + 0.05)  # now inside msal's 5-minute window
    mark = provider.mark()
    second = app.get("/todos").json["token"]["value"]
    assert second != first
    assert len(provider.token_requests_since(mark)) == 1
    assert claims_of(second)["sub"] == "alice"
    mark = provider.mark()
    assert app.get("/todos").json["token"]["value"] == second
    assert provider.requests_since(mark) == []


def test_token_past_refresh_on_is_not_served(provider):
    app = make_testapp(provider, client_id="todo-web-refresh-in")  # 3600 s tokens, refresh_in 2 s
    first = sign_in(app, provider).json["token"]["value"]
    refresh_on = int(msal_entry(app, first)["refresh_on"])
    assert int(msal_entry(app, first)["expires_on"]) - time.time() > 3000
    time.sleep(max(0.0, refresh_on - time.time()) + 1.05)  # msal refreshes once refresh_on < now
    mark = provider.mark()
    second = app.get("/todos").json["token"]["value"]
    assert second != first
    assert len(provider.token_requests_since(mark)) == 1


@pytest.mark.parametrize(("left", "refresh_in", "served"), [
    (EXPIRY_MARGIN + 60, None, True),
    (EXPIRY_MARGIN + 1, None, True),
    (EXPIRY_MARGIN, None, True),  # msal: expired only when strictly less than 5 minutes are left
    (EXPIRY_MARGIN - 0.5, None, False),
    (-10, None, False),
    (3600, 10, True),
    (3600, 0, False),  # conservative: at refresh_on itself the index defers to msal
    (3600, -10, False),
], ids=["6-min-left", "5-min-1s-left", "exactly-5-min", "inside-window", "expired",
        "before-refresh-on", "at-refresh-on", "past-refresh-on"])
def test_index_serves_only_what_msal_would(left, refresh_in, served):
    now = 1_800_000_000.0
    refresh_on = None if refresh_in is None else int(now + refresh_in)
    record = {"id": "u", "claims": {}, "tokens": {TODO_READ: ["t", now + left, refresh_on, [TODO_READ]]}}
    assert (StoredUser(record).cached_token(TODO_READ, now) is not None) is served


def test_index_keeps_msals_own_expiry_and_refresh_times(provider):
    app = make_testapp(provider, client_id="todo-web-refresh-in")
    before = time.time()
    token = sign_in(app, provider).json["token"]["value"]
    value, expires_on, refresh_on, _ = session_of(app)[SESSION_USER]["tokens"][TODO_READ]
    assert value == token
    assert before + 3600 - 5 <= expires_on <= time.time() + 3600  # msal's: the time of the answer + expires_in
    assert before + 2 - 5 <= refresh_on <= time.time() + 2  # + refresh_in
    assert "AccessToken" not in msal_cache(session_of(app))  # the index holds each access token once


@pytest.mark.entra_only  # one token for two scopes of one resource, then one of them
def test_msal_gets_the_indexed_tokens_back_and_serves_one_covering_other_scopes(provider):
    app = make_testapp(provider)
    sign_in(app, provider)
    both = app.get("/todos", {"acquire": f"{TODO_READ} api://todo/ToDoList.ReadWrite"}).json["acquired"]["value"]
    mark = provider.mark()  # ReadWrite alone: not in the index under that key; msal finds the token covering it
    assert app.get("/todos", {"acquire": "api://todo/ToDoList.ReadWrite"}).json["acquired"]["value"] == both
    assert provider.token_requests_since(mark) == []


def test_revoked_refresh_token_leads_back_to_sign_in(provider):
    app = make_testapp(provider, client_id="todo-web-short")
    sign_in(app, provider)
    (refresh_token,) = cache_secrets(session_of(app), "RefreshToken")
    provider.revoke(refresh_token, "todo-web-short", SECRETS["todo-web-short"])
    time.sleep(STALE_AFTER)
    answer = app.get("/todos")
    assert answer.status_int == 302 and answer.location.startswith(provider.issuer + "/auth?")
    api = app.get("/todos", headers=JSON, status=401)
    assert api.json["error"] == "interaction_required"


@pytest.mark.entra_only  # one refresh token for every scope; stock: test_incremental_consent.py
def test_token_for_other_scopes_on_demand(provider):
    app = make_testapp(provider)
    sign_in(app, provider)
    mark = provider.mark()
    body = app.get("/todos?acquire=api://r3/access").json
    assert claims_of(body["acquired"]["value"])["aud"] == "api://r3"
    assert len(provider.token_requests_since(mark)) == 1
    mark = provider.mark()
    again = app.get("/todos?acquire=api://r3/access").json
    assert again["acquired"]["value"] == body["acquired"]["value"]
    assert provider.requests_since(mark) == []


@pytest.mark.entra_only  # other resources silently: stock needs a consent each (test_incremental_consent.py)
def test_token_for_other_scopes_is_never_served(provider):
    app = make_testapp(provider)
    read = sign_in(app, provider).json["token"]["value"]
    write = app.post("/todos/1", {"x": "1"}).json["token"]
    assert write["value"] != read and TODO_WRITE in claims_of(write["value"])["scope"].split()
    other = app.get("/todos", {"acquire": "api://r7/access"}).json["acquired"]
    assert other["value"] not in (read, write["value"]) and claims_of(other["value"])["aud"] == "api://r7"
    both = app.get("/todos", {"acquire": f"{TODO_READ} {TODO_WRITE}"}).json["acquired"]
    assert set(claims_of(both["value"])["scope"].split()) >= {TODO_READ, TODO_WRITE}


@pytest.mark.parametrize("other", [
    {"client_id": "todo-web-short"},
    {"oidc_authority": "https://127.0.0.1:9/other-op"},
], ids=["another-client", "another-authority"])
def test_session_of_another_client_or_authority_is_signed_out(provider, other):
    app = make_testapp(provider)
    sign_in(app, provider)
    elsewhere = make_testapp(provider, **other)  # same Beaker memory store, same cookie name
    elsewhere.set_cookie("sid", app.cookies["sid"])
    mark = provider.mark()
    answer = elsewhere.get("/todos", headers=JSON, status=401)
    assert answer.json["error"] == "interaction_required"
    assert provider.requests_since(mark) == []


def test_cache_is_written_back_only_when_it_changed(provider, monkeypatch):
    app = make_testapp(provider)
    sign_in(app, provider)
    saves = []
    original = Session.save

    def counting_save(self, accessed_only=False):
        saves.append(accessed_only)
        return original(self, accessed_only)

    monkeypatch.setattr(Session, "save", counting_save)
    for _ in range(3):
        app.get("/todos")
    assert saves == []


def test_a_session_whose_token_cache_is_gone_asks_the_user_to_sign_in(provider):
    app = make_testapp(provider)
    sign_in(app, provider)
    stored = session_of(app)
    del stored[SESSION_CACHE]
    stored.save()
    body = app.get("/todos", {"acquire": "api://r1/access"}).json
    assert body["acquired"] == {"error": "the session holds no token cache"}


class SignedOutMeanwhile:
    """A session lock that, once acquired, finds the session signed out by another request.

    A fault injector: the real race (a sign-out between the fast path and the lock) cannot be
    timed from a test; this lock makes it happen every time, and is otherwise a real ThreadLock.
    """

    def __init__(self) -> None:
        from msal_wsgi.locks import ThreadLock

        self._lock = ThreadLock()

    @contextlib.contextmanager
    def __call__(self, session_id: str) -> Iterator[None]:
        with self._lock(session_id):
            stored = stored_session(session_id)
            for key in ALL_SESSION_KEYS:
                stored.pop(key, None)
            stored.save()
            yield


def test_a_refresh_finds_the_session_signed_out_meanwhile_and_asks_for_a_sign_in(provider):
    app = make_testapp(provider, session_lock=SignedOutMeanwhile())
    sign_in(app, provider)
    mark = provider.mark()
    body = app.get("/todos", {"acquire": "api://r1/access"}).json
    assert body["acquired"] == {"error": "the session was signed out or changed user meanwhile"}
    assert provider.token_requests_since(mark) == []


def signing_out_app(environ, start_response):
    """Signs the user out of this request's session (as a concurrent sign-out would), then asks for a token."""
    for key in ALL_SESSION_KEYS:
        environ["beaker.session"].pop(key, None)
    try:
        environ["msal_wsgi.acquire_token"](["api://r1/access"])
    except InteractionRequired as exc:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [exc.reason.encode()]
    raise AssertionError("a token for a signed-out session")


def test_acquire_token_after_the_user_was_signed_out_is_interaction_required(provider):
    app = make_testapp(provider, app=signing_out_app)
    sign_in(app, provider)
    assert app.get("/todos").text == "the session was signed out or changed user meanwhile"
