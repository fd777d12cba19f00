"""gunicorn settings for the sample's two services: ``gunicorn -c gunicorn.conf.py sample_app:app``
(the web app) and ``gunicorn -c gunicorn.conf.py todo_api:app`` (the to-do list API), each on
its own SAMPLE_BIND address.

The web app's workers share the Beaker sessions (files, or Redis with SAMPLE_SESSION_URL); the
API's share the SQLite to-do store. A worker that takes longer than ``timeout`` is restarted:
the web app's calls to the API time out well before (TODOLIST_TIMEOUT, 5 s), with a 503 page.

Proxy headers: gunicorn lets the peers in ``forwarded_allow_ips`` set the scheme
(``X-Forwarded-Proto``, ``X-Forwarded-Ssl``, ``X-Forwarded-Protocol``) and ``SCRIPT_NAME``/``PATH_INFO``
(``forwarder_headers``); its own default trusts 127.0.0.1 and ::1, so anyone on the machine could. The
sample trusts no one unless ``FORWARDED_ALLOW_IPS`` names the reverse proxy in front of it (its address,
e.g. ``127.0.0.1`` when it runs on this host). Other ``X-Forwarded-*`` headers (Host, For, Port, Prefix)
and ``Forwarded`` are never interpreted: they reach the app as ``HTTP_*`` variables, which neither the
sample nor msal_wsgi reads.
"""

import os

bind = os.environ.get("SAMPLE_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("SAMPLE_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("SAMPLE_THREADS", "4"))
timeout = 30
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "")
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
