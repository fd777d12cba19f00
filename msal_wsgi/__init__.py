"""msal_wsgi: sign users in with Microsoft Entra ID or any OpenID Connect provider,
and acquire access tokens for the web APIs your WSGI app calls.

::

    from beaker.middleware import SessionMiddleware
    from msal_wsgi import MsalMiddleware, Protect

    app = MsalMiddleware(app, client_id=..., client_secret=..., authority=...,
                         redirect_uri="https://app.example/auth/callback",
                         protect={"/todos": Protect(read=[READ], write=[READWRITE])})
    app = SessionMiddleware(app, {"session.type": "file", "session.data_dir": "..."})
"""

from . import events
from ._environ import ACQUIRE_TOKEN, CURRENT_USER, MIDDLEWARE, ROUTE, TOKEN, USER
from .calling import BearerAuth, claims_challenge
from .errors import (
    ConfigurationError,
    InteractionRequired,
    MsalWsgiError,
    ProviderUnavailable,
    SessionUnavailable,
)
from .identity import AccessToken, User
from .middleware import MsalMiddleware
from .paste import filter_app_factory, filter_factory
from .settings import Protect, Settings
from .signin import SignInFailure

__version__ = "0.1.0"

__all__ = [
    "ACQUIRE_TOKEN",
    "CURRENT_USER",
    "MIDDLEWARE",
    "ROUTE",
    "TOKEN",
    "USER",
    "AccessToken",
    "BearerAuth",
    "ConfigurationError",
    "InteractionRequired",
    "MsalMiddleware",
    "MsalWsgiError",
    "Protect",
    "ProviderUnavailable",
    "SessionUnavailable",
    "Settings",
    "SignInFailure",
    "User",
    "claims_challenge",
    "events",
    "filter_app_factory",
    "filter_factory",
]
