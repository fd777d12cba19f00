"""Flask: msal_wsgi wraps ``app.wsgi_app``, Beaker sessions wrap both.

Configure with MSAL_CLIENT_ID, MSAL_CLIENT_SECRET, MSAL_AUTHORITY (or MSAL_OIDC_AUTHORITY),
MSAL_REDIRECT_URI and MSAL_PROTECT, then run ``flask --app flask_app run --port 5001`` (5000 is the sample's).
"""

import os

from beaker.middleware import SessionMiddleware
from flask import Flask, request

from msal_wsgi import MsalMiddleware, Settings

app = Flask(__name__)


@app.get("/todos")
def todos() -> dict:
    user = request.environ["msal_wsgi.user"]  # who signed in
    token = request.environ["msal_wsgi.token"]  # an access token for the /todos scopes
    return {"user": user.username, "scopes": list(token.scopes), "expires_on": token.expires_on}


app.wsgi_app = MsalMiddleware(app.wsgi_app, Settings.from_env())
app.wsgi_app = SessionMiddleware(app.wsgi_app, {
    "session.type": "file",  # server-side: a token cache does not fit in a cookie
    "session.data_dir": os.environ.get("SESSION_DIR", "sessions"),
    "session.httponly": True,
    "session.save_accessed_time": False,  # no session write per request
})
