// Local OpenID provider (panva/oidc-provider, a certified OpenID Provider
// implementation) used by portcullis' Rust integration tests.
//
// Usage: `npm ci && node server.mjs`. Prints exactly one line to stdout,
// `ISSUER=http://127.0.0.1:<port>`, once it accepts requests; everything else
// (oidc-provider notices/warnings, errors) goes to stderr. Runs until SIGTERM
// or SIGINT, then closes the server and exits 0. See README.md.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';

// stdout is reserved for the single ISSUER= line. oidc-provider prints its
// NOTICEs with console.info (stdout), so route console.log/info to stderr
// before the library is loaded (it is imported dynamically below for that).
console.log = (...args) => console.error(...args);
console.info = (...args) => console.error(...args);

// Signal handling is installed first so that a SIGTERM/SIGINT arriving while
// we are still starting up also ends the process cleanly (exit 0).
let server;
let closing = false;
function shutdown(reason) {
  if (closing) return;
  closing = true;
  console.error(`test idp: ${reason}, shutting down`);
  if (!server?.listening) process.exit(0);
  const timer = setTimeout(() => process.exit(0), 2000);
  timer.unref();
  server.close(() => process.exit(0));
  server.closeAllConnections();
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

// Each step of the start on stderr, with the time since the process began: when a start is
// slow or never ends, the harness's failure message shows the last step reached.
function step(what) {
  console.error(`test idp: ${what} (${Math.round(performance.now())} ms)`);
}

const { default: Provider, errors } = await import('oidc-provider');
step('oidc-provider loaded');

// ---------------------------------------------------------------------------
// Settings (environment)
// ---------------------------------------------------------------------------

const HOST = '127.0.0.1';

function positiveIntEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function portEnv() {
  const raw = process.env.IDP_PORT ?? process.env.PORT;
  if (raw === undefined || raw === '') return 0;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 0 || value > 65535) {
    throw new TypeError(`IDP_PORT/PORT must be a TCP port number, got ${JSON.stringify(raw)}`);
  }
  return value;
}

const AT_TTL = positiveIntEnv('IDP_AT_TTL', 300);
const REQUESTED_PORT = portEnv();
const KEYS_FILE = process.env.IDP_KEYS_FILE || undefined;
const KID_SUFFIX = process.env.IDP_KID_SUFFIX ?? '';
const EXIT_ON_STDIN_CLOSE = ['1', 'true', 'yes'].includes(
  (process.env.IDP_EXIT_ON_STDIN_CLOSE ?? '').toLowerCase(),
);

// ---------------------------------------------------------------------------
// Signing keys: one RS256 (RSA 2048) and one ES256 (P-256) private JWK
// ---------------------------------------------------------------------------

// RFC 7638 JWK thumbprint (SHA-256, base64url).
function thumbprint(jwk) {
  const members = jwk.kty === 'RSA'
    ? { e: jwk.e, kty: jwk.kty, n: jwk.n }
    : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  return crypto.createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

// A fresh private key as a JWK. Generated as PKCS #8 PEM and read back, never exported from
// the KeyObject that generateKeyPairSync returns: on Node 20 that export can deadlock for good
// when a garbage collection runs inside it (the main thread waits on a key mutex it already
// holds, in ~KeyGenJob). A provider here stopped in exactly that frame (gdb), one in CI stopped
// at the same step, and a loop of 3,000 such exports hangs within its first 2,000 iterations,
// while the same loop this way finishes.
function generatePrivateJwk(type, options) {
  const { privateKey } = crypto.generateKeyPairSync(type, {
    ...options,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return crypto.createPrivateKey(privateKey).export({ format: 'jwk' });
}

function generateJwks(kidSuffix = KID_SUFFIX) {
  const rsaJwk = generatePrivateJwk('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
  const ecJwk = generatePrivateJwk('ec', { namedCurve: 'P-256' });

  return {
    keys: [
      {
        ...rsaJwk, kid: `rs256-${thumbprint(rsaJwk).slice(0, 16)}${kidSuffix}`, alg: 'RS256', use: 'sig',
      },
      {
        ...ecJwk, kid: `es256-${thumbprint(ecJwk).slice(0, 16)}${kidSuffix}`, alg: 'ES256', use: 'sig',
      },
    ],
  };
}

function validateJwks(jwks, source) {
  if (!jwks || !Array.isArray(jwks.keys) || jwks.keys.length === 0) {
    throw new TypeError(`${source}: expected a JWKS object {"keys": [...]}`);
  }
  for (const alg of ['RS256', 'ES256']) {
    const key = jwks.keys.find((k) => k.alg === alg);
    if (!key || typeof key.kid !== 'string' || !key.d) {
      throw new TypeError(`${source}: expected a private ${alg} JWK with a kid`);
    }
  }
  return jwks;
}

function loadOrCreateJwks() {
  if (!KEYS_FILE) return generateJwks();

  if (fs.existsSync(KEYS_FILE)) {
    return validateJwks(JSON.parse(fs.readFileSync(KEYS_FILE, 'utf8')), KEYS_FILE);
  }

  return saveJwks(generateJwks());
}

function saveJwks(jwks) {
  if (!KEYS_FILE) return jwks;
  fs.mkdirSync(path.dirname(path.resolve(KEYS_FILE)), { recursive: true });
  // Write atomically so a concurrently starting provider never reads half a file.
  const tmp = `${KEYS_FILE}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(jwks, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(tmp, KEYS_FILE);
  return jwks;
}

let jwks = loadOrCreateJwks();
step('signing keys ready');

// ---------------------------------------------------------------------------
// Clients, resource servers, claims
// ---------------------------------------------------------------------------

const clients = [
  {
    client_id: 'resource-client',
    client_secret: 'resource-secret',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'orders:read orders:write openid',
  },
  {
    client_id: 'post-client',
    client_secret: 'post-secret',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_post',
    scope: 'orders:read orders:write openid',
  },
  // The relying party of `cargo run --example gateway` (see the README): browser login with
  // code + PKCE on http://127.0.0.1:3000. Tests register their own clients (/reg), with the
  // ports they listen on.
  {
    client_id: 'demo-client',
    client_secret: 'demo-secret',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1:3000/callback'],
    post_logout_redirect_uris: ['http://127.0.0.1:3000/'],
    backchannel_logout_uri: 'http://127.0.0.1:3000/backchannel-logout',
    backchannel_logout_session_required: true,
    token_endpoint_auth_method: 'client_secret_basic',
  },
  {
    client_id: 'api-introspector',
    client_secret: 'introspector-secret',
    grant_types: [],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  },
];

const RESOURCE_SCOPE = 'orders:read orders:write';

// Resource indicator (RFC 8707) -> resource server. Matched exactly.
const resourceServers = new Map([
  ['https://api.example.test', {
    scope: RESOURCE_SCOPE,
    audience: 'https://api.example.test',
    accessTokenTTL: AT_TTL,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  }],
  ['https://es256.api.example.test', {
    scope: RESOURCE_SCOPE,
    audience: 'https://es256.api.example.test',
    accessTokenTTL: AT_TTL,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'ES256' } },
  }],
  ['urn:portcullis:opaque', {
    scope: RESOURCE_SCOPE,
    audience: 'urn:portcullis:opaque',
    accessTokenTTL: AT_TTL,
    accessTokenFormat: 'opaque',
  }],
]);

// Extra claims per client, added to access tokens (JWT payload, and the
// introspection response of opaque tokens).
const extraClaimsByClient = new Map([
  ['resource-client', { roles: ['orders-admin'], realm_access: { roles: ['admin'] } }],
]);

const INTROSPECTOR = 'api-introspector';

// Dev-login users (any password): their claims, including the roles the relying party maps
// to its `Principal`. Any other login is a user without roles.
const users = new Map([
  ['alice', { name: 'Alice Admin', email: 'alice@example.test', roles: ['orders-admin', 'viewer'] }],
  ['bob', { name: 'Bob Viewer', email: 'bob@example.test', roles: ['viewer'] }],
]);

async function findAccount(ctx, id) {
  const user = users.get(id) ?? { name: id, email: `${id}@example.test`, roles: [] };
  return {
    accountId: id,
    async claims() {
      return { sub: id, ...structuredClone(user) };
    },
  };
}

// Login clients get every scope they ask for without a consent screen: the tests and the
// demo drive one form (the dev login), not two.
async function loadExistingGrant(ctx) {
  const grantId = ctx.oidc.result?.consent?.grantId
    || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
  if (grantId) {
    const existing = await ctx.oidc.provider.Grant.find(grantId);
    // A grant revoked with its refresh token is gone: grant anew.
    if (existing) return existing;
  }
  const grant = new ctx.oidc.provider.Grant({
    clientId: ctx.oidc.client.clientId,
    accountId: ctx.oidc.session.accountId,
  });
  grant.addOIDCScope(ctx.oidc.params.scope ?? 'openid');
  grant.addOIDCClaims(['sub', 'name', 'email', 'roles']);
  await grant.save();
  return grant;
}

// ---------------------------------------------------------------------------
// Provider
// ---------------------------------------------------------------------------

// The cookie signing keys: one set for the process, so that a key rotation (which builds a
// new provider) leaves sessions and interactions in progress intact.
const COOKIE_KEYS = [crypto.randomBytes(32).toString('base64url')];

// A fresh configuration object for each provider built (see the key rotation hook).
const configuration = (jwks) => ({
  clients,
  jwks,
  scopes: ['openid', 'offline_access', 'profile', 'email', 'roles', 'orders:read', 'orders:write'],
  claims: {
    openid: ['sub'], profile: ['name'], email: ['email'], roles: ['roles'],
  },
  // Claims of the granted scopes go into the ID token too (the relying party maps `roles`).
  conformIdTokenClaims: false,
  findAccount,
  loadExistingGrant,
  // Outgoing requests (back-channel logout) go to relying parties on 127.0.0.1, which
  // oidc-provider's SSRF protection refuses: every peer of this test provider is local.
  fetch(url, options) {
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  // Every login client that may refresh gets a refresh token (no offline_access dance),
  // and every refresh rotates it: the relying party must cope with rotation.
  async issueRefreshToken(ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  rotateRefreshToken: () => true,
  // Not used by client credentials, only set so oidc-provider does not use
  // its development-only defaults.
  cookies: { keys: COOKIE_KEYS },
  features: {
    // The dev login form (any login, any password) for the OpenID Connect login tests.
    devInteractions: { enabled: true },
    registration: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // api-introspector may introspect any token; other clients only their own.
      async allowedPolicy(ctx, client, token) {
        return client.clientId === INTROSPECTOR || client.clientId === token.clientId;
      },
    },
    revocation: {
      enabled: true,
      // The owning client, or api-introspector, may revoke a token. Anyone
      // else gets 200 with the token left untouched (RFC 7009 behaviour).
      async allowedPolicy(ctx, client, token) {
        return client.clientId === INTROSPECTOR || client.clientId === token.clientId;
      },
    },
    resourceIndicators: {
      enabled: true,
      // No resource unless the client sends one.
      async defaultResource(ctx, client, oneOf) {
        return oneOf || undefined;
      },
      // Only consulted by authorization_code / refresh_token grants (which the
      // test clients do not use); client_credentials always uses the request's
      // `resource` parameter.
      async useGrantedResource() {
        return true;
      },
      async getResourceServerInfo(ctx, resourceIndicator, client) {
        const info = resourceServers.get(resourceIndicator);
        if (!info) {
          throw new errors.InvalidTarget(`unknown resource indicator ${resourceIndicator}`);
        }
        return structuredClone(info);
      },
    },
  },
  async extraTokenClaims(ctx, token) {
    const extra = extraClaimsByClient.get(token.clientId);
    return extra ? structuredClone(extra) : undefined;
  },
  ttl: {
    ClientCredentials(ctx, token) {
      return token.resourceServer?.accessTokenTTL || AT_TTL;
    },
    AccessToken(ctx, token) {
      return token.resourceServer?.accessTokenTTL || AT_TTL;
    },
  },
  async renderError(ctx, out) {
    ctx.type = 'application/json; charset=utf-8';
    ctx.body = out;
  },
});

// Bind first (port 0 = any free port), then build the provider with the real
// issuer and attach it: no window in which another process could take the port.
server = http.createServer();

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(REQUESTED_PORT, HOST, () => {
    server.off('error', reject);
    resolve();
  });
});

const { port } = server.address();
step(`listening on port ${port}`);
const issuer = `http://${HOST}:${port}`;

function buildProvider(keys) {
  const built = new Provider(issuer, configuration(keys));
  built.on('server_error', (ctx, err) => {
    console.error('oidc-provider server_error:', err);
  });
  return built;
}

let provider = buildProvider(jwks);
let providerCallback = provider.callback();

// Reads a test hook's form body, then calls `handle` with it.
function withForm(req, handle) {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => handle(new URLSearchParams(body)));
}

server.on('request', (req, res) => {
  // Test hook: `POST /test/rotate-keys` with a form `kid_suffix` replaces the signing keys
  // with fresh ones (kids ending in the suffix), as a provider's key rotation does: the
  // JWKS, new tokens and the keys file have the new keys only. The issuer (and so the port)
  // stays, as the process does. Answers 204.
  if (req.method === 'POST' && req.url === '/test/rotate-keys') {
    withForm(req, (form) => {
      try {
        const rotated = saveJwks(generateJwks(form.get('kid_suffix') ?? ''));
        const rebuilt = buildProvider(rotated);
        [jwks, provider, providerCallback] = [rotated, rebuilt, rebuilt.callback()];
      } catch (error) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(String(error?.message ?? error));
        return;
      }
      console.error(`test idp: keys rotated, kids ${jwks.keys.map((k) => k.kid).join(', ')}`);
      res.writeHead(204).end();
    });
    return;
  }
  // Test hook: `POST /test/backchannel-logout` with a form `client_id`, `sub`, `sid` makes
  // the provider send that client a real logout token (signed with its keys, to the
  // client's registered backchannel_logout_uri), as it does when a session ends. Answers
  // 204 when the client answered 200, 502 with the reason otherwise.
  if (req.method === 'POST' && req.url === '/test/backchannel-logout') {
    withForm(req, async (form) => {
      try {
        const client = await provider.Client.find(form.get('client_id') ?? '');
        if (!client) throw new Error('unknown client');
        await client.backchannelLogout(form.get('sub') ?? '', form.get('sid') ?? undefined);
        res.writeHead(204).end();
      } catch (error) {
        res.writeHead(502, { 'content-type': 'text/plain' }).end(String(error?.message ?? error));
      }
    });
    return;
  }
  providerCallback(req, res);
});

if (EXIT_ON_STDIN_CLOSE) {
  // Lets a test harness tie our lifetime to its own: when the parent dies, the
  // stdin pipe closes and we exit even if nobody sent a signal.
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();
}

console.error(
  `test idp: issuer ${issuer}, kids ${jwks.keys.map((k) => `${k.kid} (${k.alg})`).join(', ')}, `
  + `access token TTL ${AT_TTL}s${KEYS_FILE ? `, keys file ${KEYS_FILE}` : ''}`,
);
if (!closing) process.stdout.write(`ISSUER=${issuer}\n`);
