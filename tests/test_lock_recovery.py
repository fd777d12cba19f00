"""The Redis refresh lock blocks no one for long: a failed release is done once Redis answers, a dead holder's
lock frees after its lease, a live holder keeps it as long as it works; and the waits are ordered so that
every request is answered before a client gives up.

Against a real ``redis-server``, paused with SIGSTOP where the store must not answer; the dead holder is a
process killed with SIGKILL, as a gunicorn worker is.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from pathlib import Path

import pytest
from support.servers import RedisServer

from msal_wsgi import SessionUnavailable, redis_client
from msal_wsgi._redis import STORE_TIMEOUT
from msal_wsgi.locks import DEFAULT_LEASE, DEFAULT_WAIT, LEASE_RENEWALS, RedisLock
from msal_wsgi.tokens import KEEP_TRYING

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def redis(redis_server):
    yield redis_server
    redis_server.resume()  # in case a test failed while it was paused


def held_until_released(lock, session_id: str) -> tuple[threading.Event, threading.Event, threading.Thread]:
    """A thread holding ``lock(session_id)`` from ``entered`` until ``leave`` is set."""
    entered, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with lock(session_id):
            entered.set()
            leave.wait(30)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert entered.wait(10)
    return entered, leave, thread


def time_to_get(lock, session_id: str) -> float:
    started = time.monotonic()
    with lock(session_id):
        return time.monotonic() - started


def test_a_release_that_fails_is_done_as_soon_as_redis_answers_again(redis):
    lock, sid = RedisLock(redis.url), uuid.uuid4().hex
    _, leave, holder = held_until_released(lock, sid)
    redis.pause()
    leave.set()  # the holder leaves: its release times out, and is tried again in the background
    holder.join(STORE_TIMEOUT + 2)
    assert not holder.is_alive(), "the holder's request waited for the release"
    time.sleep(1.0)
    redis.resume()
    waited = time_to_get(RedisLock(redis.url), sid)
    assert waited < 1.0 < DEFAULT_LEASE - 4  # not the rest of the lease: the release went through


def _hold_then_wait(url: str, session_id: str, lease: float, held) -> None:
    with RedisLock(url, lease=lease)(session_id):
        held.set()
        time.sleep(60)  # killed before it leaves


def test_the_lock_of_a_killed_process_frees_after_its_lease_not_its_ttl(redis):
    spawn = multiprocessing.get_context("spawn")
    held, sid = spawn.Event(), uuid.uuid4().hex
    worker = spawn.Process(target=_hold_then_wait, args=(redis.url, sid, 1.0, held))
    worker.start()
    try:
        assert held.wait(20)
        time.sleep(1.5)  # the lease was renewed meanwhile
        worker.kill()  # SIGKILL, as a gunicorn worker
        killed = time.monotonic()
        worker.join(10)
        with RedisLock(redis.url)(sid):
            freed = time.monotonic() - killed
    finally:
        worker.kill()
    assert freed < 1.0 + 0.5  # its last renewal plus the lease at most; the ttl is 60 s


def test_a_live_holder_keeps_its_lock_beyond_the_lease_and_ttl_bounds_it(redis):
    sid = uuid.uuid4().hex
    lock = RedisLock(redis.url, lease=0.4, ttl=2.0)
    _, leave, holder = held_until_released(lock, sid)
    with pytest.raises(SessionUnavailable, match="timed out"), RedisLock(redis.url, wait=1.0)(sid):
        pass  # 2.5 leases: renewed meanwhile
    started = time.monotonic()
    with RedisLock(redis.url, wait=5.0)(sid):  # the holder never leaves: the ttl frees it
        freed = time.monotonic() - started
    assert 0.5 < freed < 1.5  # ttl 2 s, of which 1 s was spent waiting above
    leave.set()
    holder.join(5)


def test_a_waiter_gives_up_after_its_wait_with_session_unavailable(redis):
    sid = uuid.uuid4().hex
    _, leave, holder = held_until_released(RedisLock(redis.url), sid)
    started = time.monotonic()
    with pytest.raises(SessionUnavailable, match="timed out"), RedisLock(redis.url, wait=0.5)(sid):
        pass
    assert 0.4 < time.monotonic() - started < 1.5
    leave.set()
    holder.join(5)


def test_a_paused_redis_is_session_unavailable_within_the_store_timeout(redis):
    lock = RedisLock(redis.url)
    redis.pause()
    started = time.monotonic()
    with pytest.raises(SessionUnavailable, match="unavailable"), lock(uuid.uuid4().hex):
        pass
    assert time.monotonic() - started < STORE_TIMEOUT + 1  # one timeout: a timeout is not retried


def test_a_restarted_redis_is_used_again_at_once(tmp_path):
    with RedisServer(tmp_path / "redis") as server:
        lock = RedisLock(server.url)
        with lock("before"):
            pass
        server.restart()  # the client's pooled connection is dead: one retry, on a new connection
        with lock("after"):
            pass


@pytest.mark.parametrize(("url", "timeout"), [("redis://127.0.0.1:1/0", STORE_TIMEOUT),
                                              ("redis://127.0.0.1:1/0?socket_timeout=7", 7.0)],
                         ids=["default", "the-url-says-otherwise"])
def test_redis_clients_wait_the_store_timeout_unless_the_url_says_otherwise(url, timeout):
    options = redis_client(url).connection_pool.connection_kwargs
    assert options["socket_timeout"] == timeout and options["socket_connect_timeout"] == STORE_TIMEOUT


def _gunicorn_timeout() -> float:
    config: dict[str, object] = {}
    exec((ROOT / "gunicorn.conf.py").read_text(), config)  # noqa: S102 - our own config file
    return float(config["timeout"])  # type: ignore[arg-type]


def test_the_waits_are_ordered_so_every_request_is_answered_before_a_client_gives_up():
    """A store that does not answer fails a command within STORE_TIMEOUT; a refreshed cache is saved again for
    KEEP_TRYING, through a store pause that long, during which its lock cannot be renewed: renewed
    LEASE_RENEWALS times per lease, a live holder keeps it through a pause of 7/8 of the lease. A waiter waits
    longer than a dead holder's lease, and less than gunicorn's timeout, which load balancers and browsers
    exceed."""
    survives = DEFAULT_LEASE * (LEASE_RENEWALS - 1) / LEASE_RENEWALS
    assert STORE_TIMEOUT < KEEP_TRYING < survives
    assert 5 < KEEP_TRYING  # the soak's 5 s Redis pause
    assert DEFAULT_LEASE < DEFAULT_WAIT < _gunicorn_timeout()
