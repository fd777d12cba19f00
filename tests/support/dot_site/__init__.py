"""django-oauth-toolkit as a second, independent OpenID Connect provider for the tests.

A tiny Django project: DOT under ``/o/`` (OpenID Connect on, RS256, PKCE, rotating
refresh tokens, its consent page), Django's login page under ``/accounts/``, a
throw-away SQLite database. Access tokens are RS256 JWTs signed with the OpenID
Connect key (:mod:`dot_site.tokens`), so any API that validates JWT bearer tokens
against the provider's JWKS accepts them. Configured by ``DOT_*`` environment
variables; started and driven by :class:`support.dot.DotProvider`.
"""
