"""Where a user may be sent after signing in or out: this app, or an allowed origin.

Open redirects are the classic hole in sign-in middleware (``//evil``, ``/\\evil``,
``/%09/evil``, ``https://app.example.evil``...). The rule here is an allow-list,
not a deny-list: a relative path that starts with the app's mount point and
contains only printable, non-space ASCII without backslashes and without an
empty first segment, even after percent-decoding; or an absolute URL whose
origin is exactly one of ``allowed_origins``.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

#: Longest ``next`` value accepted.
MAX_NEXT_LENGTH = 2048


def _plain(value: str) -> bool:
    return all("\x21" <= c <= "\x7e" for c in value) and "\\" not in value


def safe_next(value: str | None, *, script_name: str = "", allowed_origins: tuple[str, ...] = ()) -> str:
    """``value`` if it is safe to redirect to after sign-in, else the app's root."""
    home = (script_name or "") + "/"
    if not value or len(value) > MAX_NEXT_LENGTH or not _plain(value):
        return home
    decoded = unquote(value)
    if not _plain(decoded):
        return home
    if value.startswith("/"):
        if value.startswith("//") or decoded.startswith("//"):
            return home
        if script_name and not (value == script_name or value.startswith((script_name + "/", script_name + "?"))):
            return home
        return value
    try:
        parts = urlsplit(value)
    except ValueError:  # an unbalanced "[" or "]" of an IPv6 host
        return home
    if (parts.scheme in ("http", "https") and parts.hostname and parts.username is None and parts.password is None
            and f"{parts.scheme}://{parts.netloc}".lower() in allowed_origins):
        return value
    return home


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an absolute URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
