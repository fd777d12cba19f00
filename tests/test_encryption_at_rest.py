"""What msal_wsgi keeps in the session is sealed (AES-256-GCM) under ``session_keys``: the store holds no
token, claim or form in clear; a value that does not open reads as signed out, never as a 500."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from support.apps import JSON, TODO_READ, Told, make_testapp, sign_in, sign_out
from support.environment import ini_settings, msal_env
from support.sessions import (
    ALL_SESSION_KEYS,
    SESSION_CACHE,
    SESSION_FLOWS,
    SESSION_USER,
    TEST_SESSION_KEYS,
    beaker_options,
    cache_secrets,
    session_of,
)

from msal_wsgi import ConfigurationError, MsalMiddleware, Settings, crypto
from msal_wsgi.check import summary

OTHER_KEY = crypto.make_key()


def unreadable(hook: Told) -> list[str]:
    return [data["reason"] for data in hook.of("session.unreadable")]


def test_the_store_holds_no_token_claim_or_form_in_clear(provider, tmp_path):
    app = make_testapp(provider, session=beaker_options("file", str(tmp_path)), client_id="todo-web-rotating")
    app.post("/todos", {"note": "my secret note"}, headers={"Sec-Fetch-Site": "same-origin"})  # kept with the sign-in
    sign_in(app, provider)
    app.get("/todos", {"acquire": "api://r1/access"})
    stored = session_of(app)
    secrets = cache_secrets(stored) + [stored[SESSION_USER]["claims"]["sub"], "alice@example.test"]
    assert len(secrets) >= 5
    files = [path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()]
    assert files
    for secret in secrets:
        assert not any(secret.encode() in data for data in files), "a secret is in the store in clear"
    assert not any(b"alice" in data or b"my secret note" in data or b"eyJ" in data for data in files)
    for key in ALL_SESSION_KEYS:  # every value msal_wsgi keeps: sealed text
        value = stored.raw.get(key)
        assert value is None or crypto.is_sealed(value), key


def test_a_value_moved_to_another_session_does_not_open_and_is_logged_once(provider, caplog):
    hook = Told()
    alice = make_testapp(provider, on_event=hook)
    sign_in(alice, provider)
    mallory = make_testapp(provider, on_event=hook)
    mallory.get("/todos")  # a session of her own
    for _ in range(2):
        theirs, hers = session_of(alice), session_of(mallory)
        hers.raw[SESSION_USER] = theirs.raw[SESSION_USER]  # copied in the store: bound to alice's session id
        hers.raw[SESSION_CACHE] = theirs.raw[SESSION_CACHE]
        hers.save()
        with caplog.at_level(logging.DEBUG, logger="msal_wsgi"):
            assert mallory.get("/todos", headers=JSON, status=401).json["error"] == "interaction_required"
    assert unreadable(hook)[:1] == ["tampered"] and set(unreadable(hook)) == {"tampered"}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "does not open" in r.getMessage()]
    assert len(warnings) == 1  # once per process and reason; the others at DEBUG
    assert alice.get("/todos").status_int == 200


@pytest.mark.parametrize("key", [SESSION_USER, SESSION_CACHE, SESSION_FLOWS])
@pytest.mark.parametrize("where", [0, 5, 40, -1], ids=["version", "key-id", "ciphertext", "tag"])
def test_a_tampered_value_reads_as_signed_out_never_a_500(provider, key, where):
    app = make_testapp(provider)
    sign_in(app, provider)
    app.get("/todos", headers=JSON)
    app.get("/auth/login", {"next": "/todos"})  # a pending sign-in too
    stored = session_of(app)
    value = list(stored.raw[key])
    value[where] = "B" if value[where] != "B" else "C"  # one character of the sealed text
    stored.raw[key] = "".join(value)
    stored.save()
    if key == SESSION_USER:
        assert app.get("/todos", headers=JSON, status=401)
    else:
        assert app.get("/todos", {"acquire": "api://r9/access"}, status="*").status_int < 500
    assert app.get("/auth/callback", {"state": "s", "code": "c"}, status="*").status_int < 500


def test_keys_rotate_the_first_seals_all_open(provider):
    old = make_testapp(provider)  # seals with TEST_SESSION_KEYS
    sign_in(old, provider)
    token = old.get("/todos").json["token"]["value"]
    rotated = make_testapp(provider, session_keys=(OTHER_KEY, *TEST_SESSION_KEYS))
    rotated.set_cookie("sid", old.cookies["sid"])
    mark = provider.mark()
    assert rotated.get("/todos").json["token"]["value"] == token  # the old key still opens
    assert provider.requests_since(mark) == []
    rotated.get("/todos", {"acquire": "api://r1/access"})  # a refresh writes the record and the cache again
    new_only = make_testapp(provider, session_keys=(OTHER_KEY,))
    new_only.set_cookie("sid", old.cookies["sid"])
    assert new_only.get("/todos").json["token"]["value"] == token  # sealed with the new key now
    stored = session_of(new_only, sid=old.cookies["sid"])
    assert stored[SESSION_USER]["tokens"][TODO_READ][0] == token


def test_a_key_not_in_the_setting_reads_as_signed_out(provider):
    hook = Told()
    app = make_testapp(provider)
    sign_in(app, provider)
    stranger = make_testapp(provider, session_keys=(OTHER_KEY,), on_event=hook)
    stranger.set_cookie("sid", app.cookies["sid"])
    assert stranger.get("/todos", headers=JSON, status=401)
    assert "unknown_key" in unreadable(hook)


def test_sessions_of_before_the_keys_and_after_them_read_as_signed_out(provider):
    hook = Told()
    plain = make_testapp(provider, session_keys=(), on_event=hook)
    sign_in(plain, provider)
    assert isinstance(session_of(plain).raw[SESSION_USER], dict)  # unsealed: a development setup
    sealed = make_testapp(provider, on_event=hook)
    sealed.set_cookie("sid", plain.cookies["sid"])
    assert sealed.get("/todos", headers=JSON, status=401)  # integrity: unsealed data is not trusted
    sign_in(sealed, provider)
    plain.set_cookie("sid", sealed.cookies["sid"])
    assert plain.get("/todos", headers=JSON, status=401)  # sealed, and this app has no key
    assert {"unsealed", "unknown_key"} <= set(unreadable(hook))


def test_a_sign_out_and_a_new_sign_in_seal_again_for_the_new_session_id(provider):
    app = make_testapp(provider)
    sign_in(app, provider)
    sign_out(app)
    sign_in(app, provider)
    assert app.get("/todos").status_int == 200  # pending sign-ins and kept data were sealed again on the way


# -- settings, warnings and tools --------------------------------------------------------

def test_an_unencrypted_deployment_is_warned_about_at_startup_and_by_check(caplog):
    base = {k: v for k, v in ini_settings("https://id.example/realm").items() if k not in ("protect", "redirect_uri")}
    app = lambda environ, start_response: []
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        MsalMiddleware(app, **base, redirect_uri="https://app.example/auth/callback")
    assert "sessions are stored unencrypted" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        MsalMiddleware(app, **base, redirect_uri="https://app.example/auth/callback", session_keys=TEST_SESSION_KEYS)
        MsalMiddleware(app, **base, redirect_uri="http://localhost/auth/callback")  # a development machine
    assert "unencrypted" not in caplog.text
    unsealed = Settings(**base, redirect_uri="https://app.example/auth/callback")
    assert unsealed.unencrypted_deployment and "NOT encrypted" in summary(unsealed, {})
    sealed = Settings(**base, redirect_uri="http://localhost/auth/callback", session_keys=TEST_SESSION_KEYS + (OTHER_KEY,))
    assert "sealed with AES-256-GCM (2 keys; the first seals)" in summary(sealed, {})


def test_make_key_prints_a_new_key_every_time():
    keys = [subprocess.run([sys.executable, "-m", "msal_wsgi", "make-key"], capture_output=True, text=True,
                           check=True, timeout=60).stdout.strip() for _ in range(2)]
    assert keys[0] != keys[1] and crypto.parse_keys(",".join(keys)) == tuple(keys)
    assert len(crypto.decode_key(keys[0])) == 32


@pytest.mark.parametrize("value", ["not base64!", "c2hvcnQ", f"{OTHER_KEY},{OTHER_KEY}"],
                         ids=["not-base64url", "16-bytes", "twice"])
def test_bad_keys_are_refused_naming_the_variable_never_the_key(value):
    with pytest.raises(ConfigurationError, match="MSAL_SESSION_KEYS") as raised:
        Settings.from_env(msal_env("https://id.example/realm", MSAL_SESSION_KEYS=value))
    assert OTHER_KEY not in str(raised.value)


def test_keys_stay_out_of_repr():
    base = {k: v for k, v in ini_settings("https://id.example/realm").items() if k != "protect"}
    settings = Settings(**base, session_keys=TEST_SESSION_KEYS)
    assert TEST_SESSION_KEYS[0] not in repr(settings) and "session_keys" not in repr(settings)
    assert "Sealer(1 keys)" == repr(crypto.Sealer(TEST_SESSION_KEYS))


def test_sealed_values_are_text_any_beaker_serializer_stores(provider):
    app = make_testapp(provider, session={"session.data_serializer": "json"})  # bytes would not do
    sign_in(app, provider)
    assert app.get("/todos").status_int == 200


def test_opened_records_are_remembered_per_process_and_bounded():
    sealer = crypto.Sealer(TEST_SESSION_KEYS)
    blobs = [sealer.seal(SESSION_USER, f"session-{n}", {"n": n}) for n in range(crypto.REMEMBERED + 10)]
    for n, blob in enumerate(blobs):
        assert sealer.open(SESSION_USER, f"session-{n}", blob, build=dict) == {"n": n}
    assert sealer.remembered == crypto.REMEMBERED
    last, binding = blobs[-1], f"session-{len(blobs) - 1}"
    assert sealer.open(SESSION_USER, binding, last, build=dict) is sealer.open(SESSION_USER, binding, last, build=dict)
    with pytest.raises(crypto.Unreadable):
        sealer.open(SESSION_USER, "session-0", blobs[1], build=dict)  # another session's: never from memory


def test_the_examples_of_readme_make_and_rotate_keys(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "python -m msal_wsgi make-key" in readme and "MSAL_SESSION_KEYS" in readme
