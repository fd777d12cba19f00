"""msal_wsgi: sign users in with Microsoft Entra ID or any OpenID Connect provider,
and acquire access tokens for the web APIs your WSGI app calls.

::

    from beaker.middleware import SessionMiddleware
    from msal_wsgi import MsalMiddleware, Protect

    app = MsalMiddleware(app, client_id=..., client_credential=..., authority=...,
                         redirect_uri="https://app.example/auth/callback",
                         protect={"/todos": Protect(read=[READ], write=[READWRITE])})
    app = SessionMiddleware(app, {"session.type": "file", "session.data_dir": "..."})
"""

from ._client import AccessToken
from ._environ import ACQUIRE_TOKEN, MIDDLEWARE, ROUTE, TOKEN, USER
from ._session import User
from .api import BearerAuth, claims_challenge
from .errors import (
    ConfigurationError,
    InteractionRequired,
    MsalWsgiError,
    ProviderUnavailable,
    SessionUnavailable,
)
from .middleware import MsalMiddleware
from .paste import filter_app_factory, filter_factory
from .settings import Protect, Settings

__version__ = "0.1.0"

__all__ = [
    "ACQUIRE_TOKEN",
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
    "User",
    "claims_challenge",
    "filter_app_factory",
    "filter_factory",
]
