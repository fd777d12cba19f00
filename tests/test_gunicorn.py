"""The sample app served by real gunicorn workers: a browser signs in, adds a to-do item, signs out.

Every request opens a new connection, and the list is fetched a few times at once until both workers
have answered (an idle worker tends to win every accept otherwise); each of them finds the session
(Beaker files) that another one wrote.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from support.servers import Browser, sample_server

MAX_TRIES = 20  # rounds of AT_ONCE requests until both workers answered
AT_ONCE = 4  # while one worker answers a request, the other accepts the next connection


def test_sign_in_add_an_item_and_sign_out_across_two_workers(provider, tmp_path):
    with sample_server(provider, tmp_path, workers=2) as web:
        browser = Browser(provider)

        page = browser.sign_in(web.url + "/todos", login="gunicorn-user")
        assert page.status_code == 200
        assert "Signed in as <b>gunicorn-user</b>" in page.text

        added = browser.post(web.url + "/todos", {"description": "Deploy behind gunicorn"})
        assert added.status_code == 303
        assert "<li>Deploy behind gunicorn</li>" in browser.follow(added).text

        with ThreadPoolExecutor(AT_ONCE) as pool:
            for _ in range(MAX_TRIES):
                if len(web.worker_pids()) == 2:
                    break
                for listed in pool.map(lambda _: browser.get(web.url + "/todos"), range(AT_ONCE)):
                    assert listed.status_code == 200 and "<li>Deploy behind gunicorn</li>" in listed.text
        assert len(web.worker_pids()) == 2, web.access_log()

        end_session = browser.sign_out(web.url + "/auth/logout")
        assert end_session.startswith(provider.metadata["end_session_endpoint"] + "?")
        assert urlsplit(browser.get(web.url + "/todos").headers["location"]).path == urlsplit(
            provider.metadata["authorization_endpoint"]).path


def test_each_step_of_the_sign_in_is_logged_with_the_worker_that_answered(provider, tmp_path):
    with sample_server(provider, tmp_path, workers=2) as web:
        Browser(provider).sign_in(web.url + "/todos")
        steps = [(method, path, status) for _, method, path, status in web.access_log(at_least=4)]
        api_steps = [(method, path, status) for _, method, path, status in web.api.access_log(at_least=1)]
    assert steps[:4] == [("GET", "/todos", 302), ("POST", "/auth/callback", 200), ("POST", "/auth/callback", 302),
                         ("GET", "/todos", 200)]
    assert api_steps == [("GET", "/api/todolist", 200)]  # the page called the to-do API, a service of its own
