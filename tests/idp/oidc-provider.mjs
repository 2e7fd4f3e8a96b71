// A real OpenID provider (the OpenID-certified `oidc-provider` package) on loopback, for the
// enclave-oidc integration test. Usage:
//
//   node oidc-provider.mjs '<json config>'
//
// config: { "port": 0, "clients": [ oidc-provider client metadata, ... ] }
// Port 0 picks a free port. Prints "ready <port>" on stdout once it listens on 127.0.0.1; the
// issuer is http://127.0.0.1:<port>.
//
// Test accounts (login / password):
//   alice / alice-password   alice@example.test, groups ["data-scientists", "staff"]
//   bob   / bob-password     bob@example.test,   groups ["contractors"]
//   carol / carol-password   carol@other.example, groups "visitors" (a single string)
//
// Key rotation: the provider starts with key set A (RSA + EC P-256). POST /__admin/rotate switches
// to key set B (new keys, new key ids; A is no longer published). GET /__admin/stats answers
// {"jwks_requests": n, "kids": [...]}, counting requests to the JWKS endpoint.
// /__big/... answers a 2 MiB JSON document and /__redirect/... a redirect (HTTP hygiene tests).
//
// Instead of oidc-provider's devInteractions this script has its own minimal login interaction:
// GET /interaction/:uid shows a login (or consent) form; POST /interaction/:uid/login checks the
// password and finishes the interaction with login and consent (a Grant with the requested scopes).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2] ?? process.env.IDP_CONFIG ?? '{}');
const clients = config.clients ?? [];
const port = Number(config.port ?? 0);

const ACCOUNTS = {
  alice: {
    password: 'alice-password',
    claims: { email: 'alice@example.test', email_verified: true, name: 'Alice Example', groups: ['data-scientists', 'staff'] },
  },
  bob: {
    password: 'bob-password',
    claims: { email: 'bob@example.test', email_verified: true, name: 'Bob Example', groups: ['contractors'] },
  },
  carol: {
    password: 'carol-password',
    claims: { email: 'carol@other.example', email_verified: false, name: 'Carol Other', groups: 'visitors' },
  },
};

function keySet(label) {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const tag = randomBytes(4).toString('hex');
  return [
    { ...rsa, kid: `${label}-rsa-${tag}`, use: 'sig', alg: 'RS256' },
    { ...ec, kid: `${label}-ec-${tag}`, use: 'sig', alg: 'ES256' },
  ];
}

const cookieKeys = [randomBytes(32).toString('hex')];

function makeProvider(issuer, keys) {
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys },
    cookies: { keys: cookieKeys },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    features: { devInteractions: { enabled: false } },
    pkce: { required: () => true },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, id) {
      const account = ACCOUNTS[id];
      if (!account) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, ...account.claims };
        },
      };
    },
  });
  provider.on('server_error', (ctx, err) => console.error('idp server_error:', err));
  return provider;
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function page(res, status, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(`<!doctype html><html><body>${body}</body></html>`);
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      data += chunk;
      if (data.length > 65536) reject(new Error('form too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(data)));
    req.on('error', reject);
  });
}

async function grantFor(provider, details, accountId) {
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: details.params.client_id });
  grant.addOIDCScope(String(details.params.scope ?? 'openid'));
  const missing = details.prompt.details ?? {};
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  return grant.save();
}

async function interaction(provider, req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return page(res, 400, '<p>interaction mismatch</p>');
  if (req.method === 'GET' && !action) {
    if (details.prompt.name === 'login') {
      return page(res, 200, `<h1>Sign in</h1><form method="post" action="/interaction/${escapeHtml(uid)}/login">
<input name="login"><input name="password" type="password"><button>Sign in</button></form>`);
    }
    return page(res, 200, `<h1>Allow access</h1><form method="post" action="/interaction/${escapeHtml(uid)}/confirm">
<p>scopes: ${escapeHtml(details.params.scope)}</p><button>Allow</button></form>`);
  }
  if (req.method === 'POST' && action === 'login') {
    const form = await readForm(req);
    const login = form.get('login') ?? '';
    const account = Object.hasOwn(ACCOUNTS, login) ? ACCOUNTS[login] : undefined;
    if (!account || account.password !== form.get('password')) {
      return page(res, 200, `<h1>Sign in</h1><p class="error">wrong login or password</p><form method="post" action="/interaction/${escapeHtml(uid)}/login">
<input name="login"><input name="password" type="password"><button>Sign in</button></form>`);
    }
    const grantId = await grantFor(provider, details, login);
    return provider.interactionFinished(req, res, { login: { accountId: login }, consent: { grantId } }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'confirm') {
    await readForm(req);
    const grantId = await grantFor(provider, details, details.session.accountId);
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  return page(res, 405, '<p>method not allowed</p>');
}

let current;
let standby;
let currentKids;
let standbyKids;
let jwksRequests = 0;

const server = createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname === '/__admin/rotate' && req.method === 'POST') {
      [current, standby] = [standby, current];
      [currentKids, standbyKids] = [standbyKids, currentKids];
      res.setHeader('Content-Type', 'application/json');
      return res.end(JSON.stringify({ kids: currentKids }));
    }
    if (url.pathname === '/__admin/stats') {
      res.setHeader('Content-Type', 'application/json');
      return res.end(JSON.stringify({ jwks_requests: jwksRequests, kids: currentKids }));
    }
    // For the HTTP hygiene tests: an oversized discovery document and a redirecting one.
    if (url.pathname.startsWith('/__big/')) {
      res.setHeader('Content-Type', 'application/json');
      return res.end(JSON.stringify({ issuer: 'x', padding: 'x'.repeat(2 * 1024 * 1024) }));
    }
    if (url.pathname.startsWith('/__redirect/')) {
      res.statusCode = 302;
      res.setHeader('Location', '/.well-known/openid-configuration');
      return res.end();
    }
    const m = url.pathname.match(/^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm))?$/);
    if (m) return await interaction(current, req, res, m[1], m[2]);
    if (url.pathname === '/jwks') jwksRequests += 1;
    return current.callback()(req, res);
  } catch (err) {
    console.error('idp error:', err);
    if (!res.headersSent) page(res, 500, '<p>internal error</p>');
    else res.end();
  }
});

server.listen(port, '127.0.0.1', () => {
  const actual = server.address().port;
  const issuer = `http://127.0.0.1:${actual}`;
  const a = keySet('A');
  const b = keySet('B');
  current = makeProvider(issuer, a);
  standby = makeProvider(issuer, b);
  currentKids = a.map((k) => k.kid);
  standbyKids = b.map((k) => k.kid);
  process.stdout.write(`ready ${actual}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => process.exit(0));
}
// Exit when the test that started us goes away (its end of stdin closes).
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
