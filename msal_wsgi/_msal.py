"""The only module that talks to msal.

One :class:`msal.ConfidentialClientApplication` serves the whole process, so
OpenID discovery happens once. Each user's token cache lives in their session,
so every operation here takes the serialized cache in and hands the new one
back; msal's own ``token_cache`` attribute is a router that forwards to the
cache of the operation in progress on the current thread. msal's result dicts
and exceptions are translated into :mod:`msal_wsgi.errors` here and nowhere else.

The caches handed back hold no access tokens (:func:`stored_cache`): the session's
index of access tokens holds each one once, and an operation that needs msal's cache
gets them back in it (``known`` tokens), as msal itself would have kept them.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, urlsplit

import msal
import requests

from . import jose
from .errors import (
    CredentialRejected,
    InteractionRequired,
    ProviderMisconfigured,
    ProviderUnavailable,
    ResponseRejected,
)
from .identity import AccessToken, User
from .settings import RESERVED_SCOPES, Settings

log = logging.getLogger("msal_wsgi")

#: msal answers these when only the user can fix things (sign in again, consent, MFA...).
_INTERACTION_ERRORS = frozenset({
    "invalid_grant", "interaction_required", "login_required", "consent_required",
    "invalid_scope", "invalid_target", "access_denied", "invalid_request", "no_account",
})
#: Values msal's own DEBUG logging may print (the token request it sends, the answer): masked.
_SECRET_FIELDS = re.compile(
    r"""(["']?\b(?:code|code_verifier|refresh_token|access_token|id_token|client_secret|client_assertion|"""
    r"""assertion|password)["']?\s*[:=]\s*["']?)[^"'&,\s}]+""", re.IGNORECASE)


class _MaskSecrets(logging.Filter):
    """Masks codes, tokens and secrets in msal's log records (msal logs its HTTP traffic at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _SECRET_FIELDS.sub(r"\1***", message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def _mask_msal_logs() -> None:
    names = [name for name in logging.Logger.manager.loggerDict if name == "msal" or name.startswith("msal.")]
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _MaskSecrets) for f in logger.filters):
            logger.addFilter(_MaskSecrets())


_mask_msal_logs()

#: The provider refuses the application itself: a configuration fault, not the user's.
_CLIENT_ERRORS = frozenset({"invalid_client", "unauthorized_client"})
#: The token endpoint is unreachable, timed out (requests), or answered 5xx (msal raises for those,
#: and replays the answer without asking again for its Retry-After, or 5 s without one; tests/test_msal_contract.py).
_UNAVAILABLE = (requests.RequestException, msal.exceptions.MsalServiceError)
#: msal never serves a cached access token with less than this left (seconds).
EXPIRY_MARGIN = 300
_AT = msal.TokenCache.CredentialType.ACCESS_TOKEN


def still_fresh(expires_on: float, refresh_on: float | None, now: float) -> bool:
    """Whether msal itself would still serve a cached token with these times."""
    return expires_on - now >= EXPIRY_MARGIN and (refresh_on is None or refresh_on > now)


@dataclass(frozen=True)
class Redemption:
    """What a redeemed authorization code yields: the account, its id-token claims, a token, the new cache,
    and the scopes granted (those its refresh token, if any, covers)."""

    account_id: str
    claims: Mapping[str, Any]
    token: AccessToken | None
    cache: str = field(repr=False)
    granted: tuple[str, ...] = ()

    @property
    def user(self) -> User:
        return User(self.account_id, self.claims)


class CacheRouter:
    """Stands in as the one app's ``token_cache`` and forwards every call to the
    cache of the operation running on this thread or task (:meth:`using`).

    ``remove_rt`` and ``update_rt`` are real methods because msal captures them
    as bound methods when it builds its client; everything else is looked up late.
    """

    def __init__(self) -> None:
        self._current: contextvars.ContextVar[msal.SerializableTokenCache] = contextvars.ContextVar("msal_wsgi_cache")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._current.get(), name)

    @contextlib.contextmanager
    def using(self, cache: msal.SerializableTokenCache) -> Iterator[None]:
        """Route msal's cache calls to ``cache`` inside the block."""
        token = self._current.set(cache)
        try:
            yield
        finally:
            self._current.reset(token)

    def add(self, *args: Any, **kwargs: Any) -> Any:
        return self._current.get().add(*args, **kwargs)

    def remove_rt(self, *args: Any, **kwargs: Any) -> Any:
        return self._current.get().remove_rt(*args, **kwargs)

    def update_rt(self, *args: Any, **kwargs: Any) -> Any:
        return self._current.get().update_rt(*args, **kwargs)


@contextlib.contextmanager
def _trusted(url: str) -> Iterator[None]:
    """A TLS verification failure is a misconfiguration (an untrusted CA), not a passing outage."""
    try:
        yield
    except requests.exceptions.SSLError as exc:
        host = urlsplit(url).netloc
        reason = "certificate verify failed" if "CERTIFICATE_VERIFY_FAILED" in str(exc) else type(exc).__name__
        raise ProviderMisconfigured(
            f"TLS to {host} failed ({reason}): this machine does not trust the provider's certificate; "
            "point REQUESTS_CA_BUNDLE at the CA bundle that signed it, or fix the provider's certificate") from None


class HttpClient:
    """requests with a default timeout, remembering the discovery document msal fetched.

    With :attr:`secret_in_header` set, a client secret msal puts in a token request's body
    (``client_secret_post``, the only way msal sends it) moves to an ``Authorization: Basic``
    header (``client_secret_basic``, RFC 6749 §2.3.1), for providers that accept only that.
    """

    def __init__(self, timeout: float, session: requests.Session | None = None) -> None:
        # trust_env (the default): honours REQUESTS_CA_BUNDLE and proxies
        self._session = session if session is not None else requests.Session()
        self._timeout = timeout
        self.discovery: dict[str, Any] = {}
        self.secret_in_header = False

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        with _trusted(url):
            response = self._session.get(url, **kwargs)
        if url.endswith("/.well-known/openid-configuration") and response.status_code == 200:
            with contextlib.suppress(ValueError):
                self.discovery = response.json()
        return response

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        data = kwargs.get("data")
        if self.secret_in_header and isinstance(data, dict) and "client_secret" in data:
            data = dict(data)
            secret, client_id = data.pop("client_secret"), data.pop("client_id")
            pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()  # each form-urlencoded first
            kwargs["data"] = data
            kwargs["headers"] = {**(kwargs.get("headers") or {}),
                                 "Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        with _trusted(url):
            response = self._session.post(url, **kwargs)
        if (response.status_code == 429 or response.status_code >= 500) and isinstance(data, dict) \
                and data.get("grant_type") == "authorization_code":
            # msal replays a 429/5xx for its Retry-After (5 s without one) under a key meant to
            # hold the user, but for code redemption it holds no user (msal 1.39): one failed
            # sign-in would fail every sign-in of the process. An exception is never replayed.
            raise requests.HTTPError(f"{response.status_code} from the token endpoint", response=response)
        return response


#: Entra's v2 issuer; its v1 tokens (an API registration's default) name the same tenant at sts.windows.net.
_ENTRA_V2_ISSUER = re.compile(r"^https://login\.microsoftonline\.com/([^/]+)/v2\.0$")


@dataclass(frozen=True)
class Provider:
    """What discovery says about the provider, checked against the settings once.

    ``v1_issuer`` is the issuer of Entra's v1 access tokens for the same tenant(s)
    (``https://sts.windows.net/{tenantid}/``), which an API accepts too; ``None`` for other providers.
    """

    issuer: str
    algorithms: tuple[str, ...]
    keys: jose.KeySet
    iss_parameter_required: bool
    v1_issuer: str | None = None

    def expected_issuer(self, claims: Mapping[str, Any]) -> str:
        """The issuer a token must name: Entra's multi-tenant template is filled with its ``tid``."""
        if "{tenantid}" not in self.issuer:
            return self.issuer
        tenant = claims.get("tid")
        if not isinstance(tenant, str) or not tenant:
            raise jose.InvalidToken("missing_claim:tid")
        return self.issuer.replace("{tenantid}", tenant)


class IdentityClient:
    """Sign-in, code redemption and silent token acquisition against one authority.

    Every request to the provider (msal's, and the JWKS) goes through ``settings.http_session``.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._router = CacheRouter()
        self._http = HttpClient(settings.http_timeout, settings.http_session)
        self._http_cache: dict[Any, Any] = {}
        self._app: msal.ConfidentialClientApplication | None = None
        self._provider: Provider | None = None
        self._lock = threading.Lock()

    @property
    def _msal(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            with self._lock, self._router.using(msal.SerializableTokenCache()):
                if self._app is None:
                    try:
                        self._app = msal.ConfidentialClientApplication(
                            self._settings.client_id,
                            client_credential=_plain(self._settings.client_credential),
                            authority=self._settings.authority,
                            oidc_authority=self._settings.oidc_authority,
                            token_cache=self._router,
                            http_client=self._http,
                            http_cache=self._http_cache,
                        )
                    except (requests.RequestException, ValueError, msal.exceptions.MsalServiceError) as exc:
                        raise ProviderUnavailable(f"cannot load the authority's configuration: {exc}") from None
        return self._app

    @property
    def provider(self) -> Provider:
        """The provider as discovery describes it; :class:`ProviderMisconfigured` if it does not fit the settings."""
        if self._provider is None:
            self._msal  # noqa: B018 - discovery happens when msal's app is built
            with self._lock:
                if self._provider is None:
                    self._provider = self._check_discovery(self._http.discovery)
        return self._provider

    def _check_discovery(self, discovery: Mapping[str, Any]) -> Provider:
        issuer = discovery.get("issuer")
        configured = self._settings.oidc_authority
        if configured is not None and issuer != configured:
            # OpenID Connect Discovery 1.0 §4.3: the issuer must be identical to the URL discovery was asked at.
            raise ProviderMisconfigured(f"the discovery document names the issuer {issuer!r}, not the configured "
                                        f"oidc_authority {configured!r} (OpenID Connect Discovery §4.3)")
        if not isinstance(issuer, str) or not issuer.startswith("https://"):
            raise ProviderMisconfigured(f"the discovery document names no https issuer ({issuer!r})")
        announced = discovery.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = tuple(a for a in announced if a in jose.ASYMMETRIC_ALGORITHMS)
        if not algorithms:
            raise ProviderMisconfigured(f"the provider signs id_tokens only with {announced!r}; msal_wsgi accepts "
                                        "only asymmetric signatures (RS256, PS256, ES256, EdDSA...)")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise ProviderMisconfigured(f"the discovery document has no https jwks_uri ({jwks_uri!r})")
        methods = discovery.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        wanted = self._settings.token_endpoint_auth_method
        self._http.secret_in_header = isinstance(self._settings.client_credential, str) and (
            wanted == "client_secret_basic" or (wanted == "auto" and "client_secret_post" not in methods))
        entra = _ENTRA_V2_ISSUER.match(issuer)
        return Provider(issuer, algorithms, jose.KeySet(lambda: self._jwks(jwks_uri)),
                        discovery.get("authorization_response_iss_parameter_supported") is True,
                        f"https://sts.windows.net/{entra[1]}/" if entra else None)

    def _jwks(self, uri: str) -> Mapping[str, Any]:
        try:
            response = self._http.get(uri)
            response.raise_for_status()
            document: Mapping[str, Any] = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ProviderUnavailable(f"cannot fetch the provider's signing keys: {_describe(exc)}") from None
        return document

    @property
    def end_session_endpoint(self) -> str | None:
        """The provider's ``end_session_endpoint`` from discovery, if it has one."""
        self._msal  # noqa: B018 - discovery happens on first use
        return self._http.discovery.get("end_session_endpoint")

    def check(self) -> dict[str, Any]:
        """Load the authority's configuration now and check it fits the settings; returns the discovery document."""
        self.provider  # noqa: B018
        return dict(self._http.discovery)

    def credential_problem(self) -> str | None:
        """Have the token endpoint authenticate this client (a client credentials request).

        Returns the provider's description when it rejects the client's id or credential
        (``invalid_client``), else ``None``: any other answer means authentication passed.
        """
        with self._router.using(msal.SerializableTokenCache()):
            try:
                result = self._msal.acquire_token_for_client([f"{self._settings.client_id}/.default"])
            except _UNAVAILABLE as exc:
                raise ProviderUnavailable(f"token endpoint unavailable: {_describe(exc)}") from None
        if result.get("error") == "invalid_client":
            return str(result.get("error_description") or "invalid_client")[:300]
        return None

    def begin_sign_in(self, scopes: tuple[str, ...], *, login_hint: str | None = None,
                      domain_hint: str | None = None, claims_challenge: str | None = None) -> dict[str, Any]:
        """Start an auth code flow (PKCE S256, state, nonce); returns msal's flow dict.

        No sign-in starts while discovery does not fit the settings (:class:`ProviderMisconfigured`).
        """
        self.provider  # noqa: B018 - checks discovery
        with self._router.using(msal.SerializableTokenCache()):
            app = self._msal
            flow: dict[str, Any] = app.initiate_auth_code_flow(
                list(scopes), redirect_uri=self._settings.redirect_uri,
                prompt=self._settings.prompt,
                domain_hint=domain_hint or self._settings.domain_hint,
                login_hint=login_hint, claims_challenge=claims_challenge,
                response_mode=self._settings.response_mode)
            return flow

    def redeem(self, flow: dict[str, Any], params: Mapping[str, str], scopes: tuple[str, ...]) -> Redemption:
        """Redeem the code in ``params`` for ``flow``, into a new, empty token cache.

        Raises :class:`ResponseRejected` for an answer that breaks a rule (RFC 9207 ``iss``,
        an invalid id_token, a token type other than Bearer, no access token for ``scopes``),
        :class:`InteractionRequired` for a code the provider refuses.
        """
        provider = self.provider
        iss = params.get("iss")
        if iss is None and provider.iss_parameter_required:
            raise ResponseRejected("missing_iss_parameter", "the provider announces the iss response "
                                   "parameter (RFC 9207) but the response has none")
        if iss is not None and "{tenantid}" not in provider.issuer and not hmac.compare_digest(iss, provider.issuer):
            raise ResponseRejected("wrong_iss_parameter", f"the response's iss parameter is {iss[:200]!r}, "
                                   f"not the issuer {provider.issuer!r} (RFC 9207 §2.4)")
        cache = msal.SerializableTokenCache()
        with self._router.using(cache):
            app = self._msal
            try:
                result = app.acquire_token_by_auth_code_flow(flow, dict(params))
            except json.JSONDecodeError as exc:
                raise ProviderUnavailable(f"malformed answer from the token endpoint: {exc}") from None
            except ValueError as exc:  # msal: state mismatch or malformed response
                raise InteractionRequired(f"the sign-in response was rejected: {exc}") from None
            except RuntimeError:  # msal's nonce check; its message holds both nonces
                raise ResponseRejected("nonce_mismatch", "the id_token's nonce is not this sign-in's") from None
            except KeyError as exc:  # msal indexes the id_token's claims: sub is missing
                raise ResponseRejected("invalid_id_token", f"the id_token lacks {exc}") from None
            except _UNAVAILABLE as exc:
                raise ProviderUnavailable(f"token endpoint unavailable: {_describe(exc)}") from None
            _raise_for_error(result)
            _check_token_type(result, ResponseRejected("unsupported_token_type", "the token type is "
                                                       f"{str(result.get('token_type'))[:40]!r}, not Bearer"))
            claims = self._validated_id_token(result.get("id_token"), provider, nonce=_sent_nonce(flow))
            if iss is not None and iss != claims["iss"]:
                raise ResponseRejected("wrong_iss_parameter", "the response's iss parameter is not the id_token's issuer")
            if scopes and not result.get("access_token"):
                raise ResponseRejected("no_access_token", f"the token response has no access token for {scopes}")
            accounts = app.get_accounts()
            if not accounts:
                raise ResponseRejected("invalid_id_token", "msal found no account in the token response")
            token = _token(result, scopes, time.time(), cache)
            if not result.get("refresh_token"):
                log.warning("the provider issued no refresh token: every token will need a new sign-in; "
                            "providers that follow OpenID Connect Core §11 issue one only with prompt=consent")
            return Redemption(accounts[0]["home_account_id"], claims, token, stored_cache(cache),
                              _granted(scopes, result))

    def _validated_id_token(self, id_token: object, provider: Provider, *, nonce: str | None,
                            subject: str | None = None) -> dict[str, Any]:
        """The claims of ``id_token`` once it passes OpenID Connect Core §3.1.3.7, and the tenant rule."""
        if not isinstance(id_token, str):
            raise ResponseRejected("invalid_id_token", "the token response has no id_token")
        try:
            claims = jose.validate_id_token(id_token, provider.keys, issuer=provider.expected_issuer,
                                            client_id=self._settings.client_id, algorithms=provider.algorithms,
                                            nonce=nonce, leeway=self._settings.clock_skew)
        except jose.InvalidToken as exc:
            raise ResponseRejected("invalid_id_token", f"the id_token is invalid ({exc.reason})") from None
        if subject is not None and claims["sub"] != subject:  # Core §12.2: the same user, refreshed
            raise ResponseRejected("invalid_id_token", "the refreshed id_token names another subject")
        allowed = self._settings.allowed_tenants
        if allowed and str(claims.get("tid", "")).lower() not in allowed:
            raise ResponseRejected("tenant_not_allowed", f"tenant {str(claims.get('tid'))[:64]!r} is not in "
                                   "allowed_tenants")
        return claims

    @property
    def can_act_on_behalf(self) -> bool:
        """Whether this client has a credential, which the on-behalf-of grant needs."""
        return self._settings.client_credential is not None

    def acquire_on_behalf_of(self, assertion: str, scopes: tuple[str, ...], *,
                             claims_challenge: str | None = None) -> AccessToken:
        """A token for ``scopes`` for the user of ``assertion``, a validated access token for this API
        (Entra's on-behalf-of grant, RFC 7523 with ``requested_token_use=on_behalf_of``).

        msal 1.39 never serves an on-behalf-of token from its cache, and the caller keeps the tokens
        it gets (:class:`~msal_wsgi.tokens.OnBehalfOf`), so each call starts from an empty cache.
        Raises :class:`InteractionRequired` (with the claims challenge, if any) when the user must
        consent or satisfy a policy at the client, :class:`CredentialRejected`, :class:`ProviderUnavailable`.
        """
        self.provider  # noqa: B018 - checks discovery
        cache = msal.SerializableTokenCache()
        with self._router.using(cache):
            app = self._msal
            now = time.time()
            try:
                result = app.acquire_token_on_behalf_of(assertion, list(scopes), claims_challenge=claims_challenge)
            except _UNAVAILABLE as exc:
                raise ProviderUnavailable(f"token endpoint unavailable: {_describe(exc)}") from None
            except ValueError as exc:  # malformed JSON from the token endpoint
                raise ProviderUnavailable(f"malformed answer from the token endpoint: {exc}") from None
            _raise_for_error(result)
            _check_token_type(result, ProviderUnavailable(
                f"the token endpoint answered a {str(result.get('token_type'))[:40]!r} token, not Bearer (RFC 6750)"))
            token = _token(result, scopes, now, cache)
            if token is None:
                raise ProviderUnavailable("the token endpoint answered without an access token")
            return token

    def acquire_silent(self, cache_blob: str, account_id: str, scopes: tuple[str, ...], *,
                       subject: str | None = None, claims_challenge: str | None = None,
                       known: Sequence[AccessToken] = ()) -> tuple[AccessToken, str | None]:
        """A token for ``scopes`` from the cache or by refresh token.

        ``known`` are the account's access tokens the session indexes, put back into msal's cache
        first, so msal serves one that covers ``scopes`` as it would have. Returns the token and
        the new serialized cache (:func:`stored_cache`), or ``None`` when unchanged. An id_token
        that comes with a refresh is validated like the first, and must name ``subject``.
        """
        provider = self.provider
        cache = _cache_with(cache_blob, account_id, self._settings.client_id, known)
        with self._router.using(cache):
            account = self._account(account_id)
            now = time.time()
            result = self._silent(list(scopes), account, claims_challenge=claims_challenge)
            self._check_refreshed_id_token(result, provider, subject)
            token = _token(result, scopes, now, cache)
            if token is None:
                raise ProviderUnavailable("the token endpoint answered without an access token")
            return token, (stored_cache(cache) if cache.has_state_changed else None)

    def recheck(self, cache_blob: str, account_id: str, *, subject: str | None = None) -> str:
        """Ask the provider whether the account may still sign in: a refresh of the sign-in itself
        (``openid profile offline_access``, ``force_refresh``), whose id_token is validated like the
        first. Returns the new cache; :class:`InteractionRequired` when the provider refuses
        (the account was disabled, its grant revoked, the refresh token expired).
        """
        provider = self.provider
        cache = msal.SerializableTokenCache()
        cache.deserialize(cache_blob)
        with self._router.using(cache):
            account = self._account(account_id)
            result = self._silent([], account, force_refresh=True)
            self._check_refreshed_id_token(result, provider, subject)
            return stored_cache(cache)

    def _account(self, account_id: str) -> dict[str, Any]:
        account = next((a for a in self._msal.get_accounts() if a.get("home_account_id") == account_id), None)
        if account is None:
            raise InteractionRequired("the signed-in account is not in the token cache")
        return account  # type: ignore[no-any-return]

    def _silent(self, scopes: list[str], account: Mapping[str, Any], *, claims_challenge: str | None = None,
                force_refresh: bool = False) -> Mapping[str, Any]:
        """msal's silent acquisition (cache, else refresh token), its answer checked and translated."""
        try:
            result = self._msal.acquire_token_silent_with_error(
                scopes, account, claims_challenge=claims_challenge, force_refresh=force_refresh)
        except _UNAVAILABLE as exc:
            raise ProviderUnavailable(f"token endpoint unavailable: {_describe(exc)}") from None
        except ValueError as exc:  # malformed JSON from the token endpoint
            raise ProviderUnavailable(f"malformed answer from the token endpoint: {exc}") from None
        if result is None:
            raise InteractionRequired("no refresh token for this account")
        _raise_for_error(result)
        _check_token_type(result, ProviderUnavailable(
            f"the token endpoint answered a {str(result.get('token_type'))[:40]!r} token, not Bearer (RFC 6750)"))
        return result  # type: ignore[no-any-return]

    def _check_refreshed_id_token(self, result: Mapping[str, Any], provider: Provider, subject: str | None) -> None:
        if "id_token" in result:
            try:
                self._validated_id_token(result["id_token"], provider, nonce=None, subject=subject)
            except ResponseRejected as exc:
                log.warning("refresh answer refused: %s", exc.detail)
                raise InteractionRequired(f"the refreshed id_token was refused: {exc.detail}") from None


def stored_cache(cache: msal.SerializableTokenCache) -> str:
    """msal's cache as the session keeps it: compact JSON, without the access tokens (the session's
    index has them; :func:`_cache_with` puts them back)."""
    state = json.loads(cache.serialize())
    state.pop(_AT, None)
    return json.dumps(state, separators=(",", ":"))


def id_token_of(cache_blob: str) -> str | None:
    """The newest id_token in a stored cache (for ``id_token_hint`` at sign-out), if any."""
    try:
        entries = json.loads(cache_blob).get(msal.TokenCache.CredentialType.ID_TOKEN) or {}
    except (ValueError, AttributeError):
        return None
    tokens = [e for e in entries.values() if isinstance(e, dict) and isinstance(e.get("secret"), str)]
    return tokens[-1]["secret"] if tokens else None


def _cache_with(cache_blob: str, account_id: str, client_id: str,
                known: Sequence[AccessToken]) -> msal.SerializableTokenCache:
    """msal's cache from the session: ``cache_blob`` with the ``known`` access tokens of the account back in,
    as msal would have added them (the environment and realm of its id token, the scopes as target)."""
    cache = msal.SerializableTokenCache()
    cache.deserialize(cache_blob)
    if known:
        where = next(iter(cache.search(msal.TokenCache.CredentialType.ID_TOKEN,
                                       query={"home_account_id": account_id})), None) \
            or next(iter(cache.search(msal.TokenCache.CredentialType.ACCOUNT,
                                      query={"home_account_id": account_id})), None)
        if where is not None:
            now = str(int(time.time()))
            for token in known:
                entry = {"credential_type": _AT, "secret": token.value, "home_account_id": account_id,
                         "environment": where.get("environment"), "client_id": client_id,
                         "target": " ".join(sorted(token.scopes)), "realm": where.get("realm"),
                         "token_type": "Bearer", "cached_at": now, "expires_on": str(token.expires_on),
                         "extended_expires_on": str(token.expires_on)}
                if token.refresh_on:
                    entry["refresh_on"] = str(token.refresh_on)
                cache.modify(_AT, entry, entry)
            cache.has_state_changed = False  # as the session had it
    return cache


def _granted(asked: tuple[str, ...], result: Mapping[str, Any]) -> tuple[str, ...]:
    """What a sign-in's refresh token covers: the scopes msal adds to every sign-in, and those asked
    that the token response grants (all, unless its ``scope``, RFC 6749 §5.1, names fewer).

    A scope counts as named by its full value or by its last path segment, as Entra ID answers.
    """
    answered = result.get("scope")
    named = set(answered.split()) if isinstance(answered, str) else None
    granted = [s for s in asked if named is None or s in named or s.rsplit("/", 1)[-1] in named]
    return tuple(sorted(RESERVED_SCOPES)) + tuple(granted)


def _sent_nonce(flow: Mapping[str, Any]) -> str:
    """The nonce msal sent with ``flow``'s authorization request: the SHA-256 of the one it keeps."""
    return hashlib.sha256(str(flow["nonce"]).encode("ascii")).hexdigest()


def _check_token_type(result: Mapping[str, Any], refusal: Exception) -> None:
    """RFC 6749 §7.1: a client must not use a token whose type it does not understand; ours is Bearer."""
    if "access_token" in result and str(result.get("token_type", "")).lower() != "bearer":
        raise refusal


def _plain(credential: Any) -> Any:
    """msal takes a certificate credential as a plain dict; settings keep it frozen."""
    return dict(credential) if isinstance(credential, Mapping) else credential


def _describe(exc: Exception) -> str:
    """``ReadTimeout``, ``ConnectionError``..., or msal's ``HTTP Error: 503``: never a URL or a body."""
    return str(exc) if isinstance(exc, msal.exceptions.MsalServiceError) else type(exc).__name__


def _raise_for_error(result: Mapping[str, Any]) -> None:
    error = result.get("error")
    if not error:
        if not result.get("access_token") and not result.get("id_token_claims"):
            raise ProviderUnavailable("the token endpoint answered without a token")
        return
    description = str(result.get("error_description", ""))[:300]
    if error in _INTERACTION_ERRORS:
        raise InteractionRequired(f"{error}: {description}", claims_challenge=result.get("claims"))
    if error in _CLIENT_ERRORS:
        raise CredentialRejected(f"{error}: {description}; check client_id and the client secret or "
                                 "certificate (client_credential, client_secret or client_certificate)")
    raise ProviderUnavailable(f"{error}: {description}")


def _token(result: Mapping[str, Any], scopes: tuple[str, ...], now: float,
           cache: msal.SerializableTokenCache) -> AccessToken | None:
    """The token of ``result``, with the expiry and refresh times of msal's own cache entry.

    msal decides from its entry (``expires_on``, ``refresh_on``), and the times in
    ``result`` can be a second later; indexing the entry's times makes the session's
    fast path stop serving the token exactly when msal would.
    """
    value = result.get("access_token")
    if not value or not scopes:
        return None
    entries = list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN, query={"secret": value}))
    if entries:
        refresh_on = entries[0].get("refresh_on")
        return AccessToken(value, int(entries[0]["expires_on"]), scopes, int(refresh_on) if refresh_on else None)
    refresh_on = result.get("refresh_on")
    return AccessToken(value, int(now + int(result.get("expires_in", 0))), scopes,
                       int(refresh_on) if refresh_on else None)
