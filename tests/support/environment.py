"""Settings as strings, as a user writes them: an ini section, or MSAL_* environment variables.

One builder serves both spellings, and the sample app's environment adds its own
variables to the MSAL_* ones.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from devprovider import DevProvider

from .apps import REDIRECT_URI, SECRETS, TODO_READ, TODO_WRITE

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PROTECT = f"/todos = {TODO_READ} | {TODO_WRITE}"


def ini_settings(issuer: str, client_id: str = "todo-web", *, redirect_uri: str = REDIRECT_URI,
                 protect: str | None = PROTECT, **more: str) -> dict[str, str]:
    """An ini section's settings for ``client_id`` at ``issuer`` (its secret, if it has one); ``None`` leaves one out."""
    values = {"client_id": client_id, "client_secret": SECRETS.get(client_id), "oidc_authority": issuer,
              "redirect_uri": redirect_uri, "protect": protect, **more}
    return {name: value for name, value in values.items() if value is not None}


def msal_env(issuer: str, client_id: str = "todo-web", *, redirect_uri: str = REDIRECT_URI,
             protect: str | None = PROTECT, **more: str) -> dict[str, str]:
    """The variables ``Settings.from_env()`` reads, for ``client_id`` at ``issuer``; ``more`` adds any variable."""
    settings = ini_settings(issuer, client_id, redirect_uri=redirect_uri, protect=protect)
    return {**{"MSAL_" + name.upper(): value for name, value in settings.items()}, **more}


def sample_env(provider: DevProvider, public_url: str, data_dir: Path, *, client_id: str = "todo-web",
               **more: str) -> dict[str, str]:
    """The environment ``sample_app`` needs to run against ``provider`` at ``public_url``.

    Its protected paths are the sample's own default. ``more`` adds or overrides
    variables, e.g. ``SAMPLE_SESSION_URL=redis.url``.
    """
    stock = {"MSAL_PROMPT": "consent"} if provider.mode == "stock" else {}  # its refresh tokens need it
    return msal_env(provider.issuer, client_id, redirect_uri=public_url + "/auth/callback", protect=None,
                    REQUESTS_CA_BUNDLE=str(provider.ca_path), SAMPLE_BIND=f"127.0.0.1:{urlsplit(public_url).port}",
                    **{"SAMPLE_DATA_DIR": str(data_dir), **stock, **more})
