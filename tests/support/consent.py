"""A browser that posts forms and consents as it goes, for the incremental-consent and form-replay tests.

:class:`FormBrowser` wraps a WebTest app like a browser tab: it keeps the provider's
cookies between sign-ins (single sign-on, as a real browser does), sends the
``Origin`` header a browser sends with a form POST, and when a request is sent to
the provider it signs in there, brings the answer to the callback, and submits the
self-submitting re-submission page it gets back, if any.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import webtest

from devprovider import DevProvider

from .apps import return_to_app

#: What a browser sends with a form POST from one of the app's pages (WebTest's host is localhost).
SAME_ORIGIN = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
REPLAY_FIELD = "msal_wsgi_replay"


@dataclass
class FormBrowser:
    """A browser tab on ``app`` signing in at ``provider`` as ``login`` whenever it is sent there."""

    app: webtest.TestApp
    provider: DevProvider
    login: str = "alice"
    #: The provider pages shown at each sign-in ("login", "consent"), one list per sign-in.
    prompts: list[list[str]] = field(default_factory=list)
    #: The re-submission pages submitted.
    resubmissions: int = 0

    def __post_init__(self) -> None:
        self._provider_browser = self.provider.browser()

    def get(self, path: str, **options: Any) -> webtest.TestResponse:
        return self.settle(self.app.get(path, expect_errors=True, **options))

    def post(self, path: str, fields: Any, *, headers: dict[str, str] | None = None,
             **options: Any) -> webtest.TestResponse:
        answer = self.app.post(path, fields, headers={**SAME_ORIGIN, **(headers or {})}, expect_errors=True,
                               **options)
        return self.settle(answer)

    def settle(self, answer: webtest.TestResponse) -> webtest.TestResponse:
        """Follow ``answer`` through any sign-in and re-submission to the page it ends on."""
        for _ in range(6):
            if answer.status_int in (302, 303) and answer.location.startswith(self.provider.issuer):
                result = self.provider.sign_in(answer.location, login=self.login, session=self._provider_browser)
                self.prompts.append(result.prompts)
                answer = return_to_app(self.app, result)
            elif answer.status_int in (302, 303):
                answer = answer.follow(expect_errors=True)
            elif answer.status_int == 200 and is_resubmission(answer):
                self.resubmissions += 1
                answer = answer.forms["f"].submit(expect_errors=True)
            else:
                return answer
        raise AssertionError(f"no page after six steps: {answer}")


def is_resubmission(answer: webtest.TestResponse) -> bool:
    """Whether ``answer`` is the page that re-submits a form kept across a sign-in."""
    return answer.content_type == "text/html" and f'name="{REPLAY_FIELD}"' in answer.text
