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
