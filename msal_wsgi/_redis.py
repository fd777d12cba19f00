"""Redis clients whose every wait is bounded: for the refresh lock and for Beaker's ``ext:redis`` sessions.

redis-py's defaults do not fit a store a request waits on: no read timeout (a Redis that stops
answering, paused or behind a dead link, holds the request's thread until it answers again), and
since redis-py 6 ten retries of a command that timed out (a paused Redis then costs a request
eleven timeouts). Here each connection attempt and each reply waits at most ``STORE_TIMEOUT``
seconds, a dropped connection (a Redis that restarted) is retried once on a new one, and a
timeout is not retried: a store that does not answer is a 503 within a couple of seconds, and
the next request finds it again as soon as it answers.
"""

from __future__ import annotations

from typing import Any

#: Seconds to connect to Redis, and to wait for each reply. Below the refresh lock's ``wait`` and
#: ``lease`` and far below gunicorn's ``timeout``, so a request whose store hangs is answered (503).
STORE_TIMEOUT = 2.0


def redis_client(url: str, **options: Any) -> Any:
    """A ``redis.Redis`` for ``url`` with bounded waits (see the module); ``options`` go to redis-py.

    ``socket_timeout`` and ``socket_connect_timeout`` in the URL's query win over ``STORE_TIMEOUT``::

        app = SessionMiddleware(app, {"session.type": "ext:redis",
                                      "session.url": redis_client("redis://redis.internal:6379/0"), ...})
    """
    import redis  # optional dependency
    from redis.backoff import ConstantBackoff
    from redis.retry import Retry

    settings: dict[str, Any] = {
        "socket_timeout": STORE_TIMEOUT,
        "socket_connect_timeout": STORE_TIMEOUT,
        # Once, on a new connection, after a dropped one; never after a timeout (redis-py 6+ retries both).
        "retry": Retry(ConstantBackoff(0.05), 1, supported_errors=(redis.ConnectionError,)),
        **options,
    }
    return redis.Redis.from_url(url, **settings)
