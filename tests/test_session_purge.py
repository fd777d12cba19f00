"""Sessions that end leave the store, so it stays as large as the sign-ins that live.

A session ends by sign-out, a lifetime reached, a logout from the provider: it is deleted then (its
Beaker file and lock file, its Redis key, its logout index entries). Sessions nobody comes back to
(idle, or sign-ins never finished) are deleted by a bounded sweep, which msal_wsgi runs in a thread at
most once per ``session_activity_interval``: Beaker ``file`` sessions by the age of their file, Redis
and memory sessions by the end msal_wsgi wrote for them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from support.apps import JSON, browser_of, make_testapp, sign_in, sign_out
from support.servers import RedisServer
from support.sessions import beaker_options

from msal_wsgi import _store

#: Quick lifetimes: idle after 2 s, "last seen" written each second, pending sign-ins last 1 s; a session
#: nobody rewrote for max(1, 2) + 1 = 3 s is surely over.
QUICK = {"idle_timeout": 2, "session_activity_interval": 1, "sign_in_timeout": 1}


def session_files(data_dir: Path) -> set[str]:
    return {path.stem for path in (data_dir / "container_file").rglob("*.cache")}


def lock_files(data_dir: Path) -> list[Path]:
    return [path for path in data_dir.rglob("*.lock") if "container_file" not in path.parts]


def file_app(provider: Any, data_dir: Path, **settings: Any) -> Any:
    return make_testapp(provider, session=beaker_options("file", str(data_dir)), **settings)


def test_a_signed_out_session_leaves_the_file_store_with_its_lock_file(provider, tmp_path):
    app = file_app(provider, tmp_path)
    sign_in(app, provider)
    sid = app.cookies["sid"]
    assert session_files(tmp_path) == {sid} and len(lock_files(tmp_path)) == 1
    sign_out(app)
    assert sid not in session_files(tmp_path)
    assert lock_files(tmp_path) == [] or all(sid not in path.name for path in lock_files(tmp_path))
    assert not list((tmp_path / "msal_wsgi" / "index").rglob(sid))  # out of the logout index too


def test_the_sweep_keeps_the_file_store_as_large_as_the_live_sign_ins(provider, tmp_path):
    apps = [file_app(provider, tmp_path, **QUICK) for _ in range(3)]
    for app in apps:
        sign_in(app, provider)
    for _ in range(4):  # sign-ins started and never finished: a session file each
        browser_of(apps[0]).get("/todos")
    active = apps[0]
    assert len(session_files(tmp_path)) == 7
    for _ in range(4):
        time.sleep(0.8)
        assert active.get("/todos").status_int == 200  # "last seen" rewritten each second: its file stays young
    active.middleware.sweep_sessions()  # or the sweep its requests started in a thread, already
    assert session_files(tmp_path) == {active.cookies["sid"]}
    for idle in apps[1:]:
        assert idle.get("/todos", headers=JSON, status=401)  # their sign-ins had ended anyway


@pytest.mark.parametrize("save_accessed_time", [True, False])
def test_a_signed_out_session_does_not_come_back_under_the_new_id(provider, tmp_path, save_accessed_time):
    options = {**beaker_options("file", str(tmp_path)), "session.save_accessed_time": save_accessed_time}
    app = make_testapp(provider, session=options, app=_keeping_app_data)
    sign_in(app, provider)
    sign_out(app)
    new = app.cookies["sid"]
    leftover = [path.read_bytes() for path in (tmp_path / "container_file").rglob(f"{new}.cache")]
    assert all(b"msal_wsgi" not in data and b"app-data" not in data for data in leftover)
    assert len(leftover) == (1 if save_accessed_time else 0)  # Beaker's write-back stores an empty session


def _keeping_app_data(environ: dict, start_response: Any) -> list[bytes]:
    environ["beaker.session"]["app-data"] = "the app's own"
    environ["beaker.session"].save()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def test_the_sweep_runs_by_itself_in_a_thread(provider, tmp_path):
    app = file_app(provider, tmp_path, **QUICK)
    sign_in(app, provider)
    idle = app.cookies["sid"]
    time.sleep(3.5)
    browser_of(app).get("/auth/login")  # another browser's sign-in (or an activity write) starts a sweep
    deadline = time.monotonic() + 10
    while idle in session_files(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert idle not in session_files(tmp_path)


def test_redis_sessions_that_end_unseen_are_swept_and_the_index_expires(provider, tmp_path):
    with RedisServer(tmp_path / "redis") as redis:
        options = {"session.type": "ext:redis", "session.url": redis.url, "session.key": "sid",
                   "session.save_accessed_time": False}
        apps = [make_testapp(provider, session=options, **QUICK) for _ in range(2)]
        for app in apps:
            sign_in(app, provider)
        with redis.client() as client:
            assert len(client.keys("beaker_cache:*:session")) == 2
            (ends,) = client.keys("msal_wsgi:*:sessions")
            assert client.zcard(ends) == 2
            index = client.keys("msal_wsgi:*:index:*")
            assert index and all(0 < client.ttl(key) <= 86400 + 60 for key in index)  # gone with the sign-ins
        sign_out(apps[0])  # its key goes, and no empty session takes its place
        with redis.client() as client:
            assert len(client.keys("beaker_cache:*:session")) == 1 and client.zcard(ends) == 1
        time.sleep(3.1)
        assert apps[0].middleware.sweep_sessions() == 1
        with redis.client() as client:
            assert client.keys("beaker_cache:*:session") == [] and client.zcard(ends) == 0


def test_memory_sessions_that_end_unseen_are_swept(provider):
    app = make_testapp(provider, **QUICK)
    sign_in(app, provider)
    time.sleep(3.1)
    assert app.middleware.sweep_sessions() >= 1
    assert app.get("/todos", headers=JSON, status=401)


def test_without_lifetimes_nothing_is_swept(provider, tmp_path):
    app = file_app(provider, tmp_path, idle_timeout=0, max_session_lifetime=0)
    sign_in(app, provider)
    assert app.middleware.sweep_sessions() == 0 and len(session_files(tmp_path)) == 1


# -- the stores' index and logout-token memory, directly --------------------------------------------

@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> _store.Store:
    from beaker.container import FileNamespaceManager, MemoryNamespaceManager

    if request.param == "memory":
        return _store.MemoryStore(MemoryNamespaceManager, None, {})
    return _store.FileStore(FileNamespaceManager, str(tmp_path), {})


def test_the_index_is_bounded_per_key_the_newest_kept(store):
    now = time.time()
    for n in range(_store.MAX_PER_KEY + 6):
        store.index(["sub-k"], f"{n:032x}", now + 100 + n)
    kept = store.indexed("sub-k")
    assert len(kept) == _store.MAX_PER_KEY and f"{0:032x}" not in kept and f"{69:032x}" in kept
    store.unindex(["sub-k"], f"{69:032x}")
    assert f"{69:032x}" not in store.indexed("sub-k")


def test_index_entries_past_their_time_are_not_listed(store):
    store.index(["sid-k"], "a" * 32, time.time() - 1)
    store.index(["sid-k"], "b" * 32, time.time() + 60)
    assert store.indexed("sid-k") == ["b" * 32]


def test_a_logout_token_id_is_new_once_until_its_time_passes(store):
    assert store.first_use("jti-1", time.time() + 0.5)
    assert not store.first_use("jti-1", time.time() + 0.5)
    time.sleep(1.1)
    assert store.first_use("jti-1", time.time() + 60)  # expired: remembered afresh


def test_another_beaker_store_deletes_ended_sessions_and_has_no_logout_index(provider, tmp_path):
    options = {**beaker_options("file", str(tmp_path)), "session.type": "dbm"}
    app = make_testapp(provider, session=options)
    sign_in(app, provider)
    old = app.cookies["sid"]
    sign_out(app)
    from support.sessions import stored_session

    assert stored_session(old, options).is_new  # deleted through Beaker's namespace
    assert app.post("/auth/backchannel-logout", {"logout_token": "a.b.c"}, status=400)  # refused before the index
    assert app.middleware.sweep_sessions() == 0  # nothing to sweep by: the store's own expiry
