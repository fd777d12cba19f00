// Local OpenID Connect provider for msal_wsgi tests and development.
//
// panva/oidc-provider mounted under /op on an HTTPS server bound to 127.0.0.1.
// In both modes, API scopes "api://X/..." select the resource "api://X" (JWT
// access tokens, aud = api://X, scope claim). OP_MODE chooses the rest:
//
//   entra (default): configured to behave like Entra ID with admin consent:
//     * one consent covers every declared resource and scope;
//     * a refresh token is issued for every authorization code exchange of a
//       client allowed the refresh_token grant (no prompt=consent needed), and
//       it is good for every declared resource (multi-resource refresh tokens).
//   stock: oidc-provider's own rules, as most providers (and Entra without
//     admin consent) behave:
//     * consent per scope, on the devInteractions consent page, for what the
//       sign-in asks and the grant lacks;
//     * a refresh token only when offline_access is granted, which needs
//       prompt=consent (OpenID Connect Core §11), covering exactly the scopes
//       and the resource of the sign-in that issued it;
//     * every refresh rotates the refresh token (a reused one revokes the grant);
//     * id_tokens carry profile claims only when no access token is issued
//       (conformIdTokenClaims), so the RP sees just sub.
//
// Environment:
//   OP_PORT          port to listen on (required; 0 = any free port)
//   OP_CERT, OP_KEY  PEM files of the TLS server certificate and key (required)
//   OP_LOG           file receiving one JSON line per HTTP request (optional)
//   OP_AT_TTL        access token lifetime of todo-web, seconds (default 3600)
//   OP_SHORT_AT_TTL  access token lifetime of todo-web-short and
//                    todo-web-rotating, seconds (default 303)
//   OP_CLIENT_CERT   PEM file of the X.509 certificate registered for the
//                    client todo-web-cert (optional; without it that client
//                    does not exist). Like an Entra app registration, only the
//                    public certificate is given to the provider.
//   OP_REFRESH_IN    refresh_in (seconds) in the token responses of
//                    todo-web-refresh-in, like Entra's proactive refresh hint (default 2)
//   OP_VERBOSE       when set, keep oidc-provider's development warnings
//   OP_MODE          entra (default) or stock, see above
//   OP_ISSUER_ORIGIN the origin the issuer is announced at (default: https://127.0.0.1:PORT), for a
//                    proxy in front of the provider that must look like the provider itself
//   OP_BACKCHANNEL_LOGOUT  comma-separated CLIENT_ID=URI pairs: those clients register URI as their
//                    backchannel_logout_uri (with backchannel_logout_session_required, so their id
//                    tokens carry sid); ending a session at the provider POSTs a logout token there,
//                    loopback addresses included (OpenID Connect Back-Channel Logout 1.0)
//
// Web APIs, as Entra app registrations that expose them:
//   * todo-daemon and todo-daemon-norole get app-only tokens for api://todo with the client
//     credentials grant; todo-daemon's carry the app role ToDoList.ReadWrite.All in "roles";
//   * todo-api is the to-do API's own registration (App ID URI api://todo): with Entra's
//     on-behalf-of grant (urn:ietf:params:oauth:grant-type:jwt-bearer, requested_token_use =
//     on_behalf_of) it exchanges a user's token for api://todo for a token of another declared
//     resource, for the same user.
//
// Prints "READY <issuer>" on stdout once listening.

import {
  X509Certificate, createHash, createPublicKey, generateKeyPairSync, randomBytes, verify,
} from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import https from 'node:https';

const env = (name, fallback) => (process.env[name] === undefined || process.env[name] === '' ? fallback : process.env[name]);
const required = (name) => {
  const value = env(name);
  if (value === undefined) {
    console.error(`provider.mjs: environment variable ${name} is required`);
    process.exit(2);
  }
  return value;
};

const PORT = Number(required('OP_PORT'));
const CERT = readFileSync(required('OP_CERT'));
const KEY = readFileSync(required('OP_KEY'));
const LOG = env('OP_LOG');
const AT_TTL = Number(env('OP_AT_TTL', '3600'));
const SHORT_AT_TTL = Number(env('OP_SHORT_AT_TTL', '303'));
const REFRESH_IN = Number(env('OP_REFRESH_IN', '2'));
const CLIENT_CERT = env('OP_CLIENT_CERT');
const MODE = env('OP_MODE', 'entra');
const MOUNT = '/op';
const BACKCHANNEL = new Map(env('OP_BACKCHANNEL_LOGOUT', '').split(',').filter(Boolean).map((pair) => {
  const at = pair.indexOf('=');
  return [pair.slice(0, at), pair.slice(at + 1)];
}));
if (!['entra', 'stock'].includes(MODE)) {
  console.error(`provider.mjs: OP_MODE must be entra or stock, not ${MODE}`);
  process.exit(2);
}

if (!env('OP_VERBOSE')) {
  // oidc-provider prints development-only notices (devInteractions, default
  // TTLs, default pages) through console.info / console.warn; keep quiet.
  const { info, warn } = console;
  const quiet = (fn) => (...args) => {
    if (typeof args[0] === 'string' && args[0].startsWith('oidc-provider ')) return;
    fn.apply(console, args);
  };
  console.info = quiet(info);
  console.warn = quiet(warn);
}

// Imported after the console filter: oidc-provider warns at import time (e.g.
// about running on Node.js 20).
const { default: Provider, errors } = await import('oidc-provider');

// Resource servers, like Entra app registrations exposing API scopes.
const RESOURCES = new Map([
  ['api://todo', ['api://todo/ToDoList.Read', 'api://todo/ToDoList.ReadWrite']],
]);
for (let n = 1; n <= 20; n += 1) {
  RESOURCES.set(`api://r${n}`, [`api://r${n}/access`]);
}

/** Declared resources named by the "api://X/..." scopes of a scope string, in order. */
function resourcesOfScope(scope) {
  const found = [];
  for (const value of (scope || '').split(' ')) {
    const match = /^(api:\/\/[^/]+)\/./.exec(value);
    if (match && RESOURCES.has(match[1]) && !found.includes(match[1])) found.push(match[1]);
  }
  return found;
}

/** What oidc-provider needs to know of a declared resource: JWT access tokens with aud = the resource. */
async function resourceServerInfo(ctx, resourceIndicator) {
  const scopes = RESOURCES.get(resourceIndicator);
  if (!scopes) throw new errors.InvalidTarget();
  return {
    scope: scopes.join(' '),
    audience: resourceIndicator,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1']);

function loopbackUrl(value) {
  const url = URL.parse(value);
  if (!url || !['http:', 'https:'].includes(url.protocol) || !LOOPBACK_HOSTS.has(url.hostname)) return undefined;
  return url;
}

const CONFIDENTIAL = {
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic', // client_secret_post is accepted as well
  redirect_uris: ['http://localhost/auth/callback', 'http://localhost:5000/auth/callback'],
  post_logout_redirect_uris: ['http://localhost/', 'http://localhost:5000/'],
};

const SHORT_TTL_CLIENTS = new Set(['todo-web-short', 'todo-web-rotating']);

/** A web client: confidential, and with the back-channel logout URI OP_BACKCHANNEL_LOGOUT gives it, if any. */
function webClient(clientId, secret) {
  const logout = BACKCHANNEL.get(clientId);
  return {
    client_id: clientId,
    client_secret: secret,
    ...CONFIDENTIAL,
    ...(logout ? { backchannel_logout_uri: logout, backchannel_logout_session_required: true } : {}),
  };
}

// Entra-like app roles: what the client credentials tokens of each daemon carry in "roles".
const APP_ROLES = new Map([
  ['todo-daemon', ['ToDoList.ReadWrite.All']],
  ['todo-daemon-norole', []],
]);
const DAEMON = {
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
};

// Middle-tier APIs allowed the on-behalf-of grant, with the resource each one is (the audience
// of the tokens it receives: the assertion it exchanges).
const OBO_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const MIDDLE_TIERS = new Map([['todo-api', 'api://todo']]);

/**
 * todo-web-cert authenticates with a certificate credential: a client assertion
 * JWT (private_key_jwt) signed with the certificate's key. MSAL for Python signs
 * it PS256 and names the certificate by its x5t#S256 thumbprint (no kid), so the
 * registered key is the certificate's public key with that thumbprint.
 */
function certificateClient(path) {
  const certificate = new X509Certificate(readFileSync(path));
  const thumbprint = Buffer.from(certificate.fingerprint256.replaceAll(':', ''), 'hex').toString('base64url');
  const jwk = {
    ...certificate.publicKey.export({ format: 'jwk' }),
    use: 'sig',
    alg: 'PS256',
    'x5t#S256': thumbprint,
    x5c: [certificate.raw.toString('base64')],
  };
  return {
    client_id: 'todo-web-cert',
    ...CONFIDENTIAL,
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'PS256',
    jwks: { keys: [jwk] },
  };
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };

const ISSUER_ORIGIN = env('OP_ISSUER_ORIGIN');
const issuer = (port) => `${ISSUER_ORIGIN || `https://127.0.0.1:${port}`}${MOUNT}`;

const configuration = {
  clients: [
    webClient('todo-web', 'todo-web-secret'),
    webClient('todo-web-short', 'todo-web-short-secret'),
    webClient('todo-web-rotating', 'todo-web-rotating-secret'),
    webClient('todo-web-refresh-in', 'todo-web-refresh-in-secret'),
    ...(CLIENT_CERT ? [certificateClient(CLIENT_CERT)] : []),
    { client_id: 'todo-daemon', client_secret: 'todo-daemon-secret', ...DAEMON },
    { client_id: 'todo-daemon-norole', client_secret: 'todo-daemon-norole-secret', ...DAEMON },
    {
      client_id: 'todo-api', client_secret: 'todo-api-secret', ...DAEMON, grant_types: [OBO_GRANT],
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  responseTypes: ['code'],
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return {
          sub, name: sub, preferred_username: sub, email: `${sub}@example.test`, email_verified: true,
        };
      },
    };
  },
  async extraTokenClaims(ctx, token) {
    const roles = token.kind === 'ClientCredentials' ? APP_ROLES.get(token.clientId) : undefined;
    return roles?.length ? { roles } : undefined;
  },
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Entra-like: the resource is named by the requested scopes' "api://X/" prefix.
      // oneOf is given when choosing among the resources a code/refresh token holds.
      async defaultResource(ctx, client, oneOf) {
        const wanted = resourcesOfScope(ctx.oidc.params.scope);
        if (oneOf) return wanted.find((r) => oneOf.includes(r));
        if (wanted.length === 0) return undefined;
        return wanted.length === 1 ? wanted[0] : wanted;
      },
      // msal never sends resource= to the token endpoint: the code's (or refresh
      // token's) resource is used, in both modes (it is one resource in stock mode).
      async useGrantedResource() {
        return true;
      },
      getResourceServerInfo: resourceServerInfo,
    },
  },
  pkce: { required: () => false },
  // oidc-provider's outgoing requests (logout tokens) refuse special-use addresses, loopback included
  // (SSRF protection); the apps under test listen on loopback, so requests to it go without that check.
  async fetch(url, options) {
    if (loopbackUrl(String(url))) delete options.dispatcher;
    return globalThis.fetch(url, options);
  },
  ttl: {
    AccessToken: (ctx, token, client) => (SHORT_TTL_CLIENTS.has(client.clientId) ? SHORT_AT_TTL : AT_TTL),
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 14 * 24 * 3600,
    Grant: 14 * 24 * 3600,
    Session: 14 * 24 * 3600,
    Interaction: 3600,
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
    ctx.body = `<!DOCTYPE html><html><head><title>oops! something went wrong</title></head><body>${
      Object.entries(out).map(([k, v]) => `<pre><strong>${esc(k)}</strong>: ${esc(v)}</pre>`).join('')}</body></html>`;
  },
};

const ENTRA_LIKE = {
  conformIdTokenClaims: false,
  // Entra-like consent: once a user consented to a client, the grant covers
  // every declared resource (so the refresh token can be redeemed for any).
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (!grantId) return undefined;
    const grant = await ctx.oidc.provider.Grant.find(grantId);
    if (!grant) return undefined;
    let changed = false;
    for (const [resource, scopes] of RESOURCES) {
      const have = new Set(grant.getResourceScopeEncountered(resource).split(' '));
      const missing = scopes.filter((s) => !have.has(s));
      if (missing.length) {
        grant.addResourceScope(resource, missing.join(' '));
        changed = true;
      }
    }
    if (changed) await grant.save();
    return grant;
  },
  // Entra-like refresh tokens: issued for every code exchange of a client
  // allowed the refresh_token grant (prompt=consent is not needed), holding
  // offline_access and every resource (and scope) the grant covers.
  async issueRefreshToken(ctx, client, code) {
    if (!client.grantTypeAllowed('refresh_token')) return false;
    if (code.kind !== 'AuthorizationCode') return code.scopes.has('offline_access');
    const grant = ctx.oidc.entities.Grant;
    const scopes = code.scopes;
    scopes.add('offline_access');
    const resources = new Set(code.resource === undefined ? [] : [].concat(code.resource));
    for (const [resource, declared] of RESOURCES) {
      const granted = grant ? grant.getResourceScopeFiltered(resource, declared) : '';
      if (granted) {
        resources.add(resource);
        granted.split(' ').forEach((s) => scopes.add(s));
      }
    }
    // The refresh token is built from these fields of the (already redeemed) code.
    code.scope = [...scopes].join(' ');
    code.resource = resources.size === 1 ? [...resources][0] : [...resources];
    return true;
  },
  expiresWithSession: async () => false,
  rotateRefreshToken: (ctx) => ctx.oidc.client.clientId === 'todo-web-rotating',
};

// oidc-provider's defaults for consent, grants and refresh tokens (loadExistingGrant,
// issueRefreshToken, expiresWithSession, conformIdTokenClaims are left alone); only
// rotation is switched on for every client, as many providers do.
const STOCK = {
  rotateRefreshToken: true,
};

Object.assign(configuration, MODE === 'entra' ? ENTRA_LIKE : STOCK);

function log(req, res, started) {
  if (!LOG) return;
  const path = (req.originalUrl || req.url).split('?')[0];
  appendFileSync(LOG, `${JSON.stringify({
    t: started / 1000, method: req.method, path, status: res.statusCode, ...req.tokenLog,
  })}\n`);
}

/** A short fingerprint of a token, for the request log (never the token itself). */
const fingerprint = (value) => (value ? createHash('sha256').update(String(value)).digest('hex').slice(0, 12) : undefined);

/** The payload of a JWT this provider signed (RS256, its key), or undefined. */
function verifiedPayload(jwt) {
  const [header, payload, signature] = String(jwt).split('.');
  if (signature === undefined) return undefined;
  try {
    const { alg, kid } = JSON.parse(Buffer.from(header, 'base64url'));
    const ok = alg === 'RS256' && kid === signingKey.kid && verify(
      'RSA-SHA256', Buffer.from(`${header}.${payload}`), createPublicKey({ key: signingKey, format: 'jwk' }),
      Buffer.from(signature, 'base64url'),
    );
    return ok ? JSON.parse(Buffer.from(payload, 'base64url')) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Entra's on-behalf-of flow (RFC 7523 assertion grant with requested_token_use=on_behalf_of):
 * the assertion is a user's access token for the middle tier's own resource, still valid;
 * the answer is an access token of the same user for the one resource the scopes name.
 */
async function onBehalfOf(ctx) {
  const { client, params, provider } = ctx.oidc;
  const own = MIDDLE_TIERS.get(client.clientId);
  if (!own) throw new errors.UnauthorizedClient('this client may not use the on-behalf-of grant');
  if (params.requested_token_use !== 'on_behalf_of') {
    throw new errors.InvalidRequest('requested_token_use must be on_behalf_of');
  }
  const claims = verifiedPayload(params.assertion);
  const now = Math.floor(Date.now() / 1000);
  if (!claims || claims.iss !== provider.issuer || claims.aud !== own || !(claims.exp > now)
      || claims.sub === claims.client_id) { // Entra: only a user's token can be exchanged
    throw new errors.InvalidGrant('the assertion is not a valid access token for this client');
  }
  const resources = resourcesOfScope(params.scope);
  if (resources.length !== 1) throw new errors.InvalidTarget('the scopes must name exactly one resource');
  const [resource] = resources;
  const info = await resourceServerInfo(ctx, resource);
  const declared = new Set(info.scope.split(' '));
  const token = new provider.AccessToken({
    accountId: claims.sub,
    client,
    gty: 'on_behalf_of',
    scope: (params.scope || '').split(' ').filter((s) => declared.has(s)).join(' ') || undefined,
  });
  token.resourceServer = new provider.ResourceServer(resource, info);
  const value = await token.save();
  ctx.body = {
    access_token: value, token_type: 'Bearer', expires_in: token.expiration, scope: token.scope,
  };
}

let callback;
const server = https.createServer({ cert: CERT, key: KEY }, (req, res) => {
  // Log when the response is ended (before the client can see all of it), so a
  // client that got its answer always finds its request in the log.
  const started = Date.now();
  let logged = false;
  const once = () => { if (!logged) { logged = true; log(req, res, started); } };
  const { end } = res;
  res.end = function endAndLog(...args) { once(); return end.apply(this, args); };
  res.on('close', once);
  const { url } = req;
  if (url === MOUNT || url.startsWith(`${MOUNT}/`) || url.startsWith(`${MOUNT}?`)) {
    req.originalUrl = url;
    req.url = url.slice(MOUNT.length) || '/';
    if (req.url.startsWith('?')) req.url = `/${req.url}`;
    callback(req, res);
    return;
  }
  res.statusCode = 404;
  res.setHeader('content-type', 'text/plain');
  res.end('not found\n');
});

server.listen(PORT, '127.0.0.1', () => {
  const { port } = server.address();
  const provider = new Provider(issuer(port), configuration);

  // Dynamic test ports: any loopback http(s) redirect_uri ending in /callback,
  // and any loopback http(s) post_logout_redirect_uri.
  provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(value) {
    const url = loopbackUrl(value);
    return !!url && url.pathname.endsWith('/callback') && !url.hash;
  };
  provider.Client.prototype.postLogoutRedirectUriAllowed = function postLogoutRedirectUriAllowed(value) {
    const url = loopbackUrl(value);
    return !!url && !url.hash;
  };

  // Entra-like: a client assertion is accepted again until it expires. MSAL
  // builds one per application and reuses it for up to nine minutes, so a
  // second sign-in within that time presents the same jti.
  provider.ReplayDetection.unique = async () => true;

  // Entra adds refresh_in to token responses (msal then refreshes after it, as "aging").
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route === 'token' && ctx.oidc.client?.clientId === 'todo-web-refresh-in'
        && ctx.body?.access_token) {
      ctx.body = { ...ctx.body, refresh_in: REFRESH_IN };
    }
  });

  // The request log tells which refresh token a token request presented and which it was given
  // (fingerprints), so a test can follow a grant's rotations and tell why one was refused.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route !== 'token') return;
    const { params } = ctx.oidc;
    ctx.req.tokenLog = {
      grant_type: params?.grant_type,
      client_id: ctx.oidc.client?.clientId,
      rt_in: fingerprint(params?.refresh_token),
      rt_out: fingerprint(ctx.body?.refresh_token),
      error: ctx.body?.error,
      error_description: ctx.body?.error_description,
    };
  });

  provider.registerGrantType(OBO_GRANT, onBehalfOf, ['assertion', 'scope', 'requested_token_use']);

  provider.on('backchannel.error', (ctx, err, client) => {
    console.error(`back-channel logout to ${client.backchannelLogoutUri} failed: ${err.message}`);
  });

  callback = provider.callback();
  process.stdout.write(`READY ${issuer(port)}\n`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
