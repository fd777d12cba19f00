"""Authorization rules: what a signed-in user or an API caller must have beyond being who they are.

A :class:`Require` names app roles, groups, tenants, or a claims predicate; a prefix (web
:class:`~msal_wsgi.Protect` or API :class:`~msal_wsgi.ProtectApi`) lists one or more, and every
one of them must pass. Within one ``Require`` each kind is "any of": ``Require(roles=["Admin",
"Editor"])`` lets in either role; ``Require(roles=["Admin"], tenants=[T])`` needs both::

    protect = {"/admin": Protect(require=Require(roles=["Admin"])),
               "/api/reports": ProtectApi(read=["Reports.Read"], require=[
                   Require(groups=[FINANCE_GROUP_ID]),
                   Require(claims=lambda c: c.get("acrs") == "c1", description="step-up (acrs c1)")])}

The claims are the validated id token's for web prefixes, the access token's for API prefixes.
:func:`denial` says what the first failing rule wanted, in words for a 403 page, a JSON body and
a log line: never a claim's value.

Entra groups overage: a token lists at most 200 groups (JWT); for a user in more, Entra leaves
``groups`` out and points to Microsoft Graph instead (``_claim_names.groups``, or ``hasgroups``).
msal_wsgi does not call Graph: such a token fails a group rule with the requirement
``groups_overage``, whose message says so. Use app roles (assigned to groups, they are always in
the token), have Entra emit only the groups assigned to the application, or write a ``claims``
predicate that looks the groups up.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Union

from .errors import ConfigurationError

log = logging.getLogger("msal_wsgi")

Claims = Mapping[str, Any]
Predicate = Callable[[Claims], object]
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class Denial(NamedTuple):
    """Why a :class:`Require` refused: ``requirement`` is ``roles``, ``groups``, ``groups_overage``,
    ``tenants`` or ``claims``; ``needed`` what would have passed; ``message`` a sentence saying so."""

    requirement: str
    needed: tuple[str, ...]
    message: str


def _names(setting: str, value: str | Iterable[str] | None, *, guid: bool = False) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else list(value or ())
    for item in items:
        if not isinstance(item, str) or not item or any(c.isspace() for c in item):
            raise ConfigurationError(setting, f"{item!r} must be a non-empty string without spaces")
        if guid and not _GUID.match(item):
            raise ConfigurationError(setting, f"{item!r} is not a tenant id (a GUID, as the tid claim has it)")
    return tuple(dict.fromkeys(item.lower() if guid else item for item in items))


@dataclass(frozen=True)
class Require:
    """What a prefix requires of the user's or caller's claims; each given kind must pass.

    :param roles: app roles, any of them in the ``roles`` claim (Entra: roles assigned to the user,
        or an app-only token's application permissions).
    :param groups: group ids, any of them in the ``groups`` claim (Entra: group object ids).
    :param tenants: tenant ids, the ``tid`` claim one of them.
    :param claims: a function of the claims that returns true to let the request in (Python only).
    :param description: what ``claims`` requires, for the 403 answer and the log (default: its name).
    """

    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    claims: Predicate | None = None
    description: str = ""

    def __init__(self, *, roles: str | Iterable[str] = (), groups: str | Iterable[str] = (),
                 tenants: str | Iterable[str] = (), claims: Predicate | None = None, description: str = "") -> None:
        set_ = object.__setattr__
        set_(self, "roles", _names("require.roles", roles))
        set_(self, "groups", _names("require.groups", groups))
        set_(self, "tenants", _names("require.tenants", tenants, guid=True))
        if claims is not None and not callable(claims):
            raise ConfigurationError("require.claims", f"{claims!r} is not callable: give a function(claims) -> bool")
        set_(self, "claims", claims)
        if claims is not None and not description:
            description = f"the rule {getattr(claims, '__qualname__', None) or type(claims).__name__}"
        set_(self, "description", description)
        if not (self.roles or self.groups or self.tenants or claims):
            raise ConfigurationError("require", "requires nothing: give roles, groups, tenants or claims")

    def denial(self, claims: Claims) -> Denial | None:
        """What these claims lack, or ``None`` when they pass."""
        if self.tenants:
            tid = claims.get("tid")
            if not isinstance(tid, str) or tid.lower() not in self.tenants:
                return Denial("tenants", self.tenants, "Your organization (tenant) is not among those allowed here.")
        if self.roles and not _listed(claims.get("roles"), self.roles):
            return Denial("roles", self.roles, f"This needs one of the app roles {', '.join(self.roles)}.")
        if self.groups and not _listed(claims.get("groups"), self.groups):
            if "groups" not in claims and _overage(claims):
                return Denial("groups_overage", self.groups, "The token does not list your groups: you are in "
                              "more groups than a token holds (groups overage), and this application does not "
                              "look them up in Microsoft Graph.")
            return Denial("groups", self.groups, "This needs membership of one of the groups "
                          f"{', '.join(self.groups)}.")
        if self.claims is not None and not self._predicate(claims):
            return Denial("claims", (self.description,), f"This needs {self.description}.")
        return None

    def _predicate(self, claims: Claims) -> bool:
        assert self.claims is not None
        try:
            return bool(self.claims(claims))
        except Exception:  # a failing rule denies: never a 500, never a way in
            log.exception("msal_wsgi: the claims rule %s raised; access denied", self.description)
            return False


Requirements = Union[Require, Sequence[Require], None]


def requirements(setting: str, value: Requirements) -> tuple[Require, ...]:
    """``require=`` of a prefix as a tuple: one :class:`Require`, several, or none."""
    rules = () if value is None else (value,) if isinstance(value, Require) else tuple(value)
    for rule in rules:
        if not isinstance(rule, Require):
            raise ConfigurationError(setting, f"{rule!r} is not a Require(roles=..., groups=..., tenants=..., "
                                              "claims=...)")
    return rules


def denial(rules: tuple[Require, ...], claims: Claims) -> Denial | None:
    """The first of ``rules`` that ``claims`` fail, or ``None`` when all pass."""
    for rule in rules:
        refused = rule.denial(claims)
        if refused is not None:
            return refused
    return None


def _listed(value: object, wanted: tuple[str, ...]) -> bool:
    have = [value] if isinstance(value, str) else value if isinstance(value, list) else ()
    return any(item in have for item in wanted)


def _overage(claims: Claims) -> bool:
    """Entra's groups overage: ``_claim_names`` points ``groups`` to Graph, or ``hasgroups`` is true."""
    names = claims.get("_claim_names")
    return (isinstance(names, Mapping) and "groups" in names) or claims.get("hasgroups") is True
