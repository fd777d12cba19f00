"""No header can set the identity; tokens, codes and the secret never reach logs, URLs, headers or pages
(but the latest id token, as the end-session request's ``id_token_hint``: RP-Initiated Logout 1.0 §2)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from support.apps import JSON, SECRETS, STALE_AFTER, make_testapp, sign_in, sign_out
from support.sessions import cache_secrets, msal_cache, session_of
from support.urls import query_of

from msal_wsgi import ACQUIRE_TOKEN, USER

#: The token sections of msal's cache.
SECTIONS = ("AccessToken", "RefreshToken", "IdToken")
SPOOFING_HEADERS = {
    "Remote-User": "admin", "X-Remote-User": "admin", "Remote_User": "admin", "X-Forwarded-User": "admin",
    "X-Msal-Wsgi-User": "admin", "Msal_Wsgi.User": "admin", "Authorization": "Bearer forged",
    "X-Ms-Client-Principal-Name": "admin", "Msal-Wsgi.Token": "forged",
}


def test_no_request_header_sets_the_identity_or_the_token(provider):
    app = make_testapp(provider)
    assert app.get("/public", headers=SPOOFING_HEADERS).json["remote_user"] is None
    app.get("/todos", headers=dict(SPOOFING_HEADERS, Accept="application/json"), status=401)
    body = sign_in(app, provider, login="bob").json
    spoofed = app.get("/todos", headers=SPOOFING_HEADERS).json
    assert spoofed["remote_user"] == "bob" and spoofed["token"]["value"] == body["token"]["value"]


def discreet_app(environ: dict, start_response: Any) -> Iterable[bytes]:
    """An app that uses its tokens without showing them: ``?acquire`` gets one for another API."""
    if "acquire" in environ.get("QUERY_STRING", ""):
        environ[ACQUIRE_TOKEN](["api://r1/access"])
    user = environ.get(USER)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"hello {user.username if user else 'visitor'}".encode()]


class Transcript:
    """In front of the whole stack: every response the browser gets, as status, headers and body."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.responses: list[str] = []

    def __call__(self, environ: dict, start_response: Any) -> list[bytes]:
        seen: list[str] = []

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen[:] = [status, *(f"{name}: {value}" for name, value in headers)]
            return start_response(status, headers, exc_info)

        answer = self.app(environ, start)
        try:
            body = b"".join(answer)
        finally:
            getattr(answer, "close", lambda: None)()
        self.responses.append("\n".join([*seen, body.decode("utf-8", "replace")]))
        return [body]


def test_tokens_codes_and_the_secret_never_reach_logs_urls_headers_or_pages(provider, caplog):
    app = make_testapp(provider, app=discreet_app, client_id="todo-web-rotating", response_mode="query")
    transcript = Transcript(app.app)
    app.app = transcript
    tokens: dict[str, set[str]] = {section: set() for section in SECTIONS}  # all the session's msal cache held

    def keep_tokens() -> None:
        for section in SECTIONS:
            tokens[section].update(cache_secrets(session_of(app), section))

    with caplog.at_level(logging.DEBUG):
        result = provider.sign_in(app.get("/todos").location)
        code = result.params["code"]
        assert app.get("/auth/callback", result.params).follow().text == "hello alice"
        keep_tokens()
        app.get("/auth/callback", result.params)  # the code replayed: the back button
        app.get("/auth/callback", {"code": code, "state": "forged"}, status=400)
        app.get("/auth/callback", {"error": "access_denied", "error_description": "no"}, status=403)
        app.get("/todos", headers=JSON, params={"acquire": "1"})  # a token for another API
        app.post("/todos/1", {"x": "1"})  # the read-write token
        keep_tokens()
        time.sleep(STALE_AFTER)  # rotating client: the access tokens are stale, and a refresh rotates
        app.get("/todos")
        keep_tokens()
        keep_tokens()
        id_token = msal_cache(session_of(app))["IdToken"].popitem()[1]["secret"]  # the newest
        out = sign_out(app)
        app.get("/todos", headers=JSON, status=401)
    assert query_of(out.location)["id_token_hint"] == id_token  # given to the provider, as the spec says

    found = {section: len(secrets) for section, secrets in tokens.items()}
    assert found["AccessToken"] >= 4 and found["RefreshToken"] >= 2 and found["IdToken"] >= 1, found
    secrets = {"the authorization code": code, "the client secret": SECRETS["todo-web-rotating"]}
    secrets.update({f"{section} {n}": secret for section in SECTIONS
                    for n, secret in enumerate(sorted(tokens[section]))})
    logged = [caplog.text, *(str(record.args) for record in caplog.records)]
    for name, secret in secrets.items():
        assert not any(secret in line for line in logged), f"{name} is in the log"
        leaked = [response.split("\n", 1)[0] for response in transcript.responses
                  if secret in response.replace(f"id_token_hint={id_token}", "")]
        assert leaked == [], f"{name} is in the URL, headers or page of these responses"
    hinted = [response for response in transcript.responses if id_token in response]
    assert len(hinted) == 1 and hinted[0].startswith("303 ")  # only in the end-session redirect
