"""A form POST that needs a sign-in is kept on the server and re-submitted exactly once after it.

The body never goes to the browser: after the callback, a same-site page POSTs a
single-use token to the original URL, and msal_wsgi puts the kept body back.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
import webtest
from support.apps import make_testapp, return_to_app
from support.consent import SAME_ORIGIN, FormBrowser, is_resubmission
from support.sessions import session_of
from webob import Request, Response
from webob.dec import wsgify

from msal_wsgi import _environ as K
from msal_wsgi import replay

ITEM = "café & crème = 2€"


class Recorder:
    """Records every request it serves: method, content type and body; answers 200 with a small page."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes]] = []
        self.lock = threading.Lock()

    @wsgify
    def __call__(self, request: Request) -> Response:
        with self.lock:
            self.seen.append((request.method, request.content_type, request.body))
        if request.method == "POST":
            return Response(f"saved {request.POST.get('description', '')}")
        return Response("the list")

    @property
    def posts(self) -> list[tuple[str, bytes]]:
        return [(kind, body) for method, kind, body in self.seen if method == "POST"]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def _signed_out_post(app, fields, **options):
    """A browser's form POST while signed out: the answer, a 302 to the provider when the form is kept."""
    return app.post("/todos", fields, headers=SAME_ORIGIN, expect_errors=True, **options)


def _to_resubmission(app, provider, answer):
    assert answer.status_int == 302 and answer.location.startswith(provider.issuer), answer
    page = return_to_app(app, provider.sign_in(answer.location))
    assert page.status_int == 200 and is_resubmission(page), page
    return page


def test_a_form_posted_while_signed_out_is_submitted_once_after_the_sign_in(provider, recorder):
    app = make_testapp(provider, app=recorder)
    page = _to_resubmission(app, provider, _signed_out_post(app, {"description": ITEM}))
    assert recorder.seen == []  # the app has seen nothing yet
    done = page.forms["f"].submit()
    assert done.text == f"saved {ITEM}"
    assert recorder.posts == [("application/x-www-form-urlencoded",
                               b"description=caf%C3%A9+%26+cr%C3%A8me+%3D+2%E2%82%AC")]


def test_the_resubmission_page_carries_only_a_token_and_runs_only_its_own_script(provider, recorder):
    app = make_testapp(provider, app=recorder)
    page = _to_resubmission(app, provider, _signed_out_post(app, {"description": "secret plans"}))
    assert "secret plans" not in page.text and "secret" not in str(app.cookies)
    form = page.forms["f"]
    assert form.method.upper() == "POST" and form.action == "/todos"
    assert [name for name in form.fields if name] == [replay.REPLAY_FIELD]
    nonce = re.search(r'<script nonce="([^"]+)">', page.text).group(1)
    csp = page.headers["Content-Security-Policy"]
    assert f"script-src 'nonce-{nonce}'" in csp and "default-src 'none'" in csp
    assert "form-action 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "<noscript><button" in page.text  # without scripts, a button does it
    assert page.headers["Cache-Control"] == "no-store"


def test_a_reload_the_back_button_or_a_replayed_callback_never_submits_twice(provider, recorder):
    app = make_testapp(provider, app=recorder, response_mode="query")
    answer = _signed_out_post(app, {"description": "once"})
    result = provider.sign_in(answer.location)
    page = return_to_app(app, result)
    form = page.forms["f"]
    assert form.submit().text == "saved once"
    again = form.submit()  # a reload of the result, or the button pressed twice
    assert again.status_int == 303 and again.location.endswith("/todos")
    replayed = app.get("/auth/callback", dict(result.params))  # the back button to the callback
    assert replayed.status_int == 302 and replayed.location.endswith("/todos")
    replayed.follow()
    assert [method for method, _, _ in recorder.seen] == ["POST", "GET"]  # one POST, then the page


def test_parallel_resubmissions_of_one_token_reach_the_app_once(provider, recorder):
    app = make_testapp(provider, app=recorder)
    page = _to_resubmission(app, provider, _signed_out_post(app, {"description": "parallel"}))
    token = page.forms["f"][replay.REPLAY_FIELD].value
    cookie = f"sid={app.cookies['sid']}"
    statuses: list[int] = []

    def submit() -> None:
        browser = webtest.TestApp(app.app, extra_environ={"HTTP_COOKIE": cookie})
        statuses.append(browser.post("/todos", {replay.REPLAY_FIELD: token}, expect_errors=True).status_int)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [303] * 7
    assert len(recorder.posts) == 1


def test_a_token_is_bound_to_its_session_and_its_url(provider, recorder):
    app = make_testapp(provider, app=recorder, protect={"/todos": ["api://todo/ToDoList.Read"],
                                                      "/other": ["api://todo/ToDoList.Read"]})
    page = _to_resubmission(app, provider, _signed_out_post(app, {"description": "bound"}))
    token = page.forms["f"][replay.REPLAY_FIELD].value
    stranger = webtest.TestApp(app.app)  # another browser, without this session
    refused = stranger.post("/todos", {replay.REPLAY_FIELD: token}, expect_errors=True)
    assert refused.status_int in (302, 400) and recorder.posts == []
    elsewhere = app.post("/other", {replay.REPLAY_FIELD: token}, expect_errors=True)
    assert elsewhere.status_int == 400 and "Please do this again" in elsewhere.text
    assert recorder.posts == []


def test_an_expired_resubmission_says_to_do_it_again(provider, recorder, monkeypatch):
    app = make_testapp(provider, app=recorder)
    page = _to_resubmission(app, provider, _signed_out_post(app, {"description": "late"}))
    monkeypatch.setattr(replay, "REPLAY_TTL", 0)
    time.sleep(0.01)
    late = page.forms["f"].submit(expect_errors=True)
    assert late.status_int == 400 and "expired" in late.text and recorder.posts == []
    assert not session_of(app).get(K.SESSION_REPLAYS)  # and the body is gone from the session


def test_a_multipart_form_without_files_is_kept_as_it_was(provider, recorder):
    app = make_testapp(provider, app=recorder)
    answer = _signed_out_post(app, {"description": ITEM, "tag": "home"}, content_type="multipart/form-data")
    sent = answer.request.body
    page = _to_resubmission(app, provider, answer)
    assert page.forms["f"].submit().text == f"saved {ITEM}"
    ((kind, body),) = recorder.posts
    assert kind == "multipart/form-data" and body == sent


@pytest.mark.parametrize(("why", "options"), [
    ("it holds a file", {"upload_files": [("attachment", "notes.txt", b"hello")]}),
    ("it is larger than 1 KB", {"params": {"description": "x" * 2000}}),
    ("it is not a form", {"params": '{"description": "json"}', "content_type": "application/json"}),
], ids=["file-upload", "over-the-limit", "json"])
def test_a_body_that_cannot_be_kept_gets_a_page_saying_to_do_it_again(provider, recorder, why, options):
    events: list[tuple[str, dict]] = []
    app = make_testapp(provider, app=recorder, max_replay_body=1024, on_event=lambda n, d: events.append((n, d)))
    params = options.pop("params", {"description": "d"})
    page = app.post("/todos", params, headers=SAME_ORIGIN, expect_errors=True, **options)
    assert page.status_int == 401 and page.content_type == "text/html"
    assert why in page.text and "Sign in, then do it again" in page.text
    assert 'href="/auth/login?next=%2Ftodos' in page.text
    assert ("form.not_kept", {"path": "/todos", "why": why}) in events
    assert "msal_wsgi.flows" not in session_of(app) if "sid" in app.cookies else True  # no sign-in started


def test_a_multipart_body_that_cannot_be_parsed_gets_the_page_not_a_500(provider, recorder):
    app = make_testapp(provider, app=recorder)
    page = app.request("/todos", method="POST", body=b"--abc\r\n\r\n", expect_errors=True,
                       headers={**SAME_ORIGIN, "Content-Type": "multipart/form-data; boundary="})
    assert page.status_int == 401 and "it is not a form that can be read" in page.text


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
    {"Sec-Fetch-Site": "same-site", "Origin": "http://sub.localhost"},
    {"Origin": "https://evil.example"},
    {},
], ids=["cross-site", "same-site-other-origin", "foreign-origin", "no-origin-headers"])
def test_a_post_from_another_site_is_never_kept_for_after_the_sign_in(provider, recorder, headers):
    """Else a cross-site form would become an action done as the victim once they sign in."""
    app = make_testapp(provider, app=recorder)
    page = app.post("/todos", {"description": "transfer everything"}, headers=headers, expect_errors=True)
    assert page.status_int == 401 and "Sign in, then do it again" in page.text
    assert "sid" not in app.cookies  # nothing kept, no sign-in started


def test_an_api_caller_gets_the_401_json_and_nothing_is_kept(provider, recorder):
    app = make_testapp(provider, app=recorder)
    answer = app.post("/todos", {"description": "x"}, headers={**SAME_ORIGIN, "Accept": "application/json"},
                      status=401)
    assert answer.json["error"] == "interaction_required" and "sid" not in app.cookies


def test_max_replay_body_zero_keeps_no_form(provider, recorder):
    app = make_testapp(provider, app=recorder, max_replay_body=0)
    page = _signed_out_post(app, {"description": "x"})
    assert page.status_int == 401 and "keeps no forms" in page.text


@pytest.mark.both_provider_modes
def test_a_form_needing_more_consent_survives_the_consent(provider, recorder):
    """Signed in to read; the form needs the write scope (stock provider: a consent first)."""
    browser = FormBrowser(make_testapp(provider, app=recorder), provider)
    assert browser.get("/todos").text == "the list"
    assert browser.post("/todos", {"description": ITEM}).text == f"saved {ITEM}"
    assert len(recorder.posts) == 1
    assert browser.resubmissions == (1 if provider.mode == "stock" else 0)


def test_a_public_page_asking_for_a_sign_in_on_post_keeps_no_form(provider):
    """Re-submissions are taken only under protected prefixes, so only their forms are kept."""
    environ = Request.blank("/public", POST={"description": "x"}, headers=SAME_ORIGIN).environ
    environ["beaker.session"] = {}  # what the middleware's start_sign_in finds on a public page's POST
    answer = make_testapp(provider).middleware.start_sign_in(environ)
    assert answer.status_int == 401 and "this page is not protected" in answer.text
