"""The echo app behind MsalMiddleware with Beaker file sessions, configured from MSAL_* variables.

Served by gunicorn in tests (``tests.support.gunicorn_app:application``); ``SESSION_DIR`` is the
Beaker data directory shared by the workers. Beaker's default ``save_accessed_time=True`` is kept on purpose:
it rewrites the session at the end of every request, which msal_wsgi must survive.
"""

from __future__ import annotations

import os

from msal_wsgi import MsalMiddleware, Settings

from .apps import echo_app

application = MsalMiddleware(echo_app, Settings.from_env(session_options={
    "type": "file", "data_dir": os.environ["SESSION_DIR"], "key": "sid"}))
