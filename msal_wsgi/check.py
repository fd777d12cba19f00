"""``python -m msal_wsgi check``: validate a configuration and reach its authority before deploying.

Reads the ``MSAL_*`` environment variables, or an ini file's msal_wsgi filter section
(``--ini app.ini`` or ``--ini app.ini#msal``) with the variables overriding it, exactly
as the PasteDeploy factory does, or the app configured in Python (``check myapp:app``,
which is imported). It checks that server-side sessions are in front of msal_wsgi
(the ini's pipeline, or the SessionMiddleware around it), loads the authority's
OpenID configuration (its issuer must be the configured one), asks the authorize
endpoint whether it knows the redirect URI, and has the token endpoint
authenticate the client. Prints a summary and exits 0, or says what is wrong,
naming the setting, and exits 1.
"""

from __future__ import annotations

import argparse
import configparser
import importlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from ._msal import IdentityClient
from .crypto import make_key
from .errors import ConfigurationError, ProviderUnavailable
from .settings import ENV_VARS, Settings

_ENTRY_POINTS = ("egg:msal_wsgi", "egg:msal_wsgi#main", "call:msal_wsgi.paste:filter_factory",
                 "call:msal_wsgi.paste:filter_app_factory", "call:msal_wsgi:filter_factory",
                 "call:msal_wsgi:filter_app_factory")


class CheckFailed(Exception):
    """A problem to report to the user, in plain words."""


def main(argv: list[str] | None = None, *, env: Mapping[str, str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m msal_wsgi", description="msal_wsgi tools")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate a configuration and reach its authority",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("--ini", metavar="PATH[#SECTION]", help="read the msal_wsgi filter section of an ini file")
    check.add_argument("app", nargs="?", metavar="MODULE:APP",
                       help="the WSGI application, configured in Python: msal_wsgi and its sessions are found in it")
    commands.add_parser("make-key", help="print a new session key for session_keys (MSAL_SESSION_KEYS)",
                        description="Print 32 random bytes as base64url: a key for session_keys. Put the new key "
                                    "first to rotate; keep the old one after it until max_session_lifetime has passed.")
    args = parser.parse_args(argv)
    if args.command == "make-key":
        print(make_key(), file=out)
        return 0
    env = os.environ if env is None else env
    try:
        if args.app is not None:
            settings, source = from_python(args.app)
        else:
            settings, source = load(args.ini, env)
            if args.ini is not None:
                ini_sessions(Path(args.ini.partition("#")[0]), settings)
        report = verify(settings)
    except (ConfigurationError, ProviderUnavailable, CheckFailed) as exc:
        print(f"msal_wsgi check FAILED\n  {exc}", file=out)
        return 1
    print(f"msal_wsgi check OK ({source})\n" + report, file=out)
    if settings.unencrypted_deployment:
        print("WARNING: sessions are stored unencrypted, refresh tokens included; set session_keys "
              "(MSAL_SESSION_KEYS) to a key from 'python -m msal_wsgi make-key'", file=out)
    return 0


def load(ini: str | None, env: Mapping[str, str]) -> tuple[Settings, str]:
    """The settings to check, and where they came from."""
    if ini is None:
        if not any(env.get(name) for name in ENV_VARS):
            raise CheckFailed("no MSAL_* environment variables are set; export them "
                              "(MSAL_CLIENT_ID, MSAL_CLIENT_SECRET, ...) or pass --ini FILE")
        return Settings.from_env(env), "MSAL_* environment variables"
    path, _, name = ini.partition("#")
    section, values = ini_section(Path(path), name or None)
    return Settings.from_mapping(values, env=env), f"{path} [{section}], MSAL_* variables override it"


def _ini_parser(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(defaults={"here": str(path.resolve().parent), "__file__": str(path.resolve())})
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep keys' case, as PasteDeploy does
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, configparser.Error) as exc:
        raise CheckFailed(f"cannot read {path}: {exc}") from None
    return parser


def ini_section(path: Path, name: str | None) -> tuple[str, dict[str, str]]:
    """The keys of the msal_wsgi section of a PasteDeploy ini file (``[DEFAULT]`` and ``use`` left out)."""
    parser = _ini_parser(path)
    if name is not None:
        candidates = [s for s in (f"filter:{name}", name) if parser.has_section(s)]
        if not candidates:
            raise CheckFailed(f"{path} has no section [filter:{name}] or [{name}]")
    else:
        candidates = [s for s in parser.sections() if parser.get(s, "use", raw=True, fallback="") in _ENTRY_POINTS]
        if len(candidates) != 1:
            found = ", ".join(f"[{s}]" for s in candidates) or "none"
            raise CheckFailed(f"{path}: expected one section with 'use = egg:msal_wsgi' (found {found}); "
                              f"name it: --ini {path}#NAME")
    section = candidates[0]
    defaults = parser.defaults()
    try:
        values = {key: parser.get(section, key) for key in parser[section] if key not in defaults and key != "use"}
    except configparser.Error as exc:
        raise CheckFailed(f"{path} [{section}]: {exc}") from None
    return section, values


_BEAKER_FILTERS = ("egg:Beaker#beaker_session", "egg:beaker#beaker_session", "call:beaker.middleware:session_filter_factory",
                   "egg:Beaker", "egg:beaker")


def ini_sessions(path: Path, settings: Settings) -> None:
    """The ini's pipeline puts server-side sessions in front of msal_wsgi, or msal_wsgi installs them itself."""
    if settings.session_options is not None:
        return  # session.* keys in msal_wsgi's own section: validated with the settings
    parser = _ini_parser(path)
    for section in parser.sections():
        if not section.startswith("pipeline:"):
            continue
        names = parser.get(section, "pipeline", fallback="").split()
        msal = [i for i, name in enumerate(names)
                if parser.get(f"filter:{name}", "use", raw=True, fallback="") in _ENTRY_POINTS]
        if not msal:
            continue
        before = names[:msal[0]]
        sessions = [name for name in before
                    if parser.get(f"filter:{name}", "use", raw=True, fallback="") in _BEAKER_FILTERS]
        if not sessions:
            raise CheckFailed(f"{path} [{section}]: no session filter before msal_wsgi ({' '.join(names)}); put a "
                              "Beaker filter (use = egg:Beaker#beaker_session) first, or session.* keys in "
                              "msal_wsgi's section")
        kind = parser.get(f"filter:{sessions[-1]}", "session.type", fallback="memory")
        if kind == "cookie":
            raise CheckFailed(f"{path} [filter:{sessions[-1]}]: session.type = cookie cannot hold a token cache; "
                              "use file, ext:redis or ext:database")
        return


def from_python(spec: str) -> tuple[Settings, str]:
    """The settings of the MsalMiddleware inside the WSGI app ``module:name``; its sessions are checked too."""
    from beaker.middleware import SessionMiddleware

    from .middleware import MsalMiddleware

    module, _, name = spec.partition(":")
    try:
        sys.path.insert(0, os.getcwd())
        obj: Any = importlib.import_module(module)
        for part in (name or "application").split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # noqa: BLE001 - an import runs the user's code: report whatever it raised
        raise CheckFailed(f"cannot load {spec!r} (write module:variable, e.g. myapp:app): "
                          f"{type(exc).__name__}: {exc}") from None
    sessions = None
    for _ in range(32):  # middleware wrapping middleware: follow the usual attributes inwards
        if isinstance(obj, MsalMiddleware):
            break
        if isinstance(obj, SessionMiddleware):
            sessions = obj
        obj = next((getattr(obj, a) for a in ("wsgi_app", "app", "wrap_app", "application", "_app")
                    if getattr(obj, a, None) is not None), None)
    if not isinstance(obj, MsalMiddleware):
        raise CheckFailed(f"{spec} holds no MsalMiddleware (looked through wsgi_app, app, wrap_app, application)")
    settings = obj.settings
    if settings.session_options is None:
        if sessions is None:
            raise CheckFailed(f"{spec}: no Beaker SessionMiddleware around msal_wsgi; wrap it, e.g. "
                              "SessionMiddleware(app, {'session.type': 'file', ...}), or set session_options")
        if str(sessions.options.get("type", "memory")) == "cookie":
            raise CheckFailed(f"{spec}: the SessionMiddleware around msal_wsgi stores sessions in cookies, which "
                              "cannot hold a token cache; use session.type file, ext:redis or ext:database")
    return settings, f"the MsalMiddleware in {spec}"


def probe_redirect_uri(settings: Settings, discovery: Mapping[str, Any]) -> None:
    """Ask the authorize endpoint whether it knows ``redirect_uri``, where the provider tells.

    A provider checks the redirect URI before anything else and shows an error page, rather than
    redirecting, when it is not registered (oidc-provider: ``invalid_redirect_uri``; Entra ID: AADSTS50011).
    """
    import requests

    endpoint = discovery.get("authorization_endpoint")
    if not isinstance(endpoint, str):
        return
    params = {"client_id": settings.client_id, "redirect_uri": settings.redirect_uri, "response_type": "code",
              "scope": "openid", "state": "msal-wsgi-check", "nonce": "msal-wsgi-check",
              "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256",
              "response_mode": settings.response_mode}
    try:
        http = settings.http_session if settings.http_session is not None else requests.Session()
        answer = http.get(endpoint, params=params, allow_redirects=False, timeout=settings.http_timeout)
    except requests.RequestException as exc:
        raise CheckFailed(f"the authorize endpoint {endpoint} cannot be reached: {type(exc).__name__}") from None
    text = answer.text[:20000].lower()
    if answer.is_redirect or (answer.status_code < 400 and "aadsts50011" not in text):
        return
    if "redirect_uri" in text or "redirect uri" in text or "aadsts50011" in text:
        raise CheckFailed(f"msal_wsgi setting 'redirect_uri': the provider refuses {settings.redirect_uri!r} "
                          f"for client {settings.client_id!r} (HTTP {answer.status_code}); register it with the "
                          "app, exactly as written")


def verify(settings: Settings) -> str:
    """Reach the authority and authenticate the client; the summary, or :class:`CheckFailed`."""
    setting = "authority" if settings.authority else "oidc_authority"
    url = settings.authority or settings.oidc_authority
    client = IdentityClient(settings)
    try:
        discovery = client.check()
    except ProviderUnavailable as exc:
        raise CheckFailed(f"msal_wsgi setting {setting!r}: {url} cannot be used: {exc}") from None
    modes = discovery.get("response_modes_supported")
    if modes and settings.response_mode not in modes:
        raise CheckFailed(f"msal_wsgi setting 'response_mode': the provider supports {modes}, "
                          f"not {settings.response_mode!r}")
    if settings.redirect_uri:  # an API-only app signs no one in
        probe_redirect_uri(settings, discovery)
    problem = client.credential_problem() if client.can_act_on_behalf else None  # an API-only app may have none
    if problem:
        secret = "client_credential (MSAL_CLIENT_SECRET or MSAL_CLIENT_CERTIFICATE)"
        raise CheckFailed(f"msal_wsgi setting 'client_id' or {secret}: the token endpoint rejected "
                          f"client {settings.client_id!r}: {problem}")
    return summary(settings, discovery)


def _span(seconds: int) -> str:
    return "unlimited" if not seconds else f"{seconds // 3600} h" if seconds % 3600 == 0 else f"{seconds} s"


def summary(settings: Settings, discovery: Mapping[str, object]) -> str:
    rows = [
        ("client_id", settings.client_id),
        ("issuer", discovery.get("issuer")),
        ("authorize", discovery.get("authorization_endpoint")),
        ("token", discovery.get("token_endpoint")),
        ("sign-out", discovery.get("end_session_endpoint") or "none: sign-out clears the local session only"),
        ("redirect_uri", settings.redirect_uri or "none: an API-only app, no one signs in here"),
        ("sign-in at", f"{settings.login_path}, sign-out at {settings.logout_path}" if settings.redirect_uri
         else "none"),
        ("api_audience", " ".join(settings.api_audience) or "none (no API prefixes)"),
        ("sessions", "Beaker, installed by msal_wsgi (session.* settings)" if settings.session_options is not None
         else "none needed: an API-only app" if not settings.redirect_uri
         else f"expected at environ[{settings.session_key!r}] (wrap the app in session middleware)"),
    ]
    if settings.redirect_uri:
        keys = len(settings.session_keys)
        rows += [
            ("at rest", f"sealed with AES-256-GCM ({keys} key{'s' if keys > 1 else ''}; the first seals)" if keys
             else "NOT encrypted (set session_keys)"),
            ("lifetimes", (f"idle {_span(settings.idle_timeout)}, at most {_span(settings.max_session_lifetime)}; "
                          f"accounts re-checked every {_span(settings.account_recheck_interval)}")),
            ("logout", (f"back-channel {settings.backchannel_logout_path}, front-channel "
                       f"{settings.frontchannel_logout_path}")),
        ]
    lines = [f"  {label + ':':<14}{value}" for label, value in rows]
    lines.append("  protected:" + ("" if settings.protect else "    nothing (set 'protect')"))
    for prefix, rule in settings.protect.items():
        lines.append(f"    {prefix}  {rule.describe()}")
    return "\n".join(lines)
