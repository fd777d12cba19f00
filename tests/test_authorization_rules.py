"""Authorization rules per prefix: app roles, groups (and Entra's groups overage), tenants, a predicate.

Web prefixes check the validated id token of a real sign-in at the misbehaving provider (whose
``user_claims`` put roles, groups and tid in it); API prefixes check access tokens it signs. A
refusal is a 403 page for a browser, 403 JSON for an API or XHR caller, naming what was missing,
and a WARNING line ``access to PATH denied to WHO: ...``.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from beaker.middleware import SessionMiddleware
from support.api import access_claims, bearer, rogue_api
from support.apps import echo_app, return_to_app
from support.misbehaving import MisbehavingProvider
from webtest import TestApp

from msal_wsgi import ConfigurationError, MsalMiddleware, Protect, ProtectApi, Require
from msal_wsgi.authz import Denial, denial

TENANT = "aaaabbbb-0000-cccc-1111-dddd2222eeee"
OTHER_TENANT = "99998888-7777-6666-5555-444433332222"
ADMINS = "0d2b5e3c-1111-4a4a-9b9b-5c5c5c5c5c5c"
OVERAGE = {"_claim_names": {"groups": "src1"},
           "_claim_sources": {"src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/o/getMemberObjects"}}}


def web_app(rogue: MisbehavingProvider, require: Any) -> TestApp:
    """echo_app with /admin protected by ``require``, signing in at ``rogue``."""
    middleware = MsalMiddleware(echo_app, client_id=rogue.client_id, client_secret=rogue.client_secret,
                                oidc_authority=rogue.issuer, redirect_uri="http://localhost/auth/callback",
                                protect={"/admin": Protect(read=["api://rogue/read"], require=require),
                                         "/todos": Protect(read=["api://rogue/read"])})
    return TestApp(SessionMiddleware(middleware, {"session.type": "memory", "session.key": "sid",
                                                  "session.save_accessed_time": False}))


def signed_in(rogue: MisbehavingProvider, require: Any, **claims: Any) -> TestApp:
    """A browser signed in at ``rogue`` as a user whose id token carries ``claims``."""
    rogue.configure(user_claims={"name": "Rogue User", "preferred_username": "rogue-user", **claims})
    app = web_app(rogue, require)
    back = return_to_app(app, rogue.sign_in(app.get("/todos").location))
    assert back.status_int == 302, back
    return app


# -- the rules, on claims --------------------------------------------------------------------------

@pytest.mark.parametrize(("rule", "claims"), [
    (Require(roles=["Admin", "Editor"]), {"roles": ["Reader", "Editor"]}),
    (Require(groups=[ADMINS]), {"groups": ["other", ADMINS]}),
    (Require(tenants=[TENANT.upper()]), {"tid": TENANT}),
    (Require(claims=lambda c: c.get("email_verified") is True), {"email_verified": True}),
    (Require(roles=["Admin"], tenants=[TENANT]), {"roles": ["Admin"], "tid": TENANT}),
], ids=["any-role", "any-group", "tenant-any-case", "predicate", "role-and-tenant"])
def test_claims_that_pass(rule, claims):
    assert rule.denial(claims) is None


@pytest.mark.parametrize(("rule", "claims", "requirement", "words"), [
    (Require(roles=["Admin"]), {"roles": ["Reader"]}, "roles", "app roles Admin"),
    (Require(roles=["Admin"]), {"roles": "Admin Reader"}, "roles", "app roles Admin"),
    (Require(roles=["Admin"]), {}, "roles", "app roles Admin"),
    (Require(groups=[ADMINS]), {"groups": []}, "groups", ADMINS),
    (Require(groups=[ADMINS]), OVERAGE, "groups_overage", "Microsoft Graph"),
    (Require(groups=[ADMINS]), {"hasgroups": True}, "groups_overage", "more groups than a token holds"),
    (Require(tenants=[TENANT]), {"tid": OTHER_TENANT}, "tenants", "tenant"),
    (Require(tenants=[TENANT]), {}, "tenants", "tenant"),
    (Require(claims=lambda c: c["acrs"] == "c1", description="step-up authentication"), {}, "claims",
     "step-up authentication"),
    (Require(roles=["Admin"], tenants=[TENANT]), {"roles": ["Admin"], "tid": OTHER_TENANT}, "tenants", "tenant"),
], ids=["other-role", "roles-not-a-list", "no-roles", "no-group", "overage-claim-names", "overage-hasgroups",
        "other-tenant", "no-tid", "predicate-raises", "both-needed"])
def test_claims_that_fail_say_what_was_missing(rule, claims, requirement, words):
    refused = rule.denial(claims)
    assert isinstance(refused, Denial) and refused.requirement == requirement and words in refused.message


def test_every_rule_of_a_prefix_must_pass_and_the_first_failure_is_named():
    rules = (Require(tenants=[TENANT]), Require(roles=["Admin"]))
    assert denial(rules, {"tid": TENANT, "roles": ["Admin"]}) is None
    assert denial(rules, {"tid": TENANT}).requirement == "roles"  # type: ignore[union-attr]


def test_a_predicate_that_raises_denies_and_is_logged(caplog):
    rule = Require(claims=lambda c: c["missing"], description="a claim that is not there")
    with caplog.at_level(logging.ERROR, logger="msal_wsgi"):
        assert rule.denial({}) is not None
    assert "the claims rule a claim that is not there raised; access denied" in caplog.text


def test_a_predicate_without_description_is_named_after_its_function():
    def has_mfa(claims: Any) -> bool:
        return "mfa" in claims.get("amr", [])

    assert Require(claims=has_mfa).denial({}).message == (  # type: ignore[union-attr]
        "This needs the rule test_a_predicate_without_description_is_named_after_its_function.<locals>.has_mfa.")


@pytest.mark.parametrize(("options", "setting"), [
    ({}, "require"),
    ({"tenants": ["contoso.com"]}, "require.tenants"),
    ({"roles": ["two words"]}, "require.roles"),
    ({"claims": "not callable"}, "require.claims"),
])
def test_bad_rules_are_refused_at_construction(options, setting):
    with pytest.raises(ConfigurationError) as raised:
        Require(**options)
    assert raised.value.setting == setting


def test_protect_takes_only_require_rules():
    with pytest.raises(ConfigurationError) as raised:
        Protect(require=["Admin"])  # type: ignore[list-item]
    assert raised.value.setting == "protect.require"


# -- web prefixes: a 403 page for browsers, JSON for XHR -----------------------------------------------

def test_a_user_with_the_role_gets_the_page_and_its_token(rogue):
    app = signed_in(rogue, Require(roles=["Admin"]), roles=["Admin"])
    body = app.get("/admin").json
    assert body["remote_user"] == "rogue-user" and body["token"]["scopes"] == ["api://rogue/read"]


def test_a_user_without_the_role_gets_a_403_page_and_no_token_is_acquired(rogue, caplog):
    app = signed_in(rogue, Require(roles=["Admin"]), roles=["Reader"])
    before = len(rogue.token_requests)
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        page = app.get("/admin/settings", headers={"Accept": "text/html"}, status=403)
    assert "Access denied" in page.text and "This needs one of the app roles Admin." in page.text
    assert page.headers["Cache-Control"] == "no-store" and "Location" not in page.headers
    assert "access to /admin/settings denied to rogue-user: roles Admin required" in caplog.text
    assert len(rogue.token_requests) == before
    assert app.get("/todos").status_int == 200  # other prefixes are unaffected


def test_an_xhr_caller_gets_403_json_saying_what_was_missing(rogue):
    app = signed_in(rogue, Require(groups=[ADMINS]), groups=["someone-else"])
    answer = app.get("/admin", headers={"Accept": "application/json"}, status=403)
    assert answer.json == {"error": "access_denied", "requirement": "groups", "needed": [ADMINS],
                           "error_description": f"This needs membership of one of the groups {ADMINS}."}


def test_a_member_of_the_group_gets_in(rogue):
    assert signed_in(rogue, Require(groups=[ADMINS]), groups=[ADMINS]).get("/admin").status_int == 200


def test_groups_overage_is_a_403_that_names_it(rogue, caplog):
    app = signed_in(rogue, Require(groups=[ADMINS]), **OVERAGE)
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        page = app.get("/admin", status=403)
    assert "groups overage" in page.text and "Microsoft Graph" in page.text
    assert "groups_overage" in caplog.text


@pytest.mark.parametrize(("tid", "status"), [(TENANT, 200), (OTHER_TENANT, 403)])
def test_a_tenant_rule(rogue, tid, status):
    app = signed_in(rogue, Require(tenants=[TENANT]), tid=tid)
    assert app.get("/admin", status=status).status_int == status


@pytest.mark.parametrize(("verified", "status"), [(True, 200), (False, 403)])
def test_a_claims_predicate(rogue, verified, status):
    rule = Require(claims=lambda claims: claims.get("email_verified") is True, description="a verified e-mail")
    app = signed_in(rogue, rule, email_verified=verified)
    answer = app.get("/admin", headers={"Accept": "application/json"}, status=status)
    if status == 403:
        assert answer.json["needed"] == ["a verified e-mail"]


def test_someone_not_signed_in_is_sent_to_sign_in_first(rogue):
    answer = web_app(rogue, Require(roles=["Admin"])).get("/admin")
    assert answer.status_int == 302 and answer.location.startswith(rogue.issuer + "/authorize?")


# -- API prefixes: 403 JSON --------------------------------------------------------------------------

def api_with(rogue: MisbehavingProvider, require: Any) -> TestApp:
    return rogue_api(rogue, protect={"/api": ProtectApi(read=["read"], app_read=["Reports.Read.All"],
                                                        require=require)})


@pytest.mark.parametrize(("require", "claims"), [
    (Require(roles=["Reports.Reader"]), {"roles": ["Reports.Reader"]}),
    (Require(groups=[ADMINS]), {"groups": [ADMINS]}),
    (Require(tenants=[TENANT]), {"tid": TENANT}),
    ([Require(tenants=[TENANT]), Require(claims=lambda c: c.get("acrs") == ["c1"])], {"tid": TENANT, "acrs": ["c1"]}),
], ids=["role", "group", "tenant", "tenant-and-predicate"])
def test_an_api_caller_who_passes_the_rules_is_served(rogue, require, claims):
    answer = api_with(rogue, require).get("/api/r", headers=bearer(rogue.sign(access_claims(rogue, **claims))))
    assert answer.status_int == 200


@pytest.mark.parametrize(("require", "claims", "requirement"), [
    (Require(roles=["Reports.Reader"]), {"roles": ["Other"]}, "roles"),
    (Require(groups=[ADMINS]), {"hasgroups": True}, "groups_overage"),
    (Require(tenants=[TENANT]), {"tid": OTHER_TENANT}, "tenants"),
    (Require(claims=lambda c: c.get("acrs") == ["c1"], description="step-up (acrs c1)"), {}, "claims"),
], ids=["role", "groups-overage", "tenant", "predicate"])
def test_an_api_caller_who_fails_a_rule_gets_403_json_and_a_log_line(rogue, caplog, require, claims, requirement):
    api = api_with(rogue, require)
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        answer = api.get("/api/r", headers={**bearer(rogue.sign(access_claims(rogue, **claims))),
                                            "Accept": "text/html"}, status=403)
    assert answer.content_type == "application/json" and "WWW-Authenticate" not in answer.headers
    assert answer.json["error"] == "access_denied" and answer.json["requirement"] == requirement
    assert f"access to /api/r denied to rogue-user: {requirement}" in caplog.text


def test_an_app_only_token_is_checked_against_the_rules_too(rogue):
    api = api_with(rogue, Require(tenants=[TENANT]))
    app_only = access_claims(rogue, scp=None, sub="daemon-sp", roles=["Reports.Read.All"])
    assert api.get("/api/r", headers=bearer(rogue.sign({**app_only, "tid": TENANT}))).json["caller"]["app_only"]
    refused = api.get("/api/r", headers=bearer(rogue.sign({**app_only, "tid": OTHER_TENANT})), status=403)
    assert refused.json["requirement"] == "tenants"
