"""Configuration: one frozen object, built and validated once.

Python keyword arguments, a PasteDeploy/ini settings dict and environment
variables all end up in :class:`Settings`. Every check runs at construction and
a failure raises :class:`~msal_wsgi.ConfigurationError` naming the setting.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Union
from urllib.parse import urlsplit

from .errors import ConfigurationError
from .locks import SessionLock, lock_from_setting

#: Scopes msal adds to every sign-in itself; listing them is an error in msal.
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PROMPTS = frozenset({"login", "consent", "select_account", "none", "create"})
RESPONSE_MODES = frozenset({"form_post", "query"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
_PREFIX_RE = re.compile(r"^/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$")

Scopes = Union[str, Sequence[str]]
Credential = Union[str, Mapping[str, Any]]


def _scope_tuple(setting: str, value: Scopes | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    for scope in items:
        if not isinstance(scope, str) or not scope or any(c.isspace() for c in scope):
            raise ConfigurationError(setting, f"{scope!r} is not a scope (a non-empty string without spaces)")
        if scope.lower() in RESERVED_SCOPES:
            raise ConfigurationError(
                setting, f"{scope!r} is requested automatically at sign-in; remove it from the list")
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True)
class Protect:
    """What a protected path prefix needs.

    ``read`` scopes serve safe methods (GET, HEAD, OPTIONS); ``write`` scopes serve
    every other method and default to ``read``. With no scopes at all the prefix
    only requires a signed-in user and no access token is acquired.
    """

    read: tuple[str, ...] = ()
    write: tuple[str, ...] | None = None

    def __init__(self, read: Scopes | None = (), write: Scopes | None = None) -> None:
        object.__setattr__(self, "read", _scope_tuple("protect.read", read))
        object.__setattr__(self, "write", None if write is None else _scope_tuple("protect.write", write))

    def scopes_for(self, method: str) -> tuple[str, ...]:
        """The scopes a request with this HTTP method needs."""
        if method in SAFE_METHODS or self.write is None:
            return self.read
        return self.write


def _coerce_protect(value: Any) -> Protect:
    if isinstance(value, Protect):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"read", "write"}
        if unknown:
            raise ConfigurationError("protect", f"unknown keys {sorted(unknown)}; use 'read' and 'write'")
        return Protect(value.get("read", ()), value.get("write"))
    if isinstance(value, (str, list, tuple)) or value is None:
        return Protect(value)
    raise ConfigurationError("protect", f"{value!r} is not a Protect, a scope list or a dict of read/write")


def parse_protect(text: str) -> dict[str, Protect]:
    """Parse the ini/env form: one ``PREFIX = READ SCOPES [| WRITE SCOPES]`` per line or ``;``."""
    rules: dict[str, Protect] = {}
    for line in re.split(r"[\n;]", text):
        line = line.strip()
        if not line:
            continue
        prefix, sep, scopes = line.partition("=")
        if not sep:
            raise ConfigurationError("protect", f"{line!r} should read 'PREFIX = READ SCOPES | WRITE SCOPES'")
        read, bar, write = scopes.partition("|")
        prefix = prefix.strip()
        if prefix in rules:
            raise ConfigurationError("protect", f"prefix {prefix!r} is listed twice")
        rules[prefix] = Protect(read, write if bar else None)
    return rules


def _check_url(setting: str, url: str | None, *, allow_loopback_http: bool = False) -> None:
    if not url:
        return
    parts = urlsplit(url)
    loopback_http = parts.scheme == "http" and allow_loopback_http and parts.hostname in LOOPBACK_HOSTS
    if parts.scheme != "https" and not loopback_http:
        hint = " (http is allowed only for localhost)" if allow_loopback_http else ""
        raise ConfigurationError(setting, f"{url!r} must be an absolute https:// URL{hint}")
    if not parts.hostname or parts.fragment or parts.username or parts.password:
        raise ConfigurationError(setting, f"{url!r} must be an absolute URL with a host and no fragment or userinfo")


def check_session_options(options: Mapping[str, Any]) -> None:
    """Refuse Beaker session storage that cannot hold a token cache."""
    if str(options.get("type", "memory")) == "cookie":
        raise ConfigurationError(
            "session.type",
            "cookie-only sessions cannot hold a token cache (browsers cap cookies near 4 KB and a "
            "cache with one account is 3-6 KB); use server-side storage such as "
            "'file', 'ext:redis' or 'ext:database'")


@dataclass(frozen=True)
class Settings:
    """Everything msal_wsgi needs to know, validated once.

    See the configuration reference in README.md for each field.
    """

    client_id: str
    redirect_uri: str
    client_credential: Credential | None = field(default=None, repr=False)
    authority: str | None = None
    oidc_authority: str | None = None
    protect: Mapping[str, Protect] = field(default_factory=dict)
    login_path: str = "/auth/login"
    logout_path: str = "/auth/logout"
    post_logout_redirect_uri: str | None = None
    session_key: str = "beaker.session"
    session_options: Mapping[str, Any] | None = None
    response_mode: str = "form_post"
    prompt: str | None = None
    domain_hint: str | None = None
    login_scopes: tuple[str, ...] = ()
    max_pending_sign_ins: int = 5
    sign_in_timeout: int = 600
    http_timeout: float = 10.0
    allowed_redirect_origins: tuple[str, ...] = ()
    session_lock: Any = field(default=None, compare=False)
    on_event: Callable[[str, Mapping[str, Any]], None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not self.client_id or not str(self.client_id).strip():
            raise ConfigurationError("client_id", "is required: the application (client) ID of your app registration")
        if not self.client_credential:
            raise ConfigurationError(
                "client_credential",
                "is required: a client secret, or a certificate "
                "({'private_key_pfx_path': ...} or {'private_key': ..., 'public_certificate': ...})")
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
        _check_url("redirect_uri", self.redirect_uri, allow_loopback_http=True)
        if not self.redirect_uri:
            raise ConfigurationError("redirect_uri", "is required: the absolute URL of the callback, "
                                     "for example https://app.example/auth/callback")
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
            if not isinstance(getattr(self, name), int) or not 1 <= getattr(self, name) <= 100_000:
                raise ConfigurationError(name, "must be a positive whole number")
        if not isinstance(self.http_timeout, (int, float)) or not 0 < self.http_timeout <= 300:
            raise ConfigurationError("http_timeout", "must be a number of seconds between 0 and 300")
        if not self.session_key:
            raise ConfigurationError("session_key", "must name the environ key of the session")
        if self.session_options is not None:
            check_session_options(self.session_options)
        set_(self, "session_lock", self._lock())
        if self.on_event is not None and not callable(self.on_event):
            raise ConfigurationError("on_event", f"{self.on_event!r} is not callable: give a function(name, data)")
        endpoints = {"login_path": self.login_path, "logout_path": self.logout_path}
        for name, path in endpoints.items():
            if not isinstance(path, str) or not _PREFIX_RE.match(path) or path == "/":
                raise ConfigurationError(name, f"{path!r} must be an app-relative path such as /auth/login")
        if self.login_path == self.logout_path:
            raise ConfigurationError("logout_path", "must differ from login_path")
        set_(self, "protect", self._checked_protect(endpoints))

    def _lock(self) -> SessionLock:
        value = self.session_lock
        options = self.session_options or {}
        if value is None and options.get("type") == "file" and (options.get("lock_dir") or options.get("data_dir")):
            # Beaker file sessions are shared by the processes of one host: lock across them.
            value = "file:" + os.path.join(str(options.get("lock_dir") or options.get("data_dir")), "msal_wsgi")
        try:
            return lock_from_setting(value)
        except (ValueError, OSError, ImportError) as exc:
            raise ConfigurationError("session_lock", str(exc)) from None

    def _origins(self) -> list[str]:
        origins = []
        for origin in self.allowed_redirect_origins:
            _check_url("allowed_redirect_origins", origin, allow_loopback_http=True)
            parts = urlsplit(origin)
            if parts.path not in ("", "/") or parts.query:
                raise ConfigurationError("allowed_redirect_origins", f"{origin!r} must be an origin: scheme://host[:port]")
            origins.append(f"{parts.scheme}://{parts.netloc}".lower())
        return origins

    def _checked_protect(self, endpoints: Mapping[str, str]) -> dict[str, Protect]:
        if not isinstance(self.protect, Mapping):
            raise ConfigurationError("protect", "must map path prefixes to Protect(read=..., write=...)")
        rules: dict[str, Protect] = {}
        for prefix, rule in self.protect.items():
            if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
                raise ConfigurationError("protect", f"{prefix!r} must be a path starting with '/'")
            if (prefix != "/" and prefix.endswith("/")) or "//" in prefix or "/./" in prefix + "/" \
                    or "/../" in prefix + "/" or "%" in prefix:
                raise ConfigurationError(
                    "protect", f"{prefix!r} is malformed: no trailing slash, empty, dot or encoded segments")
            if prefix in rules:
                raise ConfigurationError("protect", f"prefix {prefix!r} is listed twice")
            for name, path in endpoints.items():
                if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                    raise ConfigurationError(
                        "protect", f"{prefix!r} overlaps {name} {path!r}; sign-in endpoints cannot be protected")
            rules[prefix] = _coerce_protect(rule)
        return rules

    @property
    def callback_path(self) -> str:
        """The URL path of ``redirect_uri``, where the provider sends the user back."""
        return urlsplit(self.redirect_uri).path or "/"

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with some fields replaced, validated again."""
        return replace(self, **changes)

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any], *, env: Mapping[str, str] | None = None) -> Settings:
        """Build from an ini/PasteDeploy settings dict; ``env`` (MSAL_* variables) overrides it."""
        values = dict(settings)
        if env is not None:
            values.update(_from_env_vars(env))
        return cls(**{**_REQUIRED, **_coerce(values)})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build from ``MSAL_*`` environment variables; keyword ``overrides`` win."""
        values = _coerce(_from_env_vars(os.environ if env is None else env))
        values.update(overrides)
        return cls(**{**_REQUIRED, **values})


#: Absent required settings reach validation empty, so the error names them (not a TypeError).
_REQUIRED = {"client_id": "", "redirect_uri": ""}

#: Environment variable -> setting name.
ENV_VARS = {
    "MSAL_CLIENT_ID": "client_id",
    "MSAL_CLIENT_SECRET": "client_secret",
    "MSAL_CLIENT_CERTIFICATE": "client_certificate",
    "MSAL_CLIENT_CERTIFICATE_PASSWORD": "client_certificate_password",
    "MSAL_AUTHORITY": "authority",
    "MSAL_OIDC_AUTHORITY": "oidc_authority",
    "MSAL_REDIRECT_URI": "redirect_uri",
    "MSAL_POST_LOGOUT_REDIRECT_URI": "post_logout_redirect_uri",
    "MSAL_PROTECT": "protect",
    "MSAL_PROMPT": "prompt",
    "MSAL_DOMAIN_HINT": "domain_hint",
    "MSAL_RESPONSE_MODE": "response_mode",
    "MSAL_LOGIN_SCOPES": "login_scopes",
    "MSAL_LOGIN_PATH": "login_path",
    "MSAL_LOGOUT_PATH": "logout_path",
    "MSAL_SESSION_KEY": "session_key",
    "MSAL_HTTP_TIMEOUT": "http_timeout",
    "MSAL_MAX_PENDING_SIGN_INS": "max_pending_sign_ins",
    "MSAL_SIGN_IN_TIMEOUT": "sign_in_timeout",
    "MSAL_ALLOWED_REDIRECT_ORIGINS": "allowed_redirect_origins",
    "MSAL_SESSION_LOCK": "session_lock",
}


def _from_env_vars(env: Mapping[str, str]) -> dict[str, str]:
    return {name: env[var] for var, name in ENV_VARS.items() if env.get(var)}


_FIELD_NAMES = {f.name for f in fields(Settings)}
_STRING_ONLY = {"client_secret", "client_certificate", "client_certificate_password"}


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    """Turn ini/env strings into typed fields; unknown keys are errors."""
    out: dict[str, Any] = {}
    session = {k[len("session."):]: v for k, v in values.items() if k.startswith("session.")}
    if session:
        out["session_options"] = session
    secret = values.get("client_secret")
    cert = values.get("client_certificate")
    if secret and cert:
        raise ConfigurationError("client_secret", "set either client_secret or client_certificate, not both")
    if cert:
        out["client_credential"] = _certificate(cert, values.get("client_certificate_password"))
    elif secret:
        out["client_credential"] = secret
    for key, value in values.items():
        if key.startswith("session.") or key in _STRING_ONLY:
            continue
        if key not in _FIELD_NAMES:
            raise ConfigurationError(key, f"is not a msal_wsgi setting; known settings: {sorted(_FIELD_NAMES | _STRING_ONLY)}")
        if isinstance(value, str):
            value = _from_string(key, value)
        out[key] = value
    return out


def _from_string(key: str, value: str) -> Any:
    value = value.strip()
    if key == "on_event":
        return _import_object(key, value) if value else None
    if key == "protect":
        return parse_protect(value)
    if key in ("login_scopes", "allowed_redirect_origins"):
        return tuple(value.replace(",", " ").split())
    if key in ("max_pending_sign_ins", "sign_in_timeout"):
        try:
            return int(value)
        except ValueError:
            raise ConfigurationError(key, f"{value!r} is not a whole number") from None
    if key == "http_timeout":
        try:
            return float(value)
        except ValueError:
            raise ConfigurationError(key, f"{value!r} is not a number of seconds") from None
    return value or None


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


def _import_object(key: str, spec: str) -> Any:
    """``package.module:name`` -> the object, for settings that name a function in an ini file."""
    module, _, name = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split(".") if name else ():
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigurationError(key, f"cannot import {spec!r} (write 'package.module:function'): {exc}") from None
    return obj
