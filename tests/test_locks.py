"""Per-session locks: one holder per session at a time, released on every exit, never leaking.

Each lock is used as msal_wsgi uses it, ``with lock(session_id): ...``. The Redis
lock runs against a real ``redis-server``; FileLock is also tried from a second
process.
"""

from __future__ import annotations

import multiprocessing
import stat
import threading
import time
import uuid

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from support.servers import RedisServer, free_port

from msal_wsgi import SessionUnavailable
from msal_wsgi.locks import FileLock, RedisLock, ThreadLock, lock_from_setting

#: Long enough to tell "waits" from "got it" on a loaded machine; short enough to run per mutant.
BLOCKED = 0.3
#: How soon after a release a waiter must have the lock.
PROMPT = 0.5
#: Generous upper bound for things that should happen at once.
SOON = 10.0


class Holder:
    """A thread that enters ``lock(session_id)``, stays inside until :meth:`release`, and records when."""

    def __init__(self, lock, session_id: str) -> None:
        self.entered = threading.Event()
        self.entered_at = 0.0
        self.error: BaseException | None = None
        self._leave = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(lock, session_id), daemon=True)
        self._thread.start()

    def _run(self, lock, session_id: str) -> None:
        try:
            with lock(session_id):
                self.entered_at = time.monotonic()
                self.entered.set()
                self._leave.wait(SOON * 3)
        except BaseException as exc:  # noqa: BLE001 - reported by release()
            self.error = exc

    def release(self) -> None:
        self._leave.set()
        self._thread.join(SOON)
        assert not self._thread.is_alive(), "the holder did not leave the lock"
        assert self.error is None, self.error


def session() -> str:
    return uuid.uuid4().hex


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_client(redis_server):
    with redis_server.client() as client:
        client.flushdb()
        yield client


@pytest.fixture
def redis_lock(redis_client):
    """RedisLock factory on the test server; options as RedisLock takes them."""

    def make(**options):
        return RedisLock(redis_client, **options)

    return make


@pytest.fixture(params=["thread", "file", "redis"])
def locks(request, tmp_path):
    """A factory of locks that exclude each other: one ThreadLock, FileLocks of one directory, RedisLocks of one server."""
    if request.param == "thread":
        shared = ThreadLock()
        return lambda: shared
    if request.param == "file":
        return lambda: FileLock(tmp_path)
    redis_lock = request.getfixturevalue("redis_lock")
    return lambda: redis_lock(wait=SOON)


# -- what every lock does ----------------------------------------------------


def test_one_session_has_one_holder_at_a_time(locks):
    sid = session()
    first = Holder(locks(), sid)
    assert first.entered.wait(SOON)
    second = Holder(locks(), sid)
    assert not second.entered.wait(BLOCKED)
    first.release()
    assert second.entered.wait(SOON)
    second.release()


def test_other_sessions_do_not_wait(locks):
    first = Holder(locks(), session())
    assert first.entered.wait(SOON)
    other = Holder(locks(), session())
    assert other.entered.wait(SOON)
    other.release()
    first.release()


def test_a_waiter_gets_the_lock_promptly_after_a_long_hold(locks):
    sid = session()
    first = Holder(locks(), sid)
    assert first.entered.wait(SOON)
    second = Holder(locks(), sid)
    time.sleep(1.5)  # long enough for a polling waiter to back off as far as it goes
    released_at = time.monotonic()
    first.release()
    assert second.entered.wait(SOON)
    assert second.entered_at - released_at < PROMPT
    second.release()


def test_a_caller_arriving_while_the_lock_passes_on_still_waits(locks):
    sid = session()
    first = Holder(locks(), sid)
    assert first.entered.wait(SOON)
    second = Holder(locks(), sid)
    time.sleep(0.1)  # second is waiting
    first.release()
    assert second.entered.wait(SOON)
    third = Holder(locks(), sid)
    assert not third.entered.wait(BLOCKED)
    second.release()
    assert third.entered.wait(SOON)
    third.release()


def test_an_exception_inside_releases_the_lock_and_goes_on(locks):
    sid = session()
    with pytest.raises(RuntimeError, match="refresh failed"), locks()(sid):
        raise RuntimeError("refresh failed")
    after = Holder(locks(), sid)
    assert after.entered.wait(PROMPT)
    after.release()


def test_many_threads_take_turns(locks):
    sid = session()
    inside, most, done = 0, 0, 0
    count = threading.Lock()

    def work() -> None:
        nonlocal inside, most, done
        for _ in range(3):
            with locks()(sid):
                with count:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.002)
                with count:
                    inside -= 1
                    done += 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SOON * 3)
    assert (most, done) == (1, 18)


# -- ThreadLock ----------------------------------------------------------------


def sessions_tracked(lock: ThreadLock) -> int:
    """How many sessions the lock keeps an entry for: it must not grow with every session ever seen."""
    return len(lock._locks)


def test_the_thread_lock_forgets_a_session_after_use():
    lock = ThreadLock()
    with lock(session()):
        assert sessions_tracked(lock) == 1
    assert sessions_tracked(lock) == 0


def test_the_thread_lock_forgets_a_session_after_an_exception_inside():
    lock = ThreadLock()
    with pytest.raises(RuntimeError), lock(session()):
        raise RuntimeError
    assert sessions_tracked(lock) == 0


def first_to_enter(holders: list[Holder]) -> Holder:
    deadline = time.monotonic() + SOON
    while time.monotonic() < deadline:
        for holder in holders:
            if holder.entered.is_set():
                return holder
        time.sleep(0.005)
    raise AssertionError("none of the waiters got the lock")


def test_the_thread_lock_keeps_a_session_while_anyone_waits_and_forgets_it_after_the_last():
    lock, sid = ThreadLock(), session()
    first = Holder(lock, sid)
    assert first.entered.wait(SOON)
    waiters = [Holder(lock, sid) for _ in range(3)]
    other = Holder(lock, session())
    assert other.entered.wait(SOON)
    assert sessions_tracked(lock) == 2
    other.release()
    time.sleep(0.1)  # the waiters are waiting
    first.release()
    while waiters:
        current = first_to_enter(waiters)
        assert sessions_tracked(lock) == 1
        waiters.remove(current)
        current.release()
    assert sessions_tracked(lock) == 0


# -- FileLock --------------------------------------------------------------------


def test_the_file_lock_creates_its_directory(tmp_path):
    directory = tmp_path / "a" / "b"
    FileLock(directory)
    assert directory.is_dir()


def test_the_file_lock_uses_one_owner_only_file_per_session_named_by_no_secret(tmp_path):
    lock, first, second = FileLock(tmp_path), session(), session()
    for sid in (first, second, first):
        with lock(sid):
            pass
    files = list(tmp_path.iterdir())
    assert len(files) == 2
    assert not any(first in f.name or second in f.name for f in files)  # a session id is a credential
    assert all(stat.S_IMODE(f.stat().st_mode) & 0o077 == 0 for f in files)


def test_a_vanished_lock_directory_is_session_unavailable(tmp_path):
    directory = tmp_path / "locks"
    lock = FileLock(directory)
    directory.rmdir()
    with pytest.raises(SessionUnavailable, match="lock file"), lock(session()):
        pass


def _hold_in_another_process(directory: str, session_id: str, held, leave) -> None:
    with FileLock(directory)(session_id):
        held.set()
        leave.wait(SOON * 3)


def test_the_file_lock_serialises_processes(tmp_path):
    spawn = multiprocessing.get_context("spawn")  # not fork: a fresh interpreter, as another worker is
    held, leave, sid = spawn.Event(), spawn.Event(), session()
    child = spawn.Process(target=_hold_in_another_process, args=(str(tmp_path), sid, held, leave))
    child.start()
    try:
        assert held.wait(SOON * 3)
        waiter = Holder(FileLock(tmp_path), sid)
        assert not waiter.entered.wait(BLOCKED)
        other = Holder(FileLock(tmp_path), session())
        assert other.entered.wait(SOON)
        other.release()
        leave.set()
        assert waiter.entered.wait(SOON)
        waiter.release()
    finally:
        leave.set()
        child.join(SOON)
    assert child.exitcode == 0


# -- RedisLock -------------------------------------------------------------------


def test_waiting_too_long_for_a_redis_lock_is_session_unavailable(redis_lock):
    sid = session()
    holder = Holder(redis_lock(), sid)
    assert holder.entered.wait(SOON)
    started = time.monotonic()
    with pytest.raises(SessionUnavailable, match="timed out"), redis_lock(wait=0.3)(sid):
        pass
    assert 0.25 < time.monotonic() - started < 3
    holder.release()


def test_a_redis_lock_left_by_a_dead_holder_frees_itself_after_its_ttl(redis_lock):
    sid = session()
    crashed = redis_lock(ttl=0.4)(sid)
    crashed.__enter__()  # and never leaves: its process died
    started = time.monotonic()
    with redis_lock(wait=SOON)(sid):
        waited = time.monotonic() - started
    assert 0.3 < waited < 0.9


def test_a_holder_whose_redis_lock_expired_does_not_release_the_next_holders(redis_lock):
    sid = session()
    slow = redis_lock(ttl=0.3)(sid)
    slow.__enter__()
    time.sleep(0.5)  # its lock expired while it worked
    current = Holder(redis_lock(wait=SOON), sid)
    assert current.entered.wait(SOON)
    slow.__exit__(None, None, None)  # must delete only its own lock
    with pytest.raises(SessionUnavailable, match="timed out"), redis_lock(wait=0.3)(sid):
        pass
    current.release()
    with redis_lock(wait=PROMPT)(sid):
        pass


def test_a_redis_waiter_polls_gently(redis_lock, redis_client):
    sid = session()
    holder = Holder(redis_lock(), sid)
    assert holder.entered.wait(SOON)
    before = redis_client.info("stats")["total_commands_processed"]
    waiter = Holder(redis_lock(wait=SOON), sid)
    time.sleep(1.0)
    commands = redis_client.info("stats")["total_commands_processed"] - before - 1  # less our own INFO
    holder.release()
    assert waiter.entered.wait(SOON)
    waiter.release()
    assert 1 <= commands <= 50


def test_the_redis_lock_options_are_keyword_only(redis_client):
    with pytest.raises(TypeError):
        RedisLock(redis_client, 5.0)


def test_an_unreachable_redis_is_session_unavailable():
    nowhere = redis.Redis(port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    with nowhere, pytest.raises(SessionUnavailable, match="unavailable"), RedisLock(nowhere)(session()):
        pass


# -- the session_lock setting ------------------------------------------------------


def custom_lock(session_id):
    return ThreadLock()(session_id)


@pytest.mark.parametrize(("setting", "kind"), [
    (None, ThreadLock),
    ("thread", ThreadLock),
    ("file:{tmp}/locks", FileLock),
    ("redis://127.0.0.1:6379/0", RedisLock),
    ("rediss://cache.example:6380/1", RedisLock),
    ("unix:///run/redis.sock", RedisLock),
], ids=["none", "thread", "file", "redis", "rediss", "unix socket"])
def test_each_accepted_session_lock_setting_names_its_lock(setting, kind, tmp_path):
    lock = lock_from_setting(setting.format(tmp=tmp_path) if setting else setting)
    assert type(lock) is kind


def test_a_file_setting_locks_in_that_directory(tmp_path):
    lock = lock_from_setting(f"file:{tmp_path}/locks")
    with lock(session()):
        pass
    assert len(list((tmp_path / "locks").iterdir())) == 1


def test_a_redis_url_setting_locks_on_that_server(redis_server):
    lock, sid = lock_from_setting(redis_server.url), session()
    holder = Holder(lock, sid)
    assert holder.entered.wait(SOON)
    assert not Holder(lock, sid).entered.wait(BLOCKED)
    holder.release()


@pytest.mark.parametrize("lock", [custom_lock, ThreadLock()], ids=["a function", "an instance"])
def test_a_lock_object_is_used_as_it_is(lock):
    assert lock_from_setting(lock) is lock


@pytest.mark.parametrize("setting", [
    "", "Thread", "threads", "file", "/var/lock/app", "memcached://cache:11211", "http://redis:6379", 42, b"thread",
    ["thread"],
], ids=repr)
def test_other_session_lock_settings_are_refused(setting):
    with pytest.raises(ValueError):
        lock_from_setting(setting)
