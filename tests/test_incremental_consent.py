"""Incremental consent: reading and writing never sign the user in again (issue 10).

Each test runs against the Entra-like provider (one consent and one refresh token
for every resource) and the stock one (consent per scope; each refresh token covers
the scopes of the sign-in that issued it, and rotates). A sign-in of the same account
for more scopes adds a grant to the session; another account replaces everything.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from support.apps import TODO_READ, TODO_WRITE, make_testapp
from support.consent import FormBrowser
from support.sessions import session_of
from webob import Request, Response
from webob.dec import wsgify
from webob.exc import HTTPSeeOther

from msal_wsgi import ACQUIRE_TOKEN, TOKEN, USER
from msal_wsgi import _environ as K

pytestmark = pytest.mark.both_provider_modes

ROOT = Path(__file__).resolve().parents[1]
STALE = 3.5  # seconds until msal treats a 303 s access token (todo-web-rotating) as expired


class TodoApp:
    """The sample's shape: GET /todos lists, POST /todos adds and answers 303; it records what it got."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.scopes: list[tuple[str, ...]] = []

    @wsgify
    def __call__(self, request: Request) -> Response:
        token = request.environ[TOKEN]
        self.scopes.append(token.scopes)
        if request.method == "POST":
            self.items.append(request.POST["description"])
            return HTTPSeeOther(location="/todos")
        if "acquire" in request.GET:
            other = request.environ[ACQUIRE_TOKEN](request.GET["acquire"].split())
            return Response(json_body={"acquired": list(other.scopes)})
        return Response(json_body={"user": request.environ[USER].username, "items": self.items,
                                   "scopes": list(token.scopes)})


def grants_in(app) -> int:
    stored = session_of(app)
    return 1 + len(stored.get(K.SESSION_GRANTS) or [])


def test_a_sign_in_for_more_scopes_keeps_the_earlier_grant(provider):
    todo = TodoApp()
    browser = FormBrowser(make_testapp(provider, app=todo), provider)
    assert browser.get("/todos").json["scopes"] == [TODO_READ]
    read_token = session_of(browser.app)[K.SESSION_USER]["tokens"][TODO_READ][0]
    sid = browser.app.cookies["sid"]

    listed = browser.post("/todos", {"description": "water the plants"})
    assert listed.json["items"] == ["water the plants"]
    assert todo.scopes[-2:] == [(TODO_WRITE,), (TODO_READ,)]
    if provider.mode == "stock":  # the write scope needed a consent, and so a second grant
        assert browser.prompts == [["login", "consent"], ["consent"]] and browser.resubmissions == 1
        assert grants_in(browser.app) == 2 and browser.app.cookies["sid"] != sid
    else:  # the first refresh token serves the write scope too
        assert browser.prompts == [["login", "consent"]] and browser.resubmissions == 0
        assert grants_in(browser.app) == 1
    # The read token of the first sign-in is still the one served: nothing was replaced.
    assert session_of(browser.app)[K.SESSION_USER]["tokens"][TODO_READ][0] == read_token


def test_mixed_reads_and_writes_make_no_sign_in_after_one_consent_each(provider, tmp_path):
    """After one consent to read and one to write, any mix of GET and POST makes 0 sign-ins."""
    todo = TodoApp()
    browser = FormBrowser(make_testapp(provider, app=todo, client_id="todo-web-rotating"), provider)
    browser.get("/todos")
    browser.post("/todos", {"description": "first"})
    consents = len(browser.prompts)
    mark = provider.mark()
    for round_ in range(3):
        time.sleep(STALE)  # both access tokens are now stale: each is refreshed with its own grant
        for n, method in enumerate(["GET", "POST", "POST", "GET", "POST", "GET"]):
            if method == "GET":
                assert browser.get("/todos").status_int == 200
            else:
                assert browser.post("/todos", {"description": f"{round_}.{n}"}).status_int == 200
    sign_ins = provider.authorizations_since(mark)
    token_requests = provider.token_requests_since(mark)
    figures = {"mode": provider.mode, "sign_ins_before": consents, "sign_ins_after": len(sign_ins),
               "token_requests_after": len(token_requests),
               "failed_token_requests_after": sum(1 for r in token_requests if r["status"] != 200),
               "requests": 18, "items": len(todo.items)}
    _record(figures)
    assert sign_ins == [] and browser.prompts[consents:] == []
    assert [r["status"] for r in token_requests] == [200] * 6  # a refresh per scope and round, none refused
    assert todo.items == ["first"] + [f"{r}.{n}" for r in range(3) for n in (1, 2, 4)]  # each exactly once
    assert consents == (2 if provider.mode == "stock" else 1)


def test_another_account_replaces_everything_under_a_new_session_id(provider):
    todo = TodoApp()
    alice = FormBrowser(make_testapp(provider, app=todo), provider)
    alice.get("/todos")
    alice.post("/todos", {"description": "alice's"})
    sid = alice.app.cookies["sid"]
    bob = FormBrowser(alice.app, provider, login="bob")
    bob._provider_browser = provider.browser()  # another person at the same computer: no single sign-on
    page = bob.get("/auth/login?next=/todos")
    assert page.json["user"] == "bob"
    stored = session_of(alice.app)
    assert alice.app.cookies["sid"] != sid and grants_in(alice.app) == 1
    assert list(stored[K.SESSION_USER]["tokens"]) == [TODO_READ]
    assert "alice" not in json.dumps({k: v for k, v in stored.items() if k != K.SESSION_CACHE})


def test_an_api_caller_needing_more_consent_gets_a_login_url_with_next_and_scope(provider):
    todo = TodoApp()
    browser = FormBrowser(make_testapp(provider, app=todo), provider)
    browser.get("/todos")
    xhr = {"X-Requested-With": "XMLHttpRequest", "Referer": "http://localhost/todos?page=2"}
    answer = browser.app.post("/todos", {"description": "from a script"}, headers=xhr, expect_errors=True)
    if provider.mode == "entra":  # no consent is missing there
        assert answer.status_int == 303 and todo.items == ["from a script"]
        return
    assert answer.status_int == 401 and todo.items == []
    login_url = answer.json["login_url"]
    assert parse_qs(urlsplit(login_url).query) == {"next": ["/todos?page=2"], "scope": [TODO_WRITE]}
    assert f'login_url="{login_url}"' in answer.headers["WWW-Authenticate"]
    start = browser.app.get(login_url)
    assert parse_qs(urlsplit(start.location).query)["scope"][0].split()[0] == TODO_WRITE
    landed = browser.settle(start)
    assert landed.request.path_qs == "/todos?page=2" and browser.prompts[-1] == ["consent"]
    again = browser.app.post("/todos", {"description": "from a script"}, headers=xhr)
    assert again.status_int == 303 and todo.items == ["from a script"]


def test_the_sign_in_endpoint_asks_only_for_configured_scopes(provider):
    app = make_testapp(provider)
    asked = app.get("/auth/login", {"next": "/todos", "scope": f"{TODO_WRITE} https://graph.example/Mail.Send"})
    assert parse_qs(urlsplit(asked.location).query)["scope"][0].split()[0] == TODO_READ  # the unknown one: ignored
    write = app.get("/auth/login", {"next": "/todos", "scope": TODO_WRITE})
    assert parse_qs(urlsplit(write.location).query)["scope"][0].split()[0] == TODO_WRITE


def test_acquire_token_for_an_unconsented_resource_asks_consent_for_that_resource(provider):
    todo = TodoApp()
    browser = FormBrowser(make_testapp(provider, app=todo), provider)
    browser.get("/todos")
    mark = provider.mark()
    answer = browser.app.get("/todos?acquire=api://r3/access")
    if provider.mode == "entra":  # the refresh token serves every resource
        assert answer.json == {"acquired": ["api://r3/access"]}
        return
    assert answer.status_int == 302  # the app's acquire_token raised InteractionRequired
    assert parse_qs(urlsplit(answer.location).query)["scope"][0].split()[0] == "api://r3/access"
    assert browser.settle(answer).json == {"acquired": ["api://r3/access"]}
    assert len(provider.authorizations_since(mark)) == 1 and grants_in(browser.app) == 2
    mark = provider.mark()
    assert browser.get("/todos").json["scopes"] == [TODO_READ]  # the first grant still serves the route
    assert provider.requests_since(mark) == []


def _record(figures: dict) -> None:
    """Keep the measured figures for the report (artifacts/ is git-ignored)."""
    path = ROOT / "artifacts" / "consent" / f"mixed-{figures['mode']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")


def test_a_session_of_the_version_before_grants_reads_as_one_grant(provider):
    """Sessions saved before grants existed (no scopes recorded) keep working, refreshes included."""
    todo = TodoApp()
    browser = FormBrowser(make_testapp(provider, app=todo, client_id="todo-web-short"), provider)
    browser.get("/todos")
    stored = session_of(browser.app)
    record = dict(stored[K.SESSION_USER])
    del record["scopes"]
    stored[K.SESSION_USER] = record
    stored.save()
    mark = provider.mark()
    assert browser.get("/todos").json["scopes"] == [TODO_READ]  # from the index, as before
    time.sleep(STALE)
    assert browser.get("/todos").json["scopes"] == [TODO_READ]  # refreshed with the one grant there is
    assert provider.authorizations_since(mark) == [] and len(provider.token_requests_since(mark)) == 1


def test_a_grant_the_new_one_covers_is_dropped(provider):
    todo = TodoApp()
    browser = FormBrowser(make_testapp(provider, app=todo), provider)
    browser.get("/todos")
    browser.get(f"/auth/login?next=/todos&scope={TODO_READ}+{TODO_WRITE}")  # one consent for both
    assert grants_in(browser.app) == 1
    assert set(session_of(browser.app)[K.SESSION_USER]["scopes"]) >= {TODO_READ, TODO_WRITE}
    mark = provider.mark()
    assert browser.post("/todos", {"description": "covered"}).json["items"] == ["covered"]
    assert provider.authorizations_since(mark) == []


def test_grants_are_bounded_the_oldest_dropped_first(provider, monkeypatch):
    from msal_wsgi import _session

    monkeypatch.setattr(_session, "MAX_GRANTS", 2)
    todo = TodoApp()
    browser = FormBrowser(make_testapp(provider, app=todo), provider)
    browser.get("/todos")
    for n in (1, 2):
        assert browser.get(f"/todos?acquire=api://r{n}/access").json == {"acquired": [f"api://r{n}/access"]}
    assert grants_in(browser.app) == (2 if provider.mode == "stock" else 1)
    scopes = [set(session_of(browser.app)[K.SESSION_USER]["scopes"])] + [
        set(g["scopes"]) for g in session_of(browser.app).get(K.SESSION_GRANTS) or []]
    if provider.mode == "stock":  # r2's grant and r1's; the first (the route's) was dropped
        assert "api://r2/access" in scopes[0] and "api://r1/access" in scopes[1]
        assert not any(TODO_READ in s for s in scopes)
