"""The environ contract: every key msal_wsgi reads or writes, defined once.

WSGI turns request headers into ``HTTP_*`` keys, so lowercase dotted keys under
``msal_wsgi.`` can never be produced by a client.
"""

from __future__ import annotations

PREFIX = "msal_wsgi."

#: :class:`msal_wsgi.AccessToken` for the matched route's scopes (absent for sign-in-only routes).
TOKEN = PREFIX + "token"
#: :class:`msal_wsgi.User`, the signed-in user.
USER = PREFIX + "user"
#: ``acquire_token(scopes, claims_challenge=None) -> AccessToken``, for other scopes on demand.
ACQUIRE_TOKEN = PREFIX + "acquire_token"
#: The :class:`msal_wsgi.Protect` or :class:`msal_wsgi.ProtectApi` rule that matched this request.
ROUTE = PREFIX + "route"
#: :class:`msal_wsgi.Caller`, who called an API prefix with a valid bearer token.
CALLER = PREFIX + "caller"
#: The middleware itself, so the app can build sign-in/sign-out links and challenges.
MIDDLEWARE = PREFIX + "middleware"
#: ``current_user() -> User | None``, on every path: who is signed in, without asking anyone to
#: sign in. The session is read only when it is called, so public pages that do not ask cost nothing.
CURRENT_USER = PREFIX + "current_user"

# Session keys: everything msal_wsgi keeps in the session lives under these.
#: The msal token cache of the user's latest grant (sign-in), serialized.
SESSION_CACHE = PREFIX + "token_cache"
SESSION_USER = PREFIX + "user"
SESSION_FLOWS = PREFIX + "flows"
SESSION_DONE = PREFIX + "completed"
#: The same user's earlier grants, each with its own msal token cache (one refresh token each).
SESSION_GRANTS = PREFIX + "grants"
#: Form bodies kept across a sign-in, waiting for their single-use re-submission.
SESSION_REPLAYS = PREFIX + "replays"

#: msal_wsgi's session keys this request changed and has not flushed to the store (a set).
UNFLUSHED = PREFIX + "unflushed"

ALL_SESSION_KEYS = (SESSION_CACHE, SESSION_USER, SESSION_FLOWS, SESSION_DONE, SESSION_GRANTS, SESSION_REPLAYS)
