"""The exceptions msal_wsgi raises: one root, and only what a caller can act on."""

from __future__ import annotations


class MsalWsgiError(Exception):
    """Root of every error msal_wsgi raises."""


class ConfigurationError(MsalWsgiError, ValueError):
    """A setting is missing or invalid; the message names the setting and the fix."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"msal_wsgi setting {setting!r}: {problem}")


class InteractionRequired(MsalWsgiError):
    """No token can be had silently: the user must sign in (again) or consent.

    ``claims_challenge`` carries a claims challenge to pass to the next sign-in;
    ``scopes``, when known, the scopes that need it (the next sign-in asks for them).
    """

    def __init__(self, reason: str, *, claims_challenge: str | None = None,
                 scopes: tuple[str, ...] | None = None) -> None:
        self.reason = reason
        self.claims_challenge = claims_challenge
        self.scopes = scopes
        super().__init__(reason)


class ProviderUnavailable(MsalWsgiError):
    """The identity provider could not be reached or answered with a server error."""


class ProviderMisconfigured(ProviderUnavailable):
    """The provider and the settings do not fit together (its discovery document names another
    issuer, it announces no usable signing algorithm...). Retrying does not help."""


class CredentialRejected(ProviderMisconfigured):
    """The provider refused the application itself (``invalid_client``): its client_id,
    client secret or certificate is wrong or expired. Retrying does not help."""


class ResponseRejected(MsalWsgiError):
    """An answer of the provider broke a rule of the protocol (an invalid id_token, a wrong ``iss``
    response parameter...); ``rule`` names it (a :class:`~msal_wsgi.SignInFailure` value)."""

    def __init__(self, rule: str, detail: str) -> None:
        self.rule = rule
        self.detail = detail
        super().__init__(f"{rule}: {detail}")


class SessionUnavailable(MsalWsgiError):
    """The session store failed to load or save the session."""
