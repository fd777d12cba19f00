"""The misbehaving provider itself: correct by default, and each knob produces exactly its defect."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import quote_plus, urlencode

import jwt
import pytest
import requests
from bs4 import BeautifulSoup
from cryptography.hazmat.primitives import serialization
from support.misbehaving import UNKNOWN_KID, IdTokenDefects, MisbehavingProvider, beside

from devprovider import DevProvider, DevProviderError, SignInResult

REDIRECT_URI = "http://localhost/auth/callback"
NONCE = "n-0S6_WzA2Mj"
#: RFC 7636 appendix B: a verifier and its S256 challenge.
VERIFIER, CHALLENGE = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
PAST = int(time.time()) - 3600


def authorize_url(rogue: MisbehavingProvider, **params: str) -> str:
    query = {"client_id": rogue.client_id, "response_type": "code", "redirect_uri": REDIRECT_URI,
             "scope": "openid profile offline_access", "state": "st-1", "nonce": NONCE,
             "code_challenge": CHALLENGE, "code_challenge_method": "S256", **params}
    return f"{rogue.issuer}/authorize?{urlencode(query)}"


def authorize(rogue: MisbehavingProvider) -> SignInResult:
    return rogue.sign_in(authorize_url(rogue))


def redeem(rogue: MisbehavingProvider, code: str, *, verifier: str = VERIFIER, redirect_uri: str = REDIRECT_URI,
           basic: bool = False) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier}
    if basic:  # RFC 6749 §2.3.1 (nothing to form-urlencode in these credentials)
        credentials = base64.b64encode(f"{rogue.client_id}:{rogue.client_secret}".encode()).decode()
        return requests.post(f"{rogue.issuer}/token", data=data, headers={"Authorization": f"Basic {credentials}"})
    return requests.post(f"{rogue.issuer}/token",
                         data={**data, "client_id": rogue.client_id, "client_secret": rogue.client_secret})


def tokens(rogue: MisbehavingProvider, **knobs: Any) -> dict[str, Any]:
    rogue.configure(**knobs)
    response = redeem(rogue, authorize(rogue).params["code"])
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def claims(token: str) -> dict[str, Any]:
    found: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return found


def kids_that_verify(rogue: MisbehavingProvider, token: str) -> list[str | None]:
    """The kids of the served JWKS keys under which the token's signature holds."""
    jwks = jwt.PyJWKSet.from_dict(requests.get(f"{rogue.issuer}/jwks").json())
    found = []
    for key in jwks.keys:
        try:
            jwt.PyJWS().decode(token, key.key, algorithms=[key.algorithm_name])
            found.append(key.key_id)
        except jwt.InvalidTokenError:
            pass
    return found


def test_discovery_announces_the_endpoints_and_capabilities(rogue: MisbehavingProvider) -> None:
    document = requests.get(f"{rogue.issuer}/.well-known/openid-configuration").json()
    assert rogue.issuer.startswith("https://127.0.0.1:") and rogue.issuer.endswith("/rogue")
    assert document["issuer"] == rogue.issuer
    assert {document[name] for name in ("authorization_endpoint", "token_endpoint", "jwks_uri",
                                        "end_session_endpoint")} == {
        rogue.issuer + path for path in ("/authorize", "/token", "/jwks", "/logout")}
    assert document["response_modes_supported"] == ["query", "form_post"]
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert document["token_endpoint_auth_methods_supported"] == ["client_secret_post", "client_secret_basic"]
    assert document["code_challenge_methods_supported"] == ["S256"]


def test_discovery_overrides_replace_add_and_remove_fields(rogue: MisbehavingProvider) -> None:
    other = rogue.issuer.replace("/rogue", "/other")
    rogue.configure(discovery_overrides={"issuer": other, "authorization_response_iss_parameter_supported": True,
                                         "scopes_supported": None})
    document = requests.get(f"{rogue.issuer}/.well-known/openid-configuration").json()
    assert document["issuer"] == other and document["authorization_response_iss_parameter_supported"] is True
    assert "scopes_supported" not in document


def test_code_flow_with_pkce_yields_tokens_that_verify(rogue: MisbehavingProvider) -> None:
    result = authorize(rogue)
    assert result.url.startswith(REDIRECT_URI + "?") and result.form is None
    assert set(result.params) == {"code", "state"} and result.params["state"] == "st-1"
    answer = redeem(rogue, result.params["code"]).json()
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 3600 and answer["refresh_token"]
    assert answer["scope"] == "openid profile offline_access"
    jwks = jwt.PyJWKSet.from_dict(requests.get(f"{rogue.issuer}/jwks").json())
    key = jwks[jwt.get_unverified_header(answer["id_token"])["kid"]]
    id_token = jwt.decode(answer["id_token"], key.key, algorithms=["RS256"], audience=rogue.client_id,
                          issuer=rogue.issuer, options={"require": ["exp", "iat", "sub", "nonce"]})
    assert id_token["sub"] == "rogue-user" and id_token["nonce"] == NONCE and id_token["name"] == "Rogue User"
    assert id_token["exp"] - id_token["iat"] == 3600 and abs(id_token["iat"] - time.time()) < 60
    access = jwt.decode(answer["access_token"], key.key, algorithms=["RS256"], audience="api://rogue")
    assert access["scp"] == answer["scope"] and access["sub"] == "rogue-user"
    assert rogue.token_requests == [{"grant_type": "authorization_code", "auth_method": "client_secret_post",
                                     "status": 200}]


@pytest.mark.parametrize("on_refresh", [True, False], ids=["with-id-token", "without-id-token"])
def test_refresh_token_grant_answers_new_tokens(rogue: MisbehavingProvider, on_refresh: bool) -> None:
    first = tokens(rogue, id_token_on_refresh=on_refresh)
    answer = requests.post(f"{rogue.issuer}/token", data={
        "grant_type": "refresh_token", "refresh_token": first["refresh_token"], "scope": "api://rogue/read",
        "client_id": rogue.client_id, "client_secret": rogue.client_secret}).json()
    assert claims(answer["access_token"])["scp"] == "api://rogue/read"
    assert ("id_token" in answer) is on_refresh
    if on_refresh:
        assert "nonce" not in claims(answer["id_token"]) and claims(answer["id_token"])["sub"] == "rogue-user"


@pytest.mark.parametrize("overrides", [
    {"iat": None}, {"sub": None}, {"aud": "someone-else"}, {"aud": ["rp-client", "other"], "azp": "other"},
    {"iss": "https://evil.example/rogue"}, {"exp": PAST}, {"nonce": "wrong"},
], ids=["iat-absent", "sub-absent", "aud-other", "aud-several-azp-other", "iss-evil", "expired", "nonce-wrong"])
def test_claims_overrides_change_only_their_claims(rogue: MisbehavingProvider, overrides: dict[str, Any]) -> None:
    token = tokens(rogue, id_token=IdTokenDefects(claims_overrides=overrides))["id_token"]
    found = claims(token)
    names = {"iss", "sub", "aud", "exp", "iat", "nonce", "name", "preferred_username"} | set(overrides)
    assert set(found) == names - {name for name, value in overrides.items() if value is None}
    correct = {"iss": rogue.issuer, "sub": "rogue-user", "aud": rogue.client_id, "nonce": NONCE}
    for name, value in {**correct, **overrides}.items():
        assert found.get(name) == value, name
    assert kids_that_verify(rogue, token) == [jwt.get_unverified_header(token)["kid"]]


def test_alg_none_token_is_unsigned(rogue: MisbehavingProvider) -> None:
    token = tokens(rogue, id_token=IdTokenDefects(alg="none"))["id_token"]
    assert jwt.get_unverified_header(token) == {"alg": "none"} and token.endswith(".")
    assert claims(token)["sub"] == "rogue-user" and kids_that_verify(rogue, token) == []


def test_hs256_token_is_keyed_with_the_public_key_pem(rogue: MisbehavingProvider) -> None:
    token = tokens(rogue, id_token=IdTokenDefects(alg="HS256-with-public-key"))["id_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256" and header["kid"] == rogue.public_jwks()["keys"][0]["kid"]
    # What an attacker reads off the JWKS, and what a confused verifier would use as the HMAC secret.
    public = jwt.PyJWK(rogue.public_jwks()["keys"][0]).key
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input, _, signature = token.rpartition(".")
    expected = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) == expected


@pytest.mark.parametrize(("defects", "kid", "verified_by_current"), [
    (IdTokenDefects(sign_with="foreign"), "foreign-rs256", False),
    (IdTokenDefects(kid=None), None, True),
    (IdTokenDefects(kid="unknown"), UNKNOWN_KID, True),
], ids=["foreign-key", "kid-absent", "kid-unknown"])
def test_key_defects(rogue: MisbehavingProvider, defects: IdTokenDefects, kid: str | None,
                     verified_by_current: bool) -> None:
    token = tokens(rogue, id_token=defects)["id_token"]
    assert jwt.get_unverified_header(token).get("kid") == kid
    current = rogue.public_jwks()["keys"][0]["kid"]
    assert kids_that_verify(rogue, token) == ([current] if verified_by_current else [])


def test_kid_absent_with_several_keys_of_each_type(rogue: MisbehavingProvider) -> None:
    current = rogue.public_jwks()["keys"][0]["kid"]
    rogue.add_key("RS256")
    ec_kid = rogue.add_key("ES256")
    token = tokens(rogue, id_token=IdTokenDefects(kid=None))["id_token"]
    assert [key["kty"] for key in rogue.public_jwks()["keys"]] == ["RSA", "RSA", "EC"]
    assert "kid" not in jwt.get_unverified_header(token) and kids_that_verify(rogue, token) == [current]
    es256 = tokens(rogue, id_token=IdTokenDefects(alg="ES256"))["id_token"]
    assert jwt.get_unverified_header(es256)["alg"] == "ES256" and kids_that_verify(rogue, es256) == [ec_kid]


def test_key_rotation_replaces_the_key_and_jwks_fetches_are_counted(rogue: MisbehavingProvider) -> None:
    before = requests.get(f"{rogue.issuer}/jwks").json()["keys"]
    new_kid = rogue.rotate_keys()
    after = requests.get(f"{rogue.issuer}/jwks").json()["keys"]
    assert [key["kid"] for key in after] == [new_kid] != [key["kid"] for key in before]
    token = tokens(rogue)["id_token"]
    assert jwt.get_unverified_header(token)["kid"] == new_kid and kids_that_verify(rogue, token) == [new_kid]
    assert len(rogue.jwks_requests) == 3


def test_wrong_verifier_reused_code_and_other_redirect_uri_are_refused(rogue: MisbehavingProvider) -> None:
    wrong = redeem(rogue, authorize(rogue).params["code"], verifier="x" * 43)
    code = authorize(rogue).params["code"]
    assert redeem(rogue, code).status_code == 200
    reused = redeem(rogue, code)
    elsewhere = redeem(rogue, authorize(rogue).params["code"], redirect_uri=REDIRECT_URI + "2")
    assert [(r.status_code, r.json()["error"]) for r in (wrong, reused, elsewhere)] == [(400, "invalid_grant")] * 3


def test_basic_only_refuses_a_secret_in_the_body(rogue: MisbehavingProvider) -> None:
    rogue.configure(accept_auth_methods={"client_secret_basic"})
    assert rogue.discovery()["token_endpoint_auth_methods_supported"] == ["client_secret_basic"]
    refused = redeem(rogue, authorize(rogue).params["code"])
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client")
    assert redeem(rogue, authorize(rogue).params["code"], basic=True).status_code == 200
    assert [(r["auth_method"], r["status"]) for r in rogue.token_requests] == [
        ("client_secret_post", 401), ("client_secret_basic", 200)]


def test_basic_credentials_are_form_urlencoded_first(devprovider: DevProvider) -> None:
    with beside(devprovider, client_secret="a+b%c:d") as odd:
        def basic(secret: str) -> int:
            data = {"grant_type": "authorization_code", "code": authorize(odd).params["code"],
                    "redirect_uri": REDIRECT_URI, "code_verifier": VERIFIER}
            return requests.post(f"{odd.issuer}/token", data=data, auth=(odd.client_id, secret)).status_code

        assert basic(quote_plus("a+b%c:d")) == 200  # RFC 6749 §2.3.1
        assert basic("a+b%c:d") == 401  # as requests sends it: the '+' reads as a space


def test_form_post_answer_is_an_auto_submitting_form(rogue: MisbehavingProvider) -> None:
    rogue.configure(iss_parameter="correct")
    url = authorize_url(rogue, response_mode="form_post")
    page = requests.get(url, allow_redirects=False)
    form = BeautifulSoup(page.text, "html.parser").find("form")
    assert page.status_code == 200 and "document.forms[0].submit()" in page.text and form is not None
    assert (form["method"], form["action"]) == ("post", REDIRECT_URI)
    fields = {i["name"]: i["value"] for i in form.find_all("input", type="hidden")}
    assert set(fields) == {"code", "state", "iss"} and fields["iss"] == rogue.issuer
    result = rogue.sign_in(url)
    assert result.url == REDIRECT_URI and set(result.params) == {"code", "state", "iss"}


@pytest.mark.parametrize("knob", [None, "correct", "https://evil.example"], ids=["absent", "correct", "other"])
def test_iss_parameter_is_absent_the_issuer_or_as_given(rogue: MisbehavingProvider, knob: str | None) -> None:
    rogue.configure(iss_parameter=knob)
    assert authorize(rogue).params.get("iss") == (rogue.issuer if knob == "correct" else knob)


def test_error_knob_answers_an_error_instead_of_a_code(rogue: MisbehavingProvider) -> None:
    rogue.configure(error="access_denied")
    params = authorize(rogue).params
    assert params["error"] == "access_denied" and params["state"] == "st-1" and "code" not in params


@pytest.mark.parametrize(("knobs", "check"), [
    ({"token_type": "mac"}, lambda answer: answer["token_type"] == "mac"),
    ({"omit_access_token": True}, lambda answer: "access_token" not in answer and "id_token" in answer),
    ({"omit_id_token": True}, lambda answer: "id_token" not in answer and "access_token" in answer),
    ({"token_response_overrides": {"expires_in": "soon", "scope": None}},
     lambda answer: answer["expires_in"] == "soon" and "scope" not in answer),
], ids=["token-type", "no-access-token", "no-id-token", "overrides"])
def test_token_response_knobs(rogue: MisbehavingProvider, knobs: dict[str, Any], check: Any) -> None:
    assert check(tokens(rogue, **knobs))


@pytest.mark.parametrize(("query", "status"), [
    ("client_id=rp-client", 400), ("client_id=other&response_type=code", 400),
    ("client_id=rp-client&client_id=rp-client", 400), ("%ff=%fe", 400),
], ids=["missing-parameters", "unknown-client", "repeated-parameter", "not-utf8"])
def test_malformed_authorization_requests_get_a_json_400(rogue: MisbehavingProvider, query: str,
                                                          status: int) -> None:
    answer = requests.get(f"{rogue.issuer}/authorize?{query}", allow_redirects=False)
    assert (answer.status_code, answer.json()["error"]) == (status, "invalid_request")
    with pytest.raises(DevProviderError, match="400"):
        rogue.sign_in(f"{rogue.issuer}/authorize?{query}")


def test_malformed_token_requests_and_unknown_paths(rogue: MisbehavingProvider) -> None:
    not_a_form = requests.post(f"{rogue.issuer}/token", json={"grant_type": "authorization_code"})
    assert (not_a_form.status_code, not_a_form.json()["error"]) == (400, "invalid_request")
    assert requests.get(f"{rogue.issuer}/token").status_code == 405
    assert requests.get(f"{rogue.issuer}/nowhere").status_code == 404


def test_logout_redirects_to_the_post_logout_redirect_uri(rogue: MisbehavingProvider) -> None:
    answer = requests.get(f"{rogue.issuer}/logout", allow_redirects=False, params={
        "post_logout_redirect_uri": "http://localhost/", "state": "bye"})
    assert (answer.status_code, answer.headers["Location"]) == (302, "http://localhost/?state=bye")


def test_reset_restores_every_default(rogue: MisbehavingProvider) -> None:
    initial = rogue.public_jwks()
    rogue.rotate_keys()
    rogue.configure(token_type="mac", id_token=IdTokenDefects(alg="none"))
    tokens(rogue)
    rogue.reset()
    assert rogue.public_jwks() == initial and rogue.token_requests == [] and rogue.jwks_requests == []
    assert tokens(rogue)["token_type"] == "Bearer"
    with pytest.raises(TypeError):
        rogue.configure(tokn_type="mac")
    with pytest.raises(ValueError, match="alg"):
        IdTokenDefects(alg="HS256")
