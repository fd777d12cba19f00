"""MSAL_* environment variables for the local provider, as a user would export them."""

from __future__ import annotations

from devprovider import DevProvider

from .apps import REDIRECT_URI, SECRETS, TODO_READ, TODO_WRITE

PROTECT = f"/todos = {TODO_READ} | {TODO_WRITE}"


def msal_env(provider: DevProvider, client_id: str = "todo-web", **more: str) -> dict[str, str]:
    """The variables ``Settings.from_env()`` reads, for ``client_id`` at ``provider``."""
    return {
        "MSAL_CLIENT_ID": client_id,
        "MSAL_CLIENT_SECRET": SECRETS[client_id],
        "MSAL_OIDC_AUTHORITY": provider.issuer,
        "MSAL_REDIRECT_URI": REDIRECT_URI,
        "MSAL_PROTECT": PROTECT,
        **more,
    }
