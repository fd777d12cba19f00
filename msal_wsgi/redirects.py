"""Where a user may be sent after signing in or out: this app, or an allowed origin.

Open redirects are the classic hole in sign-in middleware (``//evil``, ``/\\evil``,
``/%09/evil``, ``https://app.example.evil``...). The rule here is an allow-list,
not a deny-list: a relative path that starts with the app's mount point and
contains only printable, non-space ASCII without backslashes and without an
empty first segment, its path part even after percent-decoding (the query may
encode anything: it cannot name another host); or an absolute URL whose origin
is exactly one of ``allowed_origins``.
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
    decoded = unquote(value.split("?", 1)[0].split("#", 1)[0])  # the path part: where "//host" tricks live
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
            and origin_of(value) in allowed_origins):
        return value
    return home


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """The origin of an absolute URL as a browser serializes it (RFC 6454 §6.1): ``scheme://host[:port]``,
    lower case, without user info, the port only when it is not the scheme's default. ``""`` when ``url``
    has no host (an ``Origin: null``, for one) or cannot be parsed."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:  # a bad port, an unbalanced "[" of an IPv6 host
        return ""
    scheme = parts.scheme.lower()
    if not scheme or not host:
        return ""
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{scheme}://{host}:{port}"


def same_origin(url: str, *origins: str) -> bool:
    """Whether ``url`` (an ``Origin`` header, a URL) has one of the origins of ``origins`` (URLs too)."""
    mine = origin_of(url)
    return bool(mine) and any(mine == origin_of(other) for other in origins)
