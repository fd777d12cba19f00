"""msal_wsgi: sign users in with Microsoft Entra ID or any OpenID Connect provider,
acquire access tokens for the web APIs your WSGI app calls, and protect web APIs.

::

    from beaker.middleware import SessionMiddleware
    from msal_wsgi import MsalMiddleware, Protect

    app = MsalMiddleware(app, client_id=..., client_secret=..., authority=...,
                         redirect_uri="https://app.example/auth/callback",
                         protect={"/todos": Protect(read=[READ], write=[READWRITE])})
    app = SessionMiddleware(app, {"session.type": "file", "session.data_dir": "..."})

    api = MsalMiddleware(todo_api, client_id=..., authority=..., api_audience="api://todo",
                         protect={"/api/todolist": ProtectApi(read=[READ, READWRITE], write=[READWRITE])})
"""

from . import events
from ._environ import ACQUIRE_TOKEN, CALLER, CURRENT_USER, MIDDLEWARE, ROUTE, TOKEN, USER
from ._redis import redis_client
from .authz import Require
from .calling import BearerAuth, claims_challenge
from .errors import (
    ConfigurationError,
    InteractionRequired,
    MsalWsgiError,
    ProviderUnavailable,
    SessionUnavailable,
)
from .identity import AccessToken, Caller, User
from .middleware import MsalMiddleware
from .paste import filter_app_factory, filter_factory
from .settings import Protect, ProtectApi, Settings
from .signin import SignInFailure

__version__ = "0.1.0"

__all__ = [
    "ACQUIRE_TOKEN",
    "CALLER",
    "CURRENT_USER",
    "MIDDLEWARE",
    "ROUTE",
    "TOKEN",
    "USER",
    "AccessToken",
    "BearerAuth",
    "Caller",
    "ConfigurationError",
    "InteractionRequired",
    "MsalMiddleware",
    "MsalWsgiError",
    "Protect",
    "ProtectApi",
    "ProviderUnavailable",
    "Require",
    "SessionUnavailable",
    "Settings",
    "SignInFailure",
    "User",
    "claims_challenge",
    "events",
    "filter_app_factory",
    "filter_factory",
    "redis_client",
]
