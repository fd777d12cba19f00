"""Plain WebOb: a ``wsgify`` function; msal_wsgi installs Beaker itself from ``session_options``.

Configure with the MSAL_* variables, then serve ``webob_app:application`` with any WSGI server:
``waitress-serve --listen=localhost:5001 webob_app:application`` (5000 is the sample's).
"""

import os

from webob import Request, Response
from webob.dec import wsgify

from msal_wsgi import MsalMiddleware, Settings


@wsgify
def app(request: Request) -> Response:
    user = request.environ.get("msal_wsgi.user")
    if user is None:  # a path msal_wsgi does not protect
        return Response("Hello, visitor. <a href='/auth/login?next=/todos'>Sign in</a>")
    token = request.environ["msal_wsgi.token"]
    return Response(json_body={"user": user.username, "scopes": list(token.scopes),
                               "expires_on": token.expires_on})


application = MsalMiddleware(app, Settings.from_env(session_options={
    "type": "file",
    "data_dir": os.environ.get("SESSION_DIR", "sessions"),
    "httponly": True,
    "save_accessed_time": False,  # no session write per request
}))
