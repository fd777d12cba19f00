"""Reading URLs: their query parameters, and where a browser goes for a ``Location``.

The latter is the oracle of the redirect-safety tests. A browser's URL parser
(WHATWG) removes tabs and newlines, strips leading C0 controls and spaces, and
reads backslashes as slashes in http(s) URLs; the result is then resolved
against the page's URL.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urljoin, urlsplit

APP = "http://localhost"


def browser_resolves(location: str, base: str = APP + "/") -> str:
    """Where a browser goes for this Location (WHATWG parsing, close enough for origins)."""
    cleaned = "".join(c for c in location if c not in "\t\n\r").strip("".join(map(chr, range(0x21))))
    return urljoin(base, cleaned.replace("\\", "/"))


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or {'http': 80, 'https': 443}.get(parts.scheme)}"


def stays_home(location: str, allowed: tuple[str, ...] = ()) -> bool:
    target = origin(browser_resolves(location))
    return target == origin(APP) or target in {origin(a) for a in allowed}


def query_of(url: str) -> dict[str, str]:
    """The query parameters of ``url``, decoded; a parameter given twice fails the test."""
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    params = dict(pairs)
    assert len(params) == len(pairs), f"a repeated parameter in {url}"
    return params
