"""What the wrapped app receives: the signed-in :class:`User` and an :class:`AccessToken`, or an
API prefix's :class:`Caller`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AccessToken:
    """An access token for ``scopes``, valid until ``expires_on`` (Unix time)."""

    value: str = field(repr=False)
    expires_on: int
    scopes: tuple[str, ...]
    refresh_on: int | None = None

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value: ``Bearer <token>``."""
        return "Bearer " + self.value


@dataclass(frozen=True)
class User:
    """The signed-in user, as the wrapped app sees it (``environ['msal_wsgi.user']``)."""

    home_account_id: str
    claims: Mapping[str, Any] = field(repr=False)

    @property
    def id(self) -> str:
        """A stable identifier of the user: ``oid`` (Entra ID's object id), else ``sub``.

        Unlike :attr:`username`, it never changes and is unique across tenants (with :attr:`tenant`).
        Authorize on it, not on ``preferred_username``.
        """
        return str(self.claims.get("oid") or self.claims.get("sub") or self.home_account_id)

    @property
    def tenant(self) -> str | None:
        """The Entra tenant id (``tid``) the user signed in from, else ``None``."""
        tid = self.claims.get("tid")
        return str(tid) if tid else None

    def remote_user(self, claim: str | None = None) -> str:
        """What ``REMOTE_USER`` holds: the value of ``claim``, else :attr:`id`."""
        if claim is None:
            return self.id
        return str(self.claims.get(claim) or self.id)

    @property
    def username(self) -> str:
        """``preferred_username`` (Entra ID: the UPN or e-mail), else ``email``, else ``sub``."""
        c = self.claims
        return str(c.get("preferred_username") or c.get("email") or c.get("sub") or self.home_account_id)

    @property
    def name(self) -> str:
        """The display name (``name`` claim), else :attr:`username`."""
        return str(self.claims.get("name") or self.username)


@dataclass(frozen=True)
class Caller:
    """Who called an API prefix (``environ['msal_wsgi.caller']``): the bearer token's validated claims.

    ``app_only`` is true for a token an application got for itself (client credentials), false for a
    user's (delegated). ``scopes`` are the delegated scopes granted, as the token lists them (Entra:
    ``ToDoList.Read``); ``roles`` the ``roles`` claim (an app-only token's application permissions,
    or the app roles assigned to the user).
    """

    claims: Mapping[str, Any] = field(repr=False)
    app_only: bool
    scopes: frozenset[str]
    roles: frozenset[str]

    def __post_init__(self) -> None:
        # Built once: a validated token's Caller is kept and served again for as long as the token lives.
        tenant = self.tenant
        user = None if self.app_only else User(f"{self.id}.{tenant}" if tenant else self.id, self.claims)
        object.__setattr__(self, "_user", user)

    @property
    def id(self) -> str:
        """A stable identifier of the caller: ``oid`` (Entra: the user's, or the calling app's service
        principal), else ``sub``."""
        return str(self.claims.get("oid") or self.claims.get("sub") or "")

    @property
    def app_id(self) -> str | None:
        """The client that asked for the token: ``azp`` (Entra v2), ``appid`` (v1) or ``client_id`` (RFC 9068)."""
        value = self.claims.get("azp") or self.claims.get("appid") or self.claims.get("client_id")
        return str(value) if value else None

    @property
    def tenant(self) -> str | None:
        """The Entra tenant id (``tid``) of the caller, else ``None``."""
        tid = self.claims.get("tid")
        return str(tid) if tid else None

    @property
    def user(self) -> User | None:
        """The user on whose behalf a delegated token was issued, with the token's claims; ``None`` for app-only."""
        user: User | None = self.__dict__["_user"]
        return user
