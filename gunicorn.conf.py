"""gunicorn settings for the sample: ``gunicorn -c gunicorn.conf.py sample_app:app``.

Several workers share the Beaker sessions (files, or Redis with SAMPLE_SESSION_URL)
and the SQLite to-do store; the threads let /todos call the sample's own /api/todolist.
"""

import os

bind = os.environ.get("SAMPLE_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("SAMPLE_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("SAMPLE_THREADS", "4"))
timeout = 30
accesslog = "-"
loglevel = "info"

# -- stopping: Ctrl-C of ./scripts/run-sample ends everything within 3 s -----------
graceful_timeout = 2  # the longest a stop waits for workers (default 30), then kills them


def worker_int(worker):
    """Ctrl-C or SIGQUIT, gunicorn's quick shutdown: end the worker at once.

    A gthread worker's exit waits for its threads, and one may be blocked reading
    a browser's idle connection until the master kills it at graceful_timeout.
    """
    os._exit(0)
