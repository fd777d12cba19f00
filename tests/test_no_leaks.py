"""No header can set the identity; tokens, codes and the secret never reach logs, URLs or pages."""

from __future__ import annotations

import logging

from support.apps import SECRETS, make_testapp, sign_in

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


def test_secrets_never_reach_logs_urls_or_pages(provider, caplog):
    app = make_testapp(provider, client_id="todo-web-rotating", response_mode="query")
    seen_urls, pages = [], []
    with caplog.at_level(logging.DEBUG):
        start = app.get("/todos")
        result = provider.sign_in(start.location)
        code = result.params["code"]
        back = app.get("/auth/callback", dict(result.params))
        seen_urls += [start.location, back.location]
        first = back.follow().json["token"]["value"]
        app.get("/auth/callback", dict(result.params))  # replayed code
        pages.append(app.get("/auth/callback", {"code": code, "state": "forged"}, status=400).text)
        import time

        time.sleep(3.3)  # rotating client: the access token is now stale and gets refreshed
        second = app.get("/todos").json["token"]["value"]
        out = app.get("/auth/logout")
        seen_urls.append(out.location)
    cache_secrets = [first, second, code, SECRETS["todo-web-rotating"]]
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in cache_secrets:
        assert secret not in logged
        assert not any(secret in url for url in seen_urls)
        assert not any(secret in page for page in pages)
    assert "refresh_token" not in caplog.text.lower() or "eyJ" not in caplog.text
