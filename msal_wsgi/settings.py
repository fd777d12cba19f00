"""Configuration: one frozen object, built and validated once.

Each setting is declared once, as a field of :class:`Settings`: its type, its
default, how a string from an ini file or the environment becomes its value,
and a line of documentation. The environment variable is derived from the name
(``MSAL_`` + the name in capitals). Python keyword arguments, a PasteDeploy/ini
settings dict and environment variables all end up in :class:`Settings`; every
check runs at construction and a failure raises
:class:`~msal_wsgi.ConfigurationError` naming the setting as the user wrote it
(the keyword, the ini key or the environment variable).
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from typing import Any, Callable, TypeVar, Union
from urllib.parse import urlsplit

import requests

from .authz import Require, Requirements, requirements
from .crypto import parse_keys
from .errors import ConfigurationError
from .locks import SessionLock, lock_from_setting
from .redirects import origin_of

#: Scopes msal adds to every sign-in itself; listing them is an error in msal.
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PROMPTS = frozenset({"login", "consent", "select_account", "none", "create"})
RESPONSE_MODES = frozenset({"form_post", "query"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
TOKEN_ENDPOINT_AUTH_METHODS = frozenset({"auto", "client_secret_post", "client_secret_basic"})
ENV_PREFIX = "MSAL_"
_TENANT_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_PREFIX_RE = re.compile(r"^/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$")

Scopes = Union[str, Sequence[str]]
K = TypeVar("K")
V = TypeVar("V")


class FrozenMap(Mapping[K, V]):
    """An immutable, hashable mapping (the ``protect`` rules, Beaker options, a certificate credential)."""

    __slots__ = ("_dict", "_items")

    def __init__(self, items: Mapping[K, V] | Sequence[tuple[K, V]] = ()) -> None:
        pairs = tuple(items.items()) if isinstance(items, Mapping) else tuple(items)
        self._items = pairs
        self._dict = dict(pairs)

    def __getitem__(self, key: K) -> V:
        return self._dict[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __hash__(self) -> int:
        return hash(tuple((k, _hashable(v)) for k, v in self._items))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._items) == dict(other.items())

    def __repr__(self) -> str:
        return f"FrozenMap({self._dict!r})"


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _name_tuple(setting: str, value: Scopes | None, what: str = "scope") -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    for name in items:
        if not isinstance(name, str) or not name or any(c.isspace() for c in name) or '"' in name or "\\" in name:
            raise ConfigurationError(setting, f"{name!r} is not {what} (a non-empty string without spaces or quotes)")
    return tuple(dict.fromkeys(items))


def _scope_tuple(setting: str, value: Scopes | None) -> tuple[str, ...]:
    scopes = _name_tuple(setting, value, "a scope")
    for scope in scopes:
        if scope.lower() in RESERVED_SCOPES:
            raise ConfigurationError(
                setting, f"{scope!r} is requested automatically at sign-in; remove it from the list")
    return scopes


@dataclass(frozen=True)
class Protect:
    """What a protected web prefix needs: a signed-in user, and the access tokens its pages use.

    ``read`` scopes serve safe methods (GET, HEAD, OPTIONS); ``write`` scopes serve
    every other method and default to ``read``. With no scopes at all the prefix
    only requires a signed-in user and no access token is acquired. ``require``: one
    :class:`~msal_wsgi.Require` or several, which the user's id token claims must all pass.
    """

    read: tuple[str, ...] = ()
    write: tuple[str, ...] | None = None
    require: tuple[Require, ...] = ()

    def __init__(self, read: Scopes | None = (), write: Scopes | None = None, *,
                 require: Requirements = None) -> None:
        object.__setattr__(self, "read", _scope_tuple("protect.read", read))
        object.__setattr__(self, "write", None if write is None else _scope_tuple("protect.write", write))
        object.__setattr__(self, "require", requirements("protect.require", require))

    def scopes_for(self, method: str) -> tuple[str, ...]:
        """The scopes a request with this HTTP method needs."""
        if method in SAFE_METHODS or self.write is None:
            return self.read
        return self.write

    def describe(self) -> str:
        """One line for ``python -m msal_wsgi check``."""
        read = " ".join(self.read) or "(signed-in user, no token)"
        write = f"; other methods: {' '.join(self.write)}" if self.write is not None else ""
        return f"GET/HEAD/OPTIONS: {read}{write}{_describe_require(self.require)}"


@dataclass(frozen=True)
class ProtectApi:
    """What a web API prefix needs: a bearer access token for this API (``api_audience``), and in it
    one of the scopes or app roles that the request's method needs.

    - ``read``: delegated scopes for safe methods (GET, HEAD, OPTIONS), any one of them in the
      token's ``scp`` (or ``scope``) claim; written in full (``api://todo/ToDoList.Read``) or as
      the token has it (``ToDoList.Read``).
    - ``write``: delegated scopes for every other method; default ``read``.
    - ``app_read``, ``app_write``: the same for app-only tokens (client credentials), any one of
      the app roles in the ``roles`` claim; ``app_write`` defaults to ``app_read``. Without them,
      app-only tokens are refused.
    - ``require``: one :class:`~msal_wsgi.Require` or several, which the token's claims must pass.

    A token is app-only when its ``idtyp`` claim says ``app`` or, without ``idtyp``, when it has
    neither ``scp`` nor ``scope``: Entra's rule. A rule must name some scopes or app roles: any
    application of an Entra tenant can get a token for any API of it, without either.
    """

    read: tuple[str, ...] = ()
    write: tuple[str, ...] | None = None
    app_read: tuple[str, ...] = ()
    app_write: tuple[str, ...] | None = None
    require: tuple[Require, ...] = ()

    def __init__(self, read: Scopes | None = (), write: Scopes | None = None, *, app_read: Scopes | None = (),
                 app_write: Scopes | None = None, require: Requirements = None) -> None:
        set_ = object.__setattr__
        set_(self, "read", _name_tuple("protect.read", read))
        set_(self, "write", None if write is None else _name_tuple("protect.write", write))
        set_(self, "app_read", _name_tuple("protect.app_read", app_read, "an app role"))
        set_(self, "app_write", None if app_write is None else _name_tuple("protect.app_write", app_write,
                                                                            "an app role"))
        set_(self, "require", requirements("protect.require", require))
        if not (self.read or self.write or self.app_read or self.app_write):
            raise ConfigurationError("protect", "a ProtectApi rule must name the scopes (read=, write=) or app roles "
                                                "(app_read=, app_write=) a token needs: without them any "
                                                "application of the tenant can call the API")
        # The hot path compares short names (a scope as Entra's scp holds it: without the resource).
        set_(self, "_scopes", (frozenset(map(short_scope, self.read)),
                               frozenset(map(short_scope, self.read if self.write is None else self.write))))
        set_(self, "_roles", (frozenset(self.app_read),
                              frozenset(self.app_read if self.app_write is None else self.app_write)))

    def scopes_for(self, method: str) -> tuple[str, ...]:
        """The delegated scopes, any one of which a request with this method needs."""
        if method in SAFE_METHODS or self.write is None:
            return self.read
        return self.write

    def roles_for(self, method: str) -> tuple[str, ...]:
        """The app roles, any one of which an app-only request with this method needs."""
        if method in SAFE_METHODS or self.app_write is None:
            return self.app_read
        return self.app_write

    def accepts(self, method: str, *, app_only: bool, granted: frozenset[str]) -> bool:
        """Whether a token granting ``granted`` (short scope names, or app roles) may make this request."""
        sets: tuple[frozenset[str], frozenset[str]] = getattr(self, "_roles" if app_only else "_scopes")
        return not granted.isdisjoint(sets[0] if method in SAFE_METHODS else sets[1])

    def describe(self) -> str:
        """One line for ``python -m msal_wsgi check``."""
        parts = [f"API: GET/HEAD/OPTIONS: {' '.join(self.read) or '(no delegated tokens)'}"]
        if self.write is not None:
            parts.append(f"other methods: {' '.join(self.write)}")
        if self.app_read or self.app_write:
            parts.append(f"app-only: {' '.join(self.app_read) or '(none)'}"
                         + (f" | {' '.join(self.app_write)}" if self.app_write is not None else ""))
        return "; ".join(parts) + _describe_require(self.require)


Rule = Union[Protect, ProtectApi]


def short_scope(scope: str) -> str:
    """A scope as Entra's ``scp`` claim has it: ``api://todo/ToDoList.Read`` -> ``ToDoList.Read``."""
    return scope.rpartition("/")[2] if "://" in scope else scope


def _describe_require(rules: tuple[Require, ...]) -> str:
    wants = []
    for rule in rules:
        kinds = [f"{kind} {' '.join(getattr(rule, kind))}" for kind in ("roles", "groups", "tenants")
                 if getattr(rule, kind)]
        wants.append(", ".join(kinds + ([rule.description] if rule.claims else [])))
    return f"; requires {' and '.join(wants)}" if wants else ""


def _coerce_protect(value: Any) -> Rule:
    if isinstance(value, (Protect, ProtectApi)):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"read", "write"}
        if unknown:
            raise ConfigurationError("protect", f"unknown keys {sorted(unknown)}; use 'read' and 'write'")
        return Protect(value.get("read", ()), value.get("write"))
    if isinstance(value, (str, list, tuple)) or value is None:
        return Protect(value)
    raise ConfigurationError("protect", f"{value!r} is not a Protect, a ProtectApi, a scope list or a dict of "
                                        "read/write")


_PROTECT_LINE = re.compile(r"^(?P<prefix>/\S*)\s*=\s*(?P<rules>[^=]*?)\s*$")
_API_MARK, _ROLES_MARK = "api:", "roles:"


def parse_protect(text: str) -> dict[str, Rule]:
    """Parse the ini/env form, one rule per line or ``;``::

        PREFIX = READ SCOPES [| WRITE SCOPES]                                   a web prefix (Protect)
        PREFIX = api: READ SCOPES [| WRITE SCOPES] [roles: READ ROLES [| WRITE ROLES]]   an API (ProtectApi)

    Anything else is an error naming the rule: a second ``=``, a second ``|`` in a list, ``roles:``
    outside an API rule or twice, a prefix that does not start with ``/``, or rules run together
    with ``,`` instead of ``;``. ``require=`` rules have no text form: give them in Python.
    """
    rules: dict[str, Rule] = {}
    for number, line in enumerate(re.split(r"[\n;]", text), start=1):
        line = line.strip()
        if not line:
            continue
        match = _PROTECT_LINE.match(line)
        if match is None:
            raise _rule_error(number, line, "should read 'PREFIX = READ SCOPES | WRITE SCOPES' or 'PREFIX = api: "
                              "READ SCOPES | WRITE SCOPES roles: READ ROLES | WRITE ROLES' (one rule per line or "
                              "';', one '=')")
        prefix, words = match["prefix"], match["rules"].split()
        if prefix in rules:
            raise ConfigurationError("protect", f"prefix {prefix!r} is listed twice")
        for word in words:
            if word.startswith("/"):
                raise _rule_error(number, line, f"{word!r} looks like a prefix; separate rules with ';' or new "
                                                "lines, not ','")
        api = bool(words) and words[0] == _API_MARK
        if api:
            words = words[1:]
        marks = [i for i, word in enumerate(words) if word in (_API_MARK, _ROLES_MARK)]
        if (marks and not api) or len(marks) > 1 or (marks and words[marks[0]] != _ROLES_MARK):
            raise _rule_error(number, line, "'roles:' may appear once, in an API rule ('PREFIX = api: ...'), "
                                            "and 'api:' only first")
        scopes, roles = (words[:marks[0]], words[marks[0] + 1:]) if marks else (words, [])
        read, write = _read_write(number, line, scopes)
        if api:
            app_read, app_write = _read_write(number, line, roles)
            rules[prefix] = ProtectApi(read, write, app_read=app_read, app_write=app_write)
        else:
            rules[prefix] = Protect(read, write)
    return rules


def _read_write(number: int, line: str, words: list[str]) -> tuple[list[str], list[str] | None]:
    """``READ ... | WRITE ...`` -> the two lists (write None without ``|``)."""
    text = " ".join(words)
    if text.count("|") > 1:
        raise _rule_error(number, line, "has more than one '|' in a list: write 'READ | WRITE'")
    read, bar, write = text.partition("|")
    return read.replace(",", " ").split(), write.replace(",", " ").split() if bar else None


def _rule_error(number: int, line: str, problem: str) -> ConfigurationError:
    return ConfigurationError("protect", f"rule {number} {line!r} {problem}")


def _check_url(setting: str, url: str | None, *, allow_loopback_http: bool = False) -> None:
    if not url:
        return
    parts = urlsplit(url)
    loopback_http = parts.scheme == "http" and allow_loopback_http and parts.hostname in LOOPBACK_HOSTS
    if parts.scheme != "https" and not loopback_http:
        hint = " (http is allowed only for localhost)" if allow_loopback_http else ""
        raise ConfigurationError(setting, f"{url!r} must be an absolute https:// URL{hint}")
    if not parts.hostname or parts.fragment or parts.username is not None or parts.password is not None:
        raise ConfigurationError(setting, f"{url!r} must be an absolute URL with a host and no fragment or userinfo")


# -- coercion of ini/env strings ------------------------------------------------

def _text(value: str) -> str | None:
    return value or None


def _whole_number(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a whole number") from None


def _seconds(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number of seconds") from None


def _words(value: str) -> tuple[str, ...]:
    return tuple(value.replace(",", " ").split())


def _import_object(spec: str) -> Any:
    """``package.module:name`` -> the object, for settings that name a function in an ini file."""
    if not spec:
        return None
    module, _, name = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split(".") if name else ():
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot import {spec!r} (write 'package.module:function'): {exc}") from None
    return obj


def setting(default: Any = MISSING, *, doc: str, parse: Callable[[str], Any] = _text, env: bool = True,
            secret: bool = False, compare: bool = True) -> Any:
    """Declare a field of :class:`Settings`: its default, how an ini/env string becomes its value, its doc."""
    return field(default=default, repr=not secret, compare=compare,
                 metadata={"doc": doc, "parse": parse, "env": env})


@dataclass(frozen=True)
class Settings:
    """Everything msal_wsgi needs to know, validated once.

    README.md's configuration reference lists each field; ``Settings.reference()``
    yields the same rows from these declarations.
    """

    client_id: str = setting("", doc="the app registration's application (client) ID (required)")
    client_secret: str | None = setting(None, secret=True, doc="the client secret")
    client_certificate: str | None = setting(
        None, doc="path of a PEM file (private key and certificate) or a .pfx/.p12 file")
    client_certificate_password: str | None = setting(None, secret=True, doc="password of client_certificate")
    client_credential: Any = setting(
        None, secret=True, env=False,
        doc="Python only: a secret, or a certificate dict as msal takes it, instead of the three above")
    authority: str | None = setting(None, doc="an Entra ID, External ID or B2C authority URL")
    oidc_authority: str | None = setting(
        None, doc="any other OpenID Connect issuer (https, with a path); exactly one of the two")
    redirect_uri: str = setting(
        "", doc="absolute URL of the callback; its path is the callback endpoint (required, but by an API-only app)")
    protect: Mapping[str, Rule] = setting(
        FrozenMap(), parse=parse_protect,
        doc="{prefix: Protect(...) or ProtectApi(...)}; ini/env: 'PREFIX = READ SCOPES | WRITE SCOPES' or "
            "'PREFIX = api: READ SCOPES | WRITE SCOPES roles: READ ROLES | WRITE ROLES', per line or ';'")
    api_audience: tuple[str, ...] = setting(
        (), parse=_words, doc="what the aud claim of access tokens for the API prefixes holds: the API's App ID URI "
                              "and/or client id (required with ProtectApi rules)")
    api_token_cache: int = setting(
        1024, parse=_whole_number, doc="validated bearer tokens remembered until they expire (0: validate each time)")
    login_path: str = setting("/auth/login", doc="sign-in endpoint (?next=, login_hint, domain_hint)")
    logout_path: str = setting("/auth/logout", doc="sign-out endpoint")
    post_logout_redirect_uri: str | None = setting(
        None, doc="where the provider sends the user after sign-out (default: the origin of redirect_uri + /)")
    session_key: str = setting("beaker.session", doc="environ key of the session (a dict-like object with save())")
    session_options: Mapping[str, Any] | None = setting(
        None, env=False, doc="Beaker options (ini: session.* keys); when set, msal_wsgi installs Beaker itself")
    response_mode: str = setting("form_post", doc="form_post or query")
    prompt: str | None = setting(None, doc="login, consent, select_account, none or create, for every sign-in")
    domain_hint: str | None = setting(None, doc="sent with every sign-in")
    login_scopes: tuple[str, ...] = setting(
        (), parse=_words, doc="scopes for the sign-in endpoint when next is not under a protected prefix")
    max_pending_sign_ins: int = setting(
        5, parse=_whole_number, doc="sign-ins in progress per session (tabs); the oldest is dropped")
    sign_in_timeout: int = setting(600, parse=_whole_number, doc="seconds a pending sign-in stays valid")
    max_replay_body: int = setting(
        64 * 1024, parse=_whole_number,
        doc="largest form body (bytes) kept across a sign-in and re-submitted after it; 0: none")
    http_timeout: float = setting(10.0, parse=_seconds, doc="seconds for each request to the provider")
    http_session: requests.Session | None = setting(
        None, env=False, compare=False,
        doc="Python only: the requests.Session that every request to the provider goes through (a proxy, a CA "
            "bundle, a client certificate or a transport adapter of yours); default: a new one, which honours "
            "REQUESTS_CA_BUNDLE and the proxy variables")
    allowed_redirect_origins: tuple[str, ...] = setting(
        (), parse=_words, doc="absolute origins next may point to, besides this app")
    allowed_tenants: tuple[str, ...] = setting(
        (), parse=_words, doc="Entra tenant ids whose users may sign in (needed with /common or /organizations)")
    clock_skew: int = setting(
        60, parse=_whole_number, doc="seconds of clock difference tolerated when checking token times")
    token_endpoint_auth_method: str = setting(
        "auto", doc="client_secret_post, client_secret_basic, or auto: post when the provider announces it")
    remote_user_claim: str | None = setting(
        None, doc="the claim REMOTE_USER holds (default: oid for Entra ID, else sub)")
    session_lock: Any = setting(
        None, compare=False,
        doc="per-session refresh lock: thread, file:DIR, a redis:// URL, or lock(session_id) -> context manager")
    on_event: Callable[[str, Mapping[str, Any]], None] | None = setting(
        None, parse=_import_object, env=False, compare=False,
        doc="metrics hook on_event(name, data); ini: package.module:function")
    # -- sessions (issue 11) --------------------------------------------------------------
    session_keys: tuple[str, ...] = setting(
        (), parse=parse_keys, secret=True,
        doc="keys sealing what msal_wsgi keeps in the session (AES-256-GCM), base64url of 32 bytes, separated "
            "by commas or spaces: the first seals, all open (rotation); make one with python -m msal_wsgi make-key")
    idle_timeout: int = setting(
        7200, parse=_whole_number, doc="seconds without a request after which a sign-in ends (0: no limit)")
    max_session_lifetime: int = setting(
        86400, parse=_whole_number, doc="seconds after a sign-in after which it ends, however active (0: no limit)")
    session_activity_interval: int = setting(
        300, parse=_whole_number,
        doc="seconds between two writes of the time a signed-in user was last seen (at most half of idle_timeout)")
    account_recheck_interval: int = setting(
        900, parse=_whole_number,
        doc="seconds between two checks with the provider (a silent refresh of the sign-in) that the account of a "
            "prefix without scopes may still sign in (0: never)")
    backchannel_logout_path: str = setting(
        "/auth/backchannel-logout", doc="where the provider POSTs logout tokens (OpenID Connect Back-Channel Logout)")
    frontchannel_logout_path: str = setting(
        "/auth/frontchannel-logout", doc="what the provider opens in an iframe with iss and sid (Front-Channel Logout)")
    # -- end of sessions ----------------------------------------------------------------------

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not self.client_id or not str(self.client_id).strip():
            raise ConfigurationError("client_id", "is required: the application (client) ID of your app registration")
        endpoints = {"login_path": self.login_path, "logout_path": self.logout_path,
                     "backchannel_logout_path": self.backchannel_logout_path,
                     "frontchannel_logout_path": self.frontchannel_logout_path}
        for name, path in endpoints.items():
            if not isinstance(path, str) or not _PREFIX_RE.match(path) or path == "/":
                raise ConfigurationError(name, f"{path!r} must be an app-relative path such as /auth/login")
        seen: dict[str, str] = {}
        for name, path in endpoints.items():
            if path in seen:
                raise ConfigurationError(name, f"must differ from {seen[path]}")
            seen[path] = name
        set_(self, "protect", self._checked_protect(endpoints))
        set_(self, "api_audience", self._audiences())
        set_(self, "client_credential", self._credential())
        if bool(self.authority) == bool(self.oidc_authority):
            raise ConfigurationError(
                "authority",
                "set exactly one of 'authority' (Entra ID, External ID, B2C) or "
                "'oidc_authority' (any other OpenID Connect provider)")
        _check_url("authority", self.authority)
        if self.oidc_authority:
            set_(self, "oidc_authority", self.oidc_authority.rstrip("/"))
            _check_url("oidc_authority", self.oidc_authority)
            if not urlsplit(self.oidc_authority).path.strip("/"):
                raise ConfigurationError(
                    "oidc_authority", "must have a path (for example https://id.example/realm); msal requires one")
        if not self.redirect_uri and not self.api_only:
            raise ConfigurationError("redirect_uri", "is required: the absolute URL of the callback, for example "
                                     "https://app.example/auth/callback (only an app whose protect rules are all "
                                     "ProtectApi, which signs no one in, may leave it out)")
        _check_url("redirect_uri", self.redirect_uri, allow_loopback_http=True)
        if urlsplit(self.redirect_uri).query:
            raise ConfigurationError("redirect_uri", "must not have a query string")
        _check_url("post_logout_redirect_uri", self.post_logout_redirect_uri, allow_loopback_http=True)
        if self.response_mode not in RESPONSE_MODES:
            raise ConfigurationError("response_mode", f"must be one of {sorted(RESPONSE_MODES)}")
        if self.prompt is not None and self.prompt not in PROMPTS:
            raise ConfigurationError("prompt", f"must be one of {sorted(PROMPTS)}")
        set_(self, "login_scopes", _scope_tuple("login_scopes", self.login_scopes))
        set_(self, "allowed_redirect_origins", tuple(self._origins()))
        for name in ("max_pending_sign_ins", "sign_in_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100_000:
                raise ConfigurationError(name, "must be a whole number from 1 to 100000")
        if not isinstance(self.max_replay_body, int) or isinstance(self.max_replay_body, bool) \
                or not 0 <= self.max_replay_body <= 1024 * 1024:
            raise ConfigurationError("max_replay_body", "must be a whole number of bytes from 0 to 1048576 (1 MB)")
        if not isinstance(self.clock_skew, int) or isinstance(self.clock_skew, bool) or not 0 <= self.clock_skew <= 600:
            raise ConfigurationError("clock_skew", "must be a whole number of seconds from 0 to 600")
        if self.token_endpoint_auth_method not in TOKEN_ENDPOINT_AUTH_METHODS:
            raise ConfigurationError("token_endpoint_auth_method", f"must be one of {sorted(TOKEN_ENDPOINT_AUTH_METHODS)}")
        set_(self, "allowed_tenants", tuple(self._tenants()))
        if self.remote_user_claim is not None and (not isinstance(self.remote_user_claim, str)
                                                   or not self.remote_user_claim.strip()):
            raise ConfigurationError("remote_user_claim", "must name a claim, such as preferred_username")
        if not isinstance(self.http_timeout, (int, float)) or not 0 < self.http_timeout <= 300:
            raise ConfigurationError("http_timeout", "must be a number of seconds between 0 and 300")
        if self.http_session is not None and not isinstance(self.http_session, requests.Session):
            raise ConfigurationError("http_session", f"must be a requests.Session, not {type(self.http_session).__name__}"
                                                     " (Python only: there is no ini or environment form)")
        if not self.session_key:
            raise ConfigurationError("session_key", "must name the environ key of the session")
        if self.session_options is not None:
            set_(self, "session_options", FrozenMap(_checked_session_options(self.session_options)))
        set_(self, "session_lock", self._lock())
        if self.on_event is not None and not callable(self.on_event):
            raise ConfigurationError("on_event", f"{self.on_event!r} is not callable: give a function(name, data)")
        if (not isinstance(self.api_token_cache, int) or isinstance(self.api_token_cache, bool)
                or not 0 <= self.api_token_cache <= 1_000_000):
            raise ConfigurationError("api_token_cache", "must be a whole number from 0 to 1000000")
        self._check_sessions()

    def _check_sessions(self) -> None:
        """The session settings of issue 11: keys, lifetimes."""
        try:
            object.__setattr__(self, "session_keys", parse_keys(self.session_keys))
        except ValueError as exc:
            raise ConfigurationError("session_keys", str(exc)) from None
        for name, top in (("idle_timeout", 366 * 86400), ("max_session_lifetime", 3660 * 86400),
                          ("account_recheck_interval", 366 * 86400), ("session_activity_interval", 86400)):
            value = getattr(self, name)
            low = 1 if name == "session_activity_interval" else 0
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= top:
                raise ConfigurationError(name, f"must be a whole number of seconds from {low} to {top}")
        if self.idle_timeout and self.session_activity_interval * 2 > self.idle_timeout:
            raise ConfigurationError("session_activity_interval", f"must be at most half of idle_timeout "
                                     f"({self.idle_timeout} s): a session ends between idle_timeout minus this "
                                     "interval and idle_timeout after the last request")

    @property
    def unencrypted_deployment(self) -> bool:
        """Whether users sign in at a host other than this machine while sessions are stored unsealed."""
        host = urlsplit(self.redirect_uri).hostname if self.redirect_uri else None
        return not self.session_keys and host is not None and host not in LOOPBACK_HOSTS and \
            f"[{host}]" not in LOOPBACK_HOSTS

    @property
    def api_only(self) -> bool:
        """Whether every protected prefix is an API (:class:`ProtectApi`): no one signs in here."""
        return bool(self.protect) and all(isinstance(rule, ProtectApi) for rule in self.protect.values())

    def _credential(self) -> Any:
        given = [name for name in ("client_credential", "client_secret", "client_certificate") if getattr(self, name)]
        if not given:
            if self.api_only and not self.redirect_uri:
                return None  # it validates tokens only; with a credential it could call APIs on behalf of callers
            raise ConfigurationError(
                "client_secret", "is required: a client secret, or client_certificate (a PEM or PFX file), or in "
                "Python client_credential={'private_key': ..., 'public_certificate': ...} (an API-only app, "
                "without redirect_uri, needs one only to call other APIs on behalf of its callers)")
        if len(given) > 1:
            raise ConfigurationError(given[1], f"set only one of {', '.join(given)}")
        if self.client_certificate:
            return FrozenMap(_certificate(self.client_certificate, self.client_certificate_password))
        credential = self.client_credential or self.client_secret
        if isinstance(credential, Mapping):
            return FrozenMap(credential)
        if not isinstance(credential, str):
            raise ConfigurationError("client_credential", "must be a client secret (a string) or a certificate dict")
        return credential

    def _lock(self) -> SessionLock:
        value = self.session_lock
        options = self.session_options or {}
        if value is None and options.get("type") == "file" and (options.get("lock_dir") or options.get("data_dir")):
            # Beaker file sessions are shared by the processes of one host: lock across them.
            value = "file:" + os.path.join(str(options.get("lock_dir") or options.get("data_dir")), "msal_wsgi")
        elif value is None and options.get("type") == "ext:redis" \
                and str(options.get("url") or "").startswith(("redis://", "rediss://", "unix://")):
            # Beaker Redis sessions are shared by every server using that Redis: lock there too.
            value = str(options["url"])
        try:
            return lock_from_setting(value)
        except (ValueError, OSError, ImportError) as exc:
            raise ConfigurationError("session_lock", str(exc)) from None

    def _tenants(self) -> list[str]:
        tenants = [self.allowed_tenants] if isinstance(self.allowed_tenants, str) else list(self.allowed_tenants)
        for tenant in tenants:
            if not isinstance(tenant, str) or not _TENANT_RE.match(tenant):
                raise ConfigurationError("allowed_tenants", f"{tenant!r} is not a tenant id (a GUID, as the tid claim has it)")
        return [tenant.lower() for tenant in tenants]

    def _origins(self) -> list[str]:
        origins = []
        for origin in self.allowed_redirect_origins:
            _check_url("allowed_redirect_origins", origin, allow_loopback_http=True)
            parts, serialized = urlsplit(origin), origin_of(origin)
            if parts.path not in ("", "/") or parts.query or not serialized:
                raise ConfigurationError("allowed_redirect_origins", f"{origin!r} must be an origin: scheme://host[:port]")
            origins.append(serialized)
        return origins

    def _audiences(self) -> tuple[str, ...]:
        audiences = _name_tuple("api_audience", self.api_audience, "an audience")
        apis = [rule for rule in self.protect.values() if isinstance(rule, ProtectApi)]
        if apis and not audiences:
            raise ConfigurationError("api_audience", "is required with ProtectApi rules: what the aud claim of "
                                     "access tokens for this API holds, its App ID URI (api://...) or client id")
        for rule in apis:  # a scope written in full must be one of this API's
            for scope in (*rule.read, *(rule.write or ())):
                resource = scope.rpartition("/")[0]
                if "://" in scope and resource not in audiences:
                    raise ConfigurationError("protect", f"the scope {scope!r} belongs to {resource!r}, which is not "
                                             "in api_audience; add it there, or write the scope as the token's scp "
                                             f"claim has it ({short_scope(scope)!r})")
        return audiences

    def _checked_protect(self, endpoints: Mapping[str, str]) -> FrozenMap[str, Rule]:
        if not isinstance(self.protect, Mapping):
            raise ConfigurationError("protect", "must map path prefixes to Protect(...) or ProtectApi(...)")
        rules: dict[str, Rule] = {}
        for prefix, rule in self.protect.items():
            if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
                raise ConfigurationError("protect", f"{prefix!r} must be a path starting with '/'")
            if prefix == "/":
                raise ConfigurationError("protect", "'/' would protect the sign-in endpoints too; "
                                                    "protect the prefixes of the app's own pages")
            if prefix.endswith("/") or "//" in prefix or "/./" in prefix + "/" or "/../" in prefix + "/" \
                    or "%" in prefix:
                raise ConfigurationError(
                    "protect", f"{prefix!r} is malformed: no trailing slash, empty, dot or encoded segments")
            for name, path in endpoints.items():
                if path == prefix or path.startswith(prefix + "/"):
                    raise ConfigurationError(
                        "protect", f"{prefix!r} overlaps {name} {path!r}; sign-in endpoints cannot be protected")
            rules[prefix] = _coerce_protect(rule)
        return FrozenMap(rules)

    @property
    def callback_path(self) -> str | None:
        """The URL path of ``redirect_uri``, where the provider sends the user back (None without one)."""
        return (urlsplit(self.redirect_uri).path or "/") if self.redirect_uri else None

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with some fields replaced, validated again."""
        if "client_secret" in changes or "client_certificate" in changes or "client_credential" in changes:
            # A new credential replaces the old one, whichever form either takes.
            changes = {"client_credential": None, "client_secret": None, "client_certificate": None, **changes}
        return replace(self, **changes)

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any], *, env: Mapping[str, str] | None = None) -> Settings:
        """Build from an ini/PasteDeploy settings dict; ``env`` (``MSAL_*`` variables) overrides it.

        Errors name the ini key, or the variable when the value came from ``env``.
        """
        values, names = _from_ini(settings)
        if env is not None:
            env_values, env_names = _from_env(env)
            values.update(env_values)
            names.update(env_names)
        return _build(cls, values, names)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build from ``MSAL_*`` environment variables; keyword ``overrides`` win.

        Errors name the variable the user set (``MSAL_CLIENT_ID``), or the keyword.
        """
        values, names = _from_env(os.environ if env is None else env)
        values.update(overrides)
        for key in overrides:
            names.pop(key, None)
        return _build(cls, values, names)

    @classmethod
    def reference(cls) -> Iterator[tuple[str, str | None, Any, str]]:
        """``(setting, environment variable or None, default, doc)`` for every setting."""
        for f in fields(cls):
            yield f.name, env_var(f) if f.metadata["env"] else None, f.default, f.metadata["doc"]


def env_var(f: Field[Any]) -> str:
    """The environment variable of a setting: ``MSAL_`` + its name in capitals."""
    return ENV_PREFIX + f.name.upper()


_FIELDS = {f.name: f for f in fields(Settings)}
ENV_VARS = {env_var(f): f.name for f in _FIELDS.values() if f.metadata["env"]}


def _from_string(name: str, text: str, source: str) -> Any:
    try:
        return _FIELDS[name].metadata["parse"](text.strip())
    except ConfigurationError as exc:
        raise ConfigurationError(source, exc.problem) from None
    except ValueError as exc:
        raise ConfigurationError(source, str(exc)) from None


def _from_ini(settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Typed values from an ini section, and the key each came from."""
    values: dict[str, Any] = {}
    names: dict[str, str] = {}
    session = {key[len("session."):]: value for key, value in settings.items() if key.startswith("session.")}
    if session:
        values["session_options"] = session
    for key, value in settings.items():
        if key.startswith("session."):
            continue
        if key not in _FIELDS:
            raise ConfigurationError(key, "is not a msal_wsgi setting" + _nearest(key, _FIELDS))
        values[key] = _from_string(key, value, key) if isinstance(value, str) else value
        names[key] = key
    return values, names


#: ``MSAL_*`` variables that are not ours: msal's own.
FOREIGN_ENV_VARS = frozenset({"MSAL_FORCE_REGION"})


def _from_env(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Typed values from the ``MSAL_*`` variables that are set, and the variable each came from.

    An unknown ``MSAL_*`` variable is an error naming the nearest known one: a typo such as
    ``MSAL_CLIENTID`` would otherwise leave its setting silently unset.
    """
    for var in env:
        if var.startswith(ENV_PREFIX) and var not in ENV_VARS and var not in FOREIGN_ENV_VARS:
            raise ConfigurationError(var, "is not a msal_wsgi environment variable" + _nearest(var, ENV_VARS))
    values: dict[str, Any] = {}
    names: dict[str, str] = {}
    for var, name in ENV_VARS.items():
        if env.get(var):
            values[name] = _from_string(name, env[var], var)
            names[name] = var
    return values, names


def _nearest(word: str, known: Mapping[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known settings: {', '.join(sorted(known))}"


def _build(cls: type[Settings], values: dict[str, Any], names: Mapping[str, str]) -> Settings:
    """``cls(**values)``, with an error naming the key or variable the user wrote rather than the field."""
    try:
        return cls(**values)
    except ConfigurationError as exc:
        written = names.get(exc.setting.partition(".")[0])  # protect.read: the protect setting
        if written is None or written == exc.setting:
            raise
        raise ConfigurationError(written, exc.problem) from None


def _checked_session_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Beaker options as Beaker will coerce them; cookie-only storage and bad values are refused now."""
    from beaker.cache import clsmap  # optional dependency, needed only with session_options
    from beaker.util import coerce_session_params

    kind = options.get("type", "memory")
    if str(kind) == "cookie":
        raise ConfigurationError(
            "session.type",
            "cookie-only sessions cannot hold a token cache (browsers cap cookies near 4 KB and a "
            "cache with one account is 3-6 KB); use server-side storage such as "
            "'file', 'ext:redis' or 'ext:database'")
    if isinstance(kind, str):  # Beaker's own table of storage types (and its plugins'), which it reads per request
        try:
            clsmap[kind]
        except KeyError:
            raise ConfigurationError("session.type", f"{kind!r} is not a Beaker storage type, such as 'file', "
                                     "'ext:redis' or 'ext:database'") from None
    try:
        coerce_session_params(dict(options))
    except Exception as exc:  # noqa: BLE001 - Beaker raises plain Exception, naming the option
        raise ConfigurationError("session_options", f"Beaker refuses them: {exc}") from None
    return dict(options)


def _certificate(path: str, password: str | None) -> dict[str, Any]:
    """msal's credential for a PEM or PKCS#12 file, once its key is known to open and fit its certificate."""
    from cryptography import x509  # msal's own dependency
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_private_key, pkcs12

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigurationError("client_certificate", f"cannot read {path!r}: {exc.strerror}") from None
    pfx = path.lower().endswith((".pfx", ".p12"))
    secret = password.encode() if password else None
    try:
        if pfx:
            key, cert, _ = pkcs12.load_key_and_certificates(data, secret)
        else:
            key, cert = load_pem_private_key(data, secret), x509.load_pem_x509_certificate(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        kind = "a PKCS#12 file" if pfx else "a PEM file"
        raise ConfigurationError("client_certificate", f"{path!r} must be {kind} with the private key and its "
                                 f"certificate (and client_certificate_password if the key is encrypted): {exc}") from None
    if key is None or cert is None or key.public_key() != cert.public_key():
        raise ConfigurationError("client_certificate", f"the private key in {path!r} does not belong to its certificate")
    if pfx:
        return {"private_key_pfx_path": path, "passphrase": password}
    pem = data.decode("ascii")
    return {"private_key": pem, "public_certificate": pem, "passphrase": password}
