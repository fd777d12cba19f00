"""Bottle: wrap the Bottle app like any WSGI app.

Configure with the MSAL_* variables, then serve ``bottle_app:application`` with any WSGI server:
``waitress-serve --listen=localhost:5001 bottle_app:application`` (5000 is the sample's).
"""

import os

import bottle
from beaker.middleware import SessionMiddleware

from msal_wsgi import MsalMiddleware, Settings

app = bottle.Bottle()


@app.get("/todos")
def todos() -> dict:
    user = bottle.request.environ["msal_wsgi.user"]
    token = bottle.request.environ["msal_wsgi.token"]
    return {"user": user.username, "scopes": list(token.scopes), "expires_on": token.expires_on}


application = SessionMiddleware(MsalMiddleware(app, Settings.from_env()), {
    "session.type": "file",
    "session.data_dir": os.environ.get("SESSION_DIR", "sessions"),
    "session.httponly": True,
    "session.save_accessed_time": False,  # no session write per request
})
