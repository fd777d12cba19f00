"""``python -m msal_wsgi check``: validate a configuration and reach its authority before deploying.

Reads the ``MSAL_*`` environment variables, or an ini file's msal_wsgi filter section
(``--ini app.ini`` or ``--ini app.ini#msal``) with the variables overriding it, exactly
as the PasteDeploy factory does. Then it loads the authority's OpenID configuration
and has the token endpoint authenticate the client. Prints a summary and exits 0,
or says what is wrong, naming the setting, and exits 1.
"""

from __future__ import annotations

import argparse
import configparser
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from ._msal import IdentityClient
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
    args = parser.parse_args(argv)
    env = os.environ if env is None else env
    try:
        settings, source = load(args.ini, env)
        report = verify(settings)
    except (ConfigurationError, ProviderUnavailable, CheckFailed) as exc:
        print(f"msal_wsgi check FAILED\n  {exc}", file=out)
        return 1
    print(f"msal_wsgi check OK ({source})\n" + report, file=out)
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


def ini_section(path: Path, name: str | None) -> tuple[str, dict[str, str]]:
    """The keys of the msal_wsgi section of a PasteDeploy ini file (``[DEFAULT]`` and ``use`` left out)."""
    parser = configparser.ConfigParser(defaults={"here": str(path.resolve().parent), "__file__": str(path.resolve())})
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep keys' case, as PasteDeploy does
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, configparser.Error) as exc:
        raise CheckFailed(f"cannot read {path}: {exc}") from None
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
    problem = client.credential_problem() if client.can_act_on_behalf else None  # an API-only app may have none
    if problem:
        secret = "client_credential (MSAL_CLIENT_SECRET or MSAL_CLIENT_CERTIFICATE)"
        raise CheckFailed(f"msal_wsgi setting 'client_id' or {secret}: the token endpoint rejected "
                          f"client {settings.client_id!r}: {problem}")
    return summary(settings, discovery)


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
    lines = [f"  {label + ':':<14}{value}" for label, value in rows]
    lines.append("  protected:" + ("" if settings.protect else "    nothing (set 'protect')"))
    for prefix, rule in settings.protect.items():
        lines.append(f"    {prefix}  {rule.describe()}")
    return "\n".join(lines)
