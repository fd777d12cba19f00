"""The issue's measurement, repeated: five users clicking through the sample for a while.

Each user signs in on ``GET /todos``, then reads and adds items in turn, on new
connections to two gunicorn workers, with access tokens that go stale every few
seconds (``todo-web-rotating``: 303 s tokens, rotating refresh tokens). Against the
stock provider each user consents twice (to read, then to write, on the first
add: one refused refresh, then a consent whose form survives); after that no
request signs anyone in again and no refresh is refused, whatever the mix.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from urllib.parse import urljoin

import pytest
from bs4 import BeautifulSoup
from support.servers import Browser, sample_server

USERS = 5
SECONDS = 8.0
ROOT = Path(__file__).resolve().parents[1]


class Clicker:
    """One user: sign in, then alternate reading the list and adding an item until time is up."""

    def __init__(self, provider, base: str, n: int) -> None:
        self.browser = Browser(provider)
        self.base = base
        self.login = f"load-{provider.mode}-{n}"
        self.added: list[str] = []
        self.answers: list[int] = []
        self.error: BaseException | None = None

    def add(self, description: str) -> None:
        browser = self.browser
        answer = browser.post(self.base + "/todos", {"description": description}, headers={"Origin": self.base})
        if answer.is_redirect and answer.headers["location"].startswith(browser.provider.issuer):
            answer = browser.complete_sign_in(answer, login=self.login)  # consent to write; single sign-on
            form = BeautifulSoup(answer.text, "html.parser").find("form", id="f")
            fields = {field["name"]: field["value"] for field in form.find_all("input")}
            answer = browser.post(urljoin(answer.url, form["action"]), fields, headers={"Origin": self.base})
        assert answer.status_code == 303, answer.status_code
        self.added.append(description)

    def run(self, until: float) -> None:
        try:
            page = self.browser.sign_in(self.base + "/todos", login=self.login)
            assert page.status_code == 200
            n = 0
            while n == 0 or time.monotonic() < until:  # at least one item each, however slow the machine
                self.add(f"item {n}")
                listed = self.browser.get(self.base + "/todos")
                self.answers.append(listed.status_code)
                assert listed.status_code == 200 and f"<li>item {n}</li>" in listed.text
                n += 1
        except Exception as exc:  # noqa: BLE001 - a failure of this thread, reported by the test
            self.error = exc


@pytest.mark.both_provider_modes
def test_five_users_reading_and_writing_sign_in_once_per_consent(provider, tmp_path):
    # Threads enough for each user's page and the sample's call to its own to-do API at once.
    with sample_server(provider, tmp_path, workers=2, client_id="todo-web-rotating",
                       SAMPLE_THREADS=str(2 * USERS)) as web:
        mark = provider.mark()
        clickers = [Clicker(provider, web.url, n) for n in range(USERS)]
        until = time.monotonic() + SECONDS
        threads = [threading.Thread(target=c.run, args=(until,)) for c in clickers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for clicker in clickers:
            assert clicker.error is None, f"{clicker.error!r}\n{web.log_tail(60)}"
        sign_ins = len(provider.authorizations_since(mark))
        tokens = provider.token_requests_since(mark)
        refused = [t for t in tokens if t["status"] != 200]
        lists = [c.browser.get(web.url + "/todos").text for c in clickers]

    consents = 2 if provider.mode == "stock" else 1
    requests = sum(len(c.added) + len(c.answers) for c in clickers)  # POSTs and GETs after signing in
    figures = {"mode": provider.mode, "users": USERS, "seconds": SECONDS, "requests": requests,
               "sign_ins": sign_ins, "token_requests": len(tokens), "refused_token_requests": len(refused)}
    path = ROOT / "artifacts" / "consent" / f"load-{provider.mode}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")
    assert sign_ins == USERS * consents
    assert len(refused) == (USERS if provider.mode == "stock" else 0)  # one per user: the write scope, once
    for clicker, text in zip(clickers, lists):
        assert all(text.count(f"<li>{item}</li>") == 1 for item in clicker.added)  # each item saved once
