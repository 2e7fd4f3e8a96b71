// OIDC sign-in round trips, timed one after another (the benchmark's client; run by
// bench/oidc/run.sh). Only loopback traffic.
//
//   node login.mjs enclave <enclave base URL> <source> <user> <password> <count>
//     Each round trip: Enclave's /auth/oidc/<source>/start → the provider's authorization
//     endpoint → its login form → consent → Enclave's callback → the session cookie.
//   node login.mjs idp <issuer> <client_id> <client_secret> <redirect_uri> <user> <password> <count>
//     The anchor: the same provider round trip without Enclave (authorization request, login
//     form, code) plus the code exchange at the token endpoint, which Enclave also makes.
//
// Prints one JSON line: {"mode", "count", "ms": [...]}.
import { createHash, randomBytes } from 'node:crypto';

class Browser {
  constructor() { this.jar = new Map(); }
  async send(url, init = {}) {
    const headers = { ...(init.headers ?? {}) };
    const host = new URL(url).host;
    const cookies = [...this.jar].filter(([k]) => k.startsWith(host + ' ')).map(([k, v]) => `${k.split(' ')[1]}=${v}`);
    if (cookies.length) headers.cookie = cookies.join('; ');
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1);
      if (!value || /max-age=0/i.test(c) || /expires=thu, 01 jan 1970/i.test(c)) this.jar.delete(host + ' ' + name);
      else this.jar.set(host + ' ' + name, value);
    }
    const body = await res.text();
    return { status: res.status, location: res.headers.get('location'), body };
  }
  // Follows the provider's pages from `url` until a redirect to `stopAt`; returns that URL.
  async throughIdp(url, user, password, stopAt) {
    let req = { url, init: {} };
    for (let i = 0; i < 12; i++) {
      const p = await this.send(req.url, req.init);
      if (p.location) {
        const next = new URL(p.location, req.url).toString();
        if (next.startsWith(stopAt)) return next;
        req = { url: next, init: {} };
        continue;
      }
      if (p.status !== 200) throw new Error(`unexpected ${p.status} at ${req.url}: ${p.body.slice(0, 200)}`);
      const action = /action="([^"]+)"/.exec(p.body)?.[1];
      if (!action) throw new Error(`no form at ${req.url}`);
      const form = p.body.includes('name="login"')
        ? new URLSearchParams({ login: user, password })
        : new URLSearchParams({ confirm: 'yes' });
      req = { url: new URL(action, req.url).toString(), init: { method: 'POST', body: form, headers: { 'content-type': 'application/x-www-form-urlencoded' } } };
    }
    throw new Error('the sign-in did not finish');
  }
}

async function enclaveRound(base, source, user, password) {
  const b = new Browser();
  const start = await b.send(`${base}/auth/oidc/${source}/start`);
  if (start.status !== 303) throw new Error(`start: ${start.status} ${start.body.slice(0, 200)}`);
  const cb = await b.throughIdp(start.location, user, password, base);
  const done = await b.send(cb);
  if (done.status !== 303 || ![...b.jar.keys()].some((k) => k.endsWith(' __Host-enclave_session'))) {
    throw new Error(`callback: ${done.status} ${done.body.slice(0, 300)}`);
  }
}

const b64 = (buf) => buf.toString('base64url');

async function idpRound(issuer, clientId, secret, redirect, user, password) {
  const b = new Browser();
  const verifier = b64(randomBytes(32));
  const challenge = b64(createHash('sha256').update(verifier).digest());
  const auth = new URL(`${issuer}/auth`);
  for (const [k, v] of Object.entries({
    response_type: 'code', client_id: clientId, redirect_uri: redirect,
    scope: 'openid email profile groups', state: b64(randomBytes(32)), nonce: b64(randomBytes(32)),
    code_challenge: challenge, code_challenge_method: 'S256',
  })) auth.searchParams.set(k, v);
  const cb = new URL(await b.throughIdp(auth.toString(), user, password, redirect));
  const code = cb.searchParams.get('code');
  const tok = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: 'Basic ' + Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64'),
    },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirect, code_verifier: verifier }),
  });
  const body = await tok.json();
  if (!body.id_token) throw new Error(`token: ${JSON.stringify(body)}`);
}

const [mode, ...args] = process.argv.slice(2);
const count = Number(args.at(-1));
const ms = [];
for (let i = 0; i < count; i++) {
  const t = process.hrtime.bigint();
  if (mode === 'enclave') await enclaveRound(args[0], args[1], args[2], args[3]);
  else await idpRound(args[0], args[1], args[2], args[3], args[4], args[5]);
  ms.push(Number(process.hrtime.bigint() - t) / 1e6);
}
console.log(JSON.stringify({ mode, count, ms }));
