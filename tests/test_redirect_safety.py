"""After sign-in and sign-out the browser only goes to a page of this app (or an allowed origin).

The oracle (:func:`support.urls.stays_home`) resolves a ``Location`` as a browser would.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.apps import complete_sign_in, make_testapp, sign_in, sign_out
from support.urls import stays_home

from msal_wsgi.redirects import origin_of, safe_next, same_origin

ALLOWED = "https://partner.example"


HOSTILE = [
    "//evil.example", "///evil.example", "/\\evil.example", "\\\\evil.example", "/\\/evil.example",
    "/%2F/evil.example", "/%2f%2fevil.example", "/%5Cevil.example", "/%5c/evil.example", "/%09/evil.example",
    "/\t/evil.example", " //evil.example", "\t//evil.example", "/ /evil.example", "%2F%2Fevil.example",
    "https://evil.example", "http://evil.example/", "HTTPS://evil.example", "https:evil.example",
    "https://partner.example.evil.example", "https://partner.example@evil.example", "https://evil.example@partner.example",
    "https://user:pw@partner.example/", "javascript:alert(1)", "data:text/html,x", "//partner.example",
    "/\x00/evil.example", "/\r\nLocation: https://evil.example", "evil.example", "@evil.example", "%00//evil.example",
    "/%E3%80%82evil.example", "/\u3002/evil.example", "\uff0f\uff0fevil.example", "https:/\\evil.example",
    "/%2fevil.example", "https://partner.example\\@evil.example",
]


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_hostile_next_falls_back_to_the_app(value):
    assert safe_next(value, allowed_origins=(ALLOWED,)) == "/"


@pytest.mark.parametrize(("value", "expected"), [
    ("/todos?filter=open", "/todos?filter=open"),
    ("/todos/1#x", "/todos/1#x"),
    ("/todos?q=hello%20world", "/todos?q=hello%20world"),  # the query may encode anything
    ("/todos?q=caf%C3%A9&x=%5C%2F%2F", "/todos?q=caf%C3%A9&x=%5C%2F%2F"),
    ("/todos#%20top", "/todos#%20top"),
    ("https://partner.example/back", "https://partner.example/back"),
    ("https://PARTNER.example/back", "https://PARTNER.example/back"),
    ("HTTPS://PARTNER.EXAMPLE/back", "HTTPS://PARTNER.EXAMPLE/back"),
    ("https://partner.example", "https://partner.example"),
    ("https://partner.example:8443/back", "/"),
    ("https://partner.example:443/back", "https://partner.example:443/back"),  # the same origin (RFC 6454)
    ("http://partner.example/back", "/"),
], ids=repr)
def test_paths_of_the_app_and_allowed_origins_pass(value, expected):
    assert safe_next(value, allowed_origins=(ALLOWED,)) == expected


@pytest.mark.parametrize(("value", "allowed", "expected"), [
    ("https://partner.example:8443/back", "https://partner.example:8443", "https://partner.example:8443/back"),
    ("https://partner.example/back", "https://partner.example:8443", "/"),
    ("http://localhost:8080/x", "http://localhost:8080", "http://localhost:8080/x"),
    ("ftp://partner.example/x", "ftp://partner.example", "/"),  # http(s) only, even if listed
    ("https://user@partner.example/", ALLOWED, "/"),
    ("https://:pw@partner.example/", ALLOWED, "/"),
    ("https://@partner.example/", ALLOWED, "/"),
    ("http://[partner.example/", ALLOWED, "/"),  # urlsplit raises on an unbalanced bracket
    ("https://partner.example]/", ALLOWED, "/"),
], ids=repr)
def test_an_absolute_next_needs_exactly_an_allowed_origin_and_no_userinfo(value, allowed, expected):
    assert safe_next(value, allowed_origins=(allowed,)) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("/!", "/!"), ("/~", "/~"),  # the ends of printable ASCII, 0x21 and 0x7e
    ("/%21", "/%21"), ("/%7E", "/%7E"), ("/a%2Fb", "/a%2Fb"),
    ("/ ", "/"), ("/\x7f", "/"), ("/\x1f", "/"),  # space, DEL, a control character
    ("/%20", "/"), ("/%7F", "/"), ("/%1F", "/"), ("/%00", "/"),
    ("/%5C", "/"), ("/%5c", "/"),  # an encoded backslash
    ("/caf\u00e9", "/"), ("/caf%C3%A9", "/"),  # non-ASCII, as it is or encoded
], ids=repr)
def test_a_next_must_be_printable_ascii_even_after_percent_decoding(value, expected):
    assert safe_next(value) == expected


@pytest.mark.parametrize("value", ["todos", "./todos", "../todos", "?x=1", "#top"], ids=repr)
def test_a_relative_reference_goes_home(value):
    assert safe_next(value, allowed_origins=(ALLOWED,)) == "/"


@pytest.mark.parametrize(("value", "script_name", "expected"), [
    (None, "", "/"), ("", "", "/"), (None, "/app", "/app/"), ("", "/app", "/app/"),
], ids=repr)
def test_a_missing_next_goes_home(value, script_name, expected):
    assert safe_next(value, script_name=script_name) == expected


@pytest.mark.parametrize(("length", "kept"), [(2048, True), (2049, False)],
                         ids=["exactly MAX_NEXT_LENGTH", "one more"])
def test_a_next_longer_than_2048_characters_goes_home(length, kept):  # the bound SECURITY.md states
    value = "/" + "a" * (length - 1)
    assert safe_next(value) == (value if kept else "/")


@pytest.mark.parametrize(("value", "expected"), [
    ("/app/todos", "/app/todos"), ("/app", "/app"), ("/app/", "/app/"), ("/app?x=1", "/app?x=1"),
    ("/other", "/app/"), ("/application", "/app/"), ("/ap", "/app/"), ("//app/x", "/app/"), ("/", "/app/"),
    ("https://partner.example/x", "https://partner.example/x"),
], ids=repr)
def test_mounted_app_only_redirects_under_its_mount_point(value, expected):
    value = "".join(list(value))  # a copy: a value from the query string is never the object SCRIPT_NAME is
    assert safe_next(value, script_name="/app", allowed_origins=(ALLOWED,)) == expected


@pytest.mark.parametrize(("url", "origin"), [
    ("https://app.example/auth/callback", "https://app.example"),
    ("https://app.example:8443/auth/callback?x=1#top", "https://app.example:8443"),
    ("http://localhost:8080", "http://localhost:8080"),
    # as browsers serialize it (RFC 6454 §6.1): lower case, no default port, no userinfo
    ("https://App.Example/path?q=1", "https://app.example"),
    ("https://app.example:443/", "https://app.example"),
    ("http://app.example:80", "http://app.example"),
    ("http://app.example:443", "http://app.example:443"),
    ("https://[::1]:443/", "https://[::1]"),
    ("https://user:pw@app.example/", "https://app.example"),
    ("https://app.example:442/", "https://app.example:442"), ("https://app.example:444/", "https://app.example:444"),
    ("null", ""), ("https://app.example:99999/", ""), ("https://[::1/", ""),  # no origin
    ("//app.example/x", ""), ("https:///x", ""),  # no scheme, no host
], ids=repr)
def test_the_origin_of_a_url_is_its_scheme_host_and_port(url, origin):
    assert origin_of(url) == origin


@pytest.mark.parametrize(("url", "origins", "same"), [
    ("https://app.example", ("https://other.example", "https://APP.example:443/auth/callback"), True),
    ("https://app.example", ("https://other.example", "http://app.example"), False),
    ("https://app.example", (), False),
    ("null", ("null",), False),  # an opaque origin is no one's
    ("", ("",), False),
], ids=repr)
def test_same_origin_compares_serialized_origins(url, origins, same):
    assert same_origin(url, *origins) is same


def test_the_options_are_keyword_only():
    with pytest.raises(TypeError):
        safe_next("/app/x", "/app")  # type: ignore[misc]


SEPARATORS = st.sampled_from(["/", "\\", "%2F", "%2f", "%5C", "%5c", "%09", "\t", "\n", " ", "%20", "@", ":",
                              "%00", "\x00", "\x7f", ".", "..", "%2E", "?", "#", "//", "%252F", "\u3002", "\uff0f"])
NEXT_VALUES = st.one_of(
    st.text(max_size=60),
    st.lists(st.one_of(SEPARATORS, st.sampled_from(["evil.example", "partner.example", "https:", "http:", "todos"]),
                       st.text(max_size=4)), max_size=10).map("".join),
)


@settings(max_examples=500, deadline=None)
@given(NEXT_VALUES)
def test_no_generated_next_leaves_the_origin(value):
    assert stays_home(safe_next(value, allowed_origins=(ALLOWED,)), (ALLOWED,))
    assert stays_home(safe_next(value, script_name="/app"))
    assert safe_next(value, script_name="/app").startswith("/app")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=NEXT_VALUES)
def test_sign_in_with_any_next_comes_back_to_the_app(provider, value):
    app = make_testapp(provider, allowed_redirect_origins=(ALLOWED,))
    start = app.get("/auth/login", {"next": value}, status="*")
    back = complete_sign_in(app, provider, start)
    assert back.status_int == 302
    assert stays_home(back.location, (ALLOWED,)), back.location


@pytest.mark.parametrize("path", ["//evil.example/../todos", "/\\evil.example/../todos"])
def test_a_protected_path_that_looks_like_another_host_does_not_become_the_next_page(provider, path):
    app = make_testapp(provider)
    start = app.get("/", extra_environ={"PATH_INFO": path}, status="*")  # a raw request line, not a URL
    back = complete_sign_in(app, provider, start)
    assert stays_home(back.location), back.location


def test_a_protected_page_with_an_encoded_query_is_where_the_sign_in_comes_back_to(provider):
    app = make_testapp(provider)
    start = app.get("/todos?q=hello%20world&tag=caf%C3%A9", status=302)
    back = complete_sign_in(app, provider, start)
    assert back.location.endswith("/todos?q=hello%20world&tag=caf%C3%A9"), back.location


def test_sign_out_goes_to_the_provider_then_to_the_configured_page(provider):
    app = make_testapp(provider)
    sign_in(app, provider)
    out = sign_out(app, "//evil.example")
    assert out.location.startswith(provider.issuer + "/session/end")
    assert "evil" not in out.location
    assert provider.end_session(out.location) == "http://localhost/"


def test_the_retry_link_of_an_error_page_stays_home(provider):
    app = make_testapp(provider, oidc_authority="https://127.0.0.1:9/op")  # nothing listens on port 9
    page = app.get("/", extra_environ={"PATH_INFO": "//evil.example/../todos"}, status=503)
    assert 'href="//' not in page.text and "evil" not in page.text.split("<a", 1)[1]

