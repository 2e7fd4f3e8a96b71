// Browser test of notebooks: a real Enclave server with real runc sandboxes (run as root), a
// package index on loopback, and Debian's Chromium driven by playwright-core. An admin (API)
// creates a data scientist, her project and the `lab` environment; she logs in to the console,
// starts a notebook server from the project's notebooks page, opens JupyterLab and runs a cell;
// the cell is in the audit trail under her name; a browser without a session does not get
// JupyterLab. Fails on any page error or CSP violation on Enclave's own pages; JupyterLab's
// pages (served under a notebook CSP) only have theirs logged.
//
// Two passes, each with its own server and data directory (the built environment is shared):
// - gateway path: JupyterLab under Enclave's origin at /p/{project}/nb/{name}/;
// - notebook subdomain (ENCLAVE_NOTEBOOKS_SUBDOMAIN_DOMAIN=nb.localhost, Enclave reached at
//   https://localhost:PORT): Open hands the browser over to the notebook's own origin
//   https://{name}--{project}.nb.localhost:PORT, which holds its own host-only cookie and never
//   sees the session cookie, and whose pages cannot read Enclave's API as the user. Chromium
//   resolves *.localhost to loopback itself.
// Screenshots go to target/browser/ (notebooks-page.png, notebook.png, notebook-subdomain.png).
//
// Usage: node tests/browser/notebook.mjs path/to/enclave [path|subdomain]
// (the optional second argument runs only that pass).
// Environment: ENCLAVE_TEST_INDEX_URL (an index already running; otherwise pypi-server is
// started on loopback over ENCLAVE_TEST_WHEELS or /var/cache/enclave-test/wheels) and
// ENCLAVE_TEST_ENVS (built environments, shared with the Rust tests; default
// /var/cache/enclave-test/envs). Only loopback traffic.
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { check, freePort, launchChromium } from './harness.mjs';

const bin = process.argv[2];
const only = process.argv[3];
if (!bin || (only && only !== 'path' && only !== 'subdomain')) {
  console.error('usage: node notebook.mjs ENCLAVE_BINARY [path|subdomain]');
  process.exit(2);
}
const envsDir = process.env.ENCLAVE_TEST_ENVS || '/var/cache/enclave-test/envs';
const wheelsDir = process.env.ENCLAVE_TEST_WHEELS || '/var/cache/enclave-test/wheels';
const shots = join(process.cwd(), 'target', 'browser');
mkdirSync(shots, { recursive: true });
mkdirSync(envsDir, { recursive: true });
const PASSWORD = 'Amber-Valley-Kestrel-314';
const OLIVIA = 'Lumen-Orchard-Basalt-2718';
const LAB = {
  python: '3.11',
  packages: ['jupyterlab==4.6.6', 'ipykernel==7.4.0'],
  presets: [{ name: 'small', cpus: '1', memory: '1G' }],
};
const DOMAIN = 'nb.localhost';
const SESSION_COOKIE = '__Host-enclave_session';
const NOTEBOOK_COOKIE = '__Host-enclave_nb';
const PASSES = [
  { id: 'path', title: 'gateway path', subdomain: false, shot: 'notebook.png', log: 'notebook-server.log' },
  { id: 'subdomain', title: 'notebook subdomain', subdomain: true, shot: 'notebook-subdomain.png', log: 'notebook-subdomain-server.log' },
];
const started = Date.now();

let pypi;
let pypiOut = '';
let browser;
let current; // the pass under way: its server, pages and notes, for the report on failure

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const seconds = (since) => ((Date.now() - since) / 1000).toFixed(1);

async function answers(url) {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return r.ok;
  } catch {
    return false;
  }
}

// The package index: ENCLAVE_TEST_INDEX_URL, or pypi-server on a free loopback port.
async function startIndex() {
  if (process.env.ENCLAVE_TEST_INDEX_URL) return process.env.ENCLAVE_TEST_INDEX_URL;
  const hasWheels = (() => {
    try {
      return readdirSync(wheelsDir).some((f) => f.endsWith('.whl'));
    } catch {
      return false;
    }
  })();
  if (!hasWheels) {
    throw new Error(`no test wheels in ${wheelsDir}: run scripts/test.sh, which downloads them, or set ENCLAVE_TEST_WHEELS`);
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    pypiOut = '';
    let exited = false;
    pypi = spawn('pypi-server', ['run', '-i', '127.0.0.1', '-p', String(port), '--disable-fallback',
      '--backend', 'simple-dir', wheelsDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    pypi.on('error', (e) => { pypiOut += `cannot start pypi-server: ${e.message}\n`; exited = true; });
    pypi.on('exit', () => { exited = true; });
    pypi.stdout.on('data', (d) => { pypiOut += d; });
    pypi.stderr.on('data', (d) => { pypiOut += d; });
    const url = `http://127.0.0.1:${port}/simple/`;
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline && !exited) {
      if (await answers(url)) return url;
      await sleep(100);
    }
    pypi.kill('SIGKILL');
    pypi = undefined;
  }
  throw new Error(`pypi-server did not answer on /simple/:\n${pypiOut}`);
}

// Starts the pass's server. The subdomain pass listens on a chosen port so that its public URL
// (https://localhost:PORT, where the browser reaches Enclave) can name it; a port taken in
// between makes the server exit, and it is tried again on another.
async function startServer(p, indexUrl) {
  for (let attempt = 0; ; attempt++) {
    const port = p.mode.subdomain ? await freePort() : 0;
    const env = {
      ...process.env,
      ENCLAVE_CONFIG: '',
      ENCLAVE_NOTEBOOKS_INDEX_URL: indexUrl,
      ENCLAVE_NOTEBOOKS_ENVS_DIR: envsDir,
      ENCLAVE_NOTEBOOKS_BUILD_ON_START: 'false',
      ENCLAVE_NOTEBOOKS_IDLE_TIMEOUT: 'off',
    };
    if (p.mode.subdomain) {
      env.ENCLAVE_NOTEBOOKS_SUBDOMAIN_DOMAIN = DOMAIN;
      env.ENCLAVE_PUBLIC_URL = `https://localhost:${port}`;
    }
    const from = p.serverOut.length; // this attempt's output (a failed one's stays for the log)
    try {
      return await new Promise((resolve, reject) => {
        p.server = spawn(bin, ['serve', '--data-dir', p.dataDir, '--listen', `127.0.0.1:${port}`], {
          stdio: ['ignore', 'pipe', 'pipe'],
          env,
        });
        let done = false;
        const timer = setTimeout(() => reject(new Error('server did not start in 60s')), 60000);
        p.server.stdout.on('data', (d) => {
          p.serverOut += d.toString();
          const out = p.serverOut.slice(from);
          const base = out.match(/Enclave listening on (https:\/\/[0-9.:]+)/);
          const setup = out.match(/(https:\/\/\S+\/setup\?token=\S+)/);
          if (base && setup && !done) {
            done = true;
            clearTimeout(timer);
            resolve({ api: base[1], setupUrl: setup[1] });
          }
        });
        p.server.stderr.on('data', (d) => { p.serverOut += d.toString(); });
        p.server.on('exit', (code, signal) => {
          p.server.exited = true;
          if (!done) {
            clearTimeout(timer);
            reject(new Error(`server exited with ${code ?? signal}`));
          }
        });
      });
    } catch (e) {
      if (!p.mode.subdomain || !p.server.exited || attempt >= 2) throw e;
      console.log(`# the server did not start on port ${port} (${e.message}); trying another`);
    }
  }
}

// JSON over HTTPS to the server's listening address, verifying its self-signed certificate
// with its own file.
function api(p, method, path, token, body) {
  const ca = readFileSync(join(p.dataDir, 'tls', 'cert.pem'));
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers = { accept: 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    if (data) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = data.length;
    }
    const req = httpsRequest(`${p.api}${path}`, { method, headers, ca, agent: false, timeout: 30000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        let json = null;
        try { json = text ? JSON.parse(text) : null; } catch { json = { raw: text }; }
        resolve({ status: res.statusCode, body: json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

async function must(p, method, path, token, body, want) {
  const r = await api(p, method, path, token, body);
  if (r.status !== want) {
    throw new Error(`${method} ${path}: ${r.status} (wanted ${want}): ${JSON.stringify(r.body)}`);
  }
  return r.body;
}

// Collects a page's errors into `into`, but for the browser's own note on a response whose
// error status the test expects (`expected(url, status)`).
function watch(page, into, expected = () => false) {
  page.on('console', (m) => {
    const status = m.text().match(/^Failed to load resource: the server responded with a status of (\d+)/);
    if (status && expected(m.location().url, Number(status[1]))) return;
    if (m.type() === 'error') into.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => into.push(`page error: ${e.message}`));
}

// The first admin through the setup API; then olivia, her project and the environment.
async function setUp(p, setupUrl) {
  const setupToken = new URL(setupUrl).searchParams.get('token');
  await must(p, 'POST', '/api/v1/setup', null,
    { token: setupToken, username: 'admin', password: PASSWORD }, 201);
  const { token: admin } = await must(p, 'POST', '/api/v1/auth/token', null,
    { username: 'admin', password: PASSWORD, name: 'browser-test' }, 201);
  await must(p, 'POST', '/api/v1/users', admin, { username: 'olivia', password: OLIVIA }, 201);
  await must(p, 'POST', '/api/v1/projects', admin, { name: 'fraud', owner: 'olivia' }, 201);
  await must(p, 'PUT', '/api/v1/environments/lab', admin, LAB, 200);
  const buildStart = Date.now();
  for (;;) {
    const env = await must(p, 'GET', '/api/v1/environments/lab', admin, undefined, 200);
    if (env.status === 'ready') break;
    if (env.status === 'failed') throw new Error(`environment build failed: ${JSON.stringify(env)}`);
    if (Date.now() - buildStart > 15 * 60 * 1000) throw new Error(`environment not built in 15 min: ${JSON.stringify(env)}`);
    await sleep(500);
  }
  check(true, `the admin set up olivia, project fraud and environment lab (ready in ${seconds(buildStart)}s)`);
  return admin;
}

// Olivia logs in and starts a notebook server from the console; returns her console tab,
// with the notebooks page showing the server ready.
async function startNotebook(p, openSel) {
  const { base } = p;
  const page = await p.context.newPage();
  watch(page, p.problems);
  await page.goto(`${base}/login`);
  await page.fill('#username', 'olivia');
  await page.fill('#password', OLIVIA);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  check(new URL(page.url()).pathname === '/', 'olivia logs in to the console');
  await page.goto(`${base}/projects/fraud/notebooks`);
  check((await page.textContent('main')).includes('no notebook servers yet'), 'the notebooks page says there are none yet');
  await page.fill('#n-name', 'analysis');
  await page.selectOption('#n-environment', 'lab');
  await Promise.all([page.waitForNavigation(), page.click('#new-notebook button[type=submit]')]);
  check(new URL(page.url()).pathname === '/projects/fraud/notebooks/analysis'
    && /starting|ready/.test(await page.textContent('#notebook-state')),
  'the form creates the server and opens its page, which shows it starting');
  const startWait = Date.now();
  let state = '';
  let lastLoad = Date.now();
  for (;;) {
    // The server's page refreshes itself while the server starts; look again after each refresh.
    try {
      await page.waitForSelector(`#notebook-open${openSel.slice(1)}`, { timeout: 3000 });
      break;
    } catch { /* not yet */ }
    try {
      state = ((await page.textContent('#notebook-facts', { timeout: 2000 })) || '').replace(/\s+/g, ' ').trim();
    } catch { /* mid-refresh */ }
    if (/State failed/.test(state)) throw new Error(`the notebook server failed: ${state}`);
    if (Date.now() - startWait > 180000) throw new Error(`notebook server not ready in 3 min: ${state}`);
    if (Date.now() - lastLoad > 15000) {
      // In case a refresh was missed: load the page again.
      lastLoad = Date.now();
      await page.goto(`${base}/projects/fraud/notebooks/analysis`).catch(() => {});
    }
  }
  check((await page.textContent('#notebook-state')).trim() === 'ready',
    `the server's page shows it ready with an Open JupyterLab button after ${seconds(startWait)}s`);
  await page.goto(`${base}/projects/fraud/notebooks`);
  const row = (await page.textContent('#notebooks-table tbody tr')).replace(/\s+/g, ' ');
  check(/\bready\b/.test(row) && row.includes('lab') && row.includes('olivia'),
    'the notebooks page lists the server ready, with its environment and owner');
  check(await page.locator(`#notebooks-table ${openSel}`).count() === 1, 'the notebooks page has its Open link');
  if (!p.mode.subdomain) await page.screenshot({ path: join(shots, 'notebooks-page.png'), fullPage: true });
  check(p.problems.length === 0, `no CSP violations or page errors on the notebooks pages (${p.problems.join('; ')})`);
  return page;
}

// The Open link opens JupyterLab in a new tab (p.lab), at `landing` (the notebook's address:
// its path on Enclave's origin, or its own origin in subdomain mode); a cell runs there.
async function runCell(p, page, openSel, landing) {
  const [lab] = await Promise.all([p.context.waitForEvent('page'), page.click(openSel)]);
  p.lab = lab;
  watch(lab, p.labNotes);
  const refused = [];
  lab.on('response', (r) => {
    if (r.status() === 401) refused.push(new URL(r.url()).pathname);
  });
  await lab.waitForLoadState('domcontentloaded');
  const at = new URL(lab.url());
  check(at.origin === landing.origin && at.pathname.startsWith(landing.pathname),
    `Open leads to JupyterLab at ${at.origin}${landing.pathname}`);
  const card = lab.locator('.jp-LauncherCard[data-category="Notebook"]').first();
  await card.waitFor({ timeout: 120000 }).catch((e) => {
    if (!refused.length) throw e;
    throw new Error(`JupyterLab did not show its launcher: Enclave refused ${refused.length} of its requests with 401 `
      + `(e.g. ${[...new Set(refused)].slice(0, 4).join(', ')}), although the tab was signed in `
      + '(JupyterLab sends its own "Authorization: token …" header with each API request)');
  });
  check((await card.getAttribute('title') || await card.textContent() || '').includes('Python 3'),
    'JupyterLab loads and shows the launcher with Python 3');
  await card.click();
  const editor = lab.locator('.jp-Notebook .jp-Cell .cm-content').first();
  await editor.waitFor({ timeout: 60000 });
  await lab.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').first().waitFor({ timeout: 120000 })
    .catch(async () => {
      // Older layouts have no execution indicator; fall back on the kernel status text.
      await lab.waitForFunction(() => /Idle/.test(document.body.innerText), null, { timeout: 60000 });
    });
  check(true, 'a new notebook with an idle Python 3 kernel');
  await editor.click();
  await lab.keyboard.type('print(6 * 7, "from-enclave")');
  // Right after the kernel turns idle JupyterLab may drop a run request (seen once: the cell
  // advanced, nothing was sent); let it settle, and run the cell again if it did not start.
  await lab.waitForTimeout(1000);
  await lab.keyboard.press('Shift+Enter');
  const prompt = lab.locator('.jp-Notebook .jp-CodeCell').first().locator('.jp-InputPrompt');
  const ran = async () => /\[(\*|\d+)\]/.test((await prompt.textContent()) || '');
  for (let i = 0; i < 20 && !(await ran()); i++) await lab.waitForTimeout(500);
  if (!(await ran())) {
    console.log('# note: the first Shift+Enter did not run the cell; running it again');
    await lab.locator('.jp-Notebook .jp-CodeCell').first().locator('.cm-content').click();
    await lab.keyboard.press('Shift+Enter');
  }
  const out = lab.locator('.jp-OutputArea-output', { hasText: '42 from-enclave' }).first();
  await out.waitFor({ timeout: 60000 });
  check((await out.textContent()).includes('42 from-enclave'), 'the cell runs in the sandbox and its output shows');
  await lab.screenshot({ path: join(shots, p.mode.shot) });
  const pageToken = await lab.evaluate(() => {
    try {
      return JSON.parse(document.getElementById('jupyter-config-data')?.textContent || '{}').token || '';
    } catch { return ''; }
  });
  if (pageToken) console.log(`# WARNING: JupyterLab's page config carries Jupyter's server token (${pageToken.slice(0, 5)}…)`);
  return lab;
}

// Runs `fetch(url, {credentials: 'include'})` in `page`: what the page could read of it.
function fetchIn(page, url) {
  return page.evaluate(async (u) => {
    try {
      const r = await fetch(u, { credentials: 'include' });
      return { status: r.status, text: await r.text() };
    } catch (e) {
      return { error: String(e) };
    }
  }, url);
}

// Subdomain mode: the notebook's origin has its own cookie and not the session's, and its
// pages cannot read Enclave's API as the user.
async function isolation(p, page, lab, nbOrigin) {
  const { base } = p;
  const onNotebook = await p.context.cookies(nbOrigin);
  const onEnclave = await p.context.cookies(base);
  const nbCookie = onNotebook.find((c) => c.name === NOTEBOOK_COOKIE);
  const nbHost = new URL(nbOrigin).hostname;
  check(nbCookie && nbCookie.domain === nbHost && nbCookie.path === '/' && nbCookie.secure
    && nbCookie.httpOnly && nbCookie.sameSite === 'Lax',
  `the notebook's origin holds ${NOTEBOOK_COOKIE}, host-only for ${nbHost}, Secure, HttpOnly, SameSite=Lax`);
  check(!onNotebook.some((c) => c.name === SESSION_COOKIE), 'the session cookie is not sent to the notebook\'s origin');
  check(onEnclave.some((c) => c.name === SESSION_COOKIE) && !onEnclave.some((c) => c.name === NOTEBOOK_COOKIE),
    'Enclave\'s origin has the session cookie and not the notebook\'s');
  const sibling = `https://other--fraud.${DOMAIN}:${new URL(nbOrigin).port}`;
  check((await p.context.cookies(sibling)).length === 0, 'another notebook\'s origin gets neither cookie');

  // Enclave's own pages read whoami (the control); JupyterLab's page on the notebook's origin
  // cannot. Nor can a page there with CSP off (a second context with the same cookies and
  // bypassCSP), which leaves only the browser's cookie and CORS rules between it and the API:
  // its request must reach Enclave (its access log) without a session, and be refused.
  const whoami = `${base}/api/v1/whoami`;
  const mine = await fetchIn(page, '/api/v1/whoami');
  check(mine.status === 200 && JSON.parse(mine.text).user?.username === 'olivia',
    'on Enclave\'s origin the console reads whoami as olivia');
  const fromLab = await fetchIn(lab, whoami);
  check(!fromLab.text?.includes('olivia'),
    `JupyterLab's page cannot read olivia's whoami (${fromLab.error ?? `HTTP ${fromLab.status}`})`);
  const bare = await browser.newContext({
    ignoreHTTPSErrors: true, bypassCSP: true, storageState: await p.context.storageState(),
  });
  try {
    const probe = await bare.newPage();
    await probe.goto(`${nbOrigin}/_enclave/no-such-page`);
    const sent = [];
    probe.on('request', async (r) => {
      if (r.url() === whoami) sent.push(((await r.allHeaders().catch(() => ({}))).cookie) || '');
    });
    const logged = () => [...p.serverOut.matchAll(/method=GET path=\/api\/v1\/whoami status=(\d+)/g)].map((m) => m[1]);
    const before = logged().length;
    const fromProbe = await fetchIn(probe, whoami);
    for (let i = 0; i < 20 && logged().length === before; i++) await sleep(100);
    check(!fromProbe.text?.includes('olivia'),
      `a page on the notebook's origin with CSP off cannot read olivia's whoami either (${fromProbe.error ?? `HTTP ${fromProbe.status}`})`);
    const answered = logged().slice(before);
    check(answered.length === 1 && answered[0] === '401' && sent.length === 1 && !sent[0].includes(SESSION_COOKIE),
      `its request reached Enclave without the session cookie and was refused (HTTP ${answered.join(', ') || 'none'})`);
  } finally {
    await bare.close();
  }
}

// A browser without a session gets neither JupyterLab nor, in subdomain mode, anything on the
// notebook's origin but Enclave's page linking back to its entry.
async function strangers(p, nbOrigin) {
  const anon = await browser.newContext({ ignoreHTTPSErrors: true });
  const stranger = await anon.newPage();
  const entry = `${p.base}/p/fraud/nb/analysis/lab`;
  const direct = `${nbOrigin}/p/fraud/nb/analysis/lab`;
  watch(stranger, p.problems, (url, status) => status === 401 && (url === entry || url === direct));
  const resp = await stranger.goto(entry);
  const landed = new URL(stranger.url()).pathname;
  const html = await stranger.content();
  check((resp.status() === 401 || landed === '/login') && !html.includes('jupyter-config-data'),
    `a browser without a session gets ${resp.status() === 401 ? '401' : 'the login page'}, not JupyterLab`);
  if (p.mode.subdomain) {
    const there = await stranger.goto(direct);
    const page = await stranger.content();
    const back = await stranger.locator(`a[href="${entry}"]`).count();
    check(there.status() === 401 && !page.includes('jupyter-config-data') && back === 1,
      `on the notebook's origin it gets ${there.status()} and a link back to Enclave's entry, not JupyterLab`);
  }
  check(p.problems.length === 0, `no CSP violations or page errors on Enclave's pages (${p.problems.join('; ')})`);
  await anon.close();
}

// The cell is in the audit trail under olivia's name (and, in subdomain mode, the handoff).
async function audited(p, admin) {
  let rec;
  for (let i = 0; i < 20 && !rec; i++) {
    const page1 = await must(p, 'GET', '/api/v1/audit?action=notebook.execute&limit=100', admin, undefined, 200);
    rec = (page1.items || []).find((r) => String(r.detail?.code ?? '').includes('from-enclave'));
    if (!rec) await sleep(250);
  }
  check(rec, 'the audit trail records the cell\'s code (notebook.execute)');
  check(rec.actor === 'olivia', `the record's actor is olivia (${rec.actor})`);
  check(rec.resource === 'notebook:fraud/analysis', `the record names the notebook (${rec.resource})`);
  if (p.mode.subdomain) {
    const h = await must(p, 'GET', '/api/v1/audit?action=notebook.handoff&limit=100', admin, undefined, 200);
    check((h.items || []).some((r) => r.actor === 'olivia' && r.resource === 'notebook:fraud/analysis'),
      'the audit trail records olivia\'s handoff to the notebook\'s origin (notebook.handoff)');
  }
}

async function runPass(mode, indexUrl) {
  const root = mkdtempSync(join(tmpdir(), 'enclave-browser-nb-'));
  // Sandboxes run as other users and reach the project volumes under the data directory.
  chmodSync(root, 0o711);
  const p = {
    mode, root, dataDir: join(root, 'data'), server: undefined, serverOut: '', lab: undefined,
    problems: [], // on Enclave's pages: fail the test
    labNotes: [], // on JupyterLab's pages: logged only
  };
  current = p;
  const passStart = Date.now();
  console.log(`# pass: ${mode.title}`);
  const { api: apiBase, setupUrl } = await startServer(p, indexUrl);
  p.api = apiBase;
  // The browser reaches Enclave where its links point: the public URL in subdomain mode.
  p.base = new URL(setupUrl).origin;
  console.log(`# enclave ${p.api}${p.base === p.api ? '' : ` (the browser uses ${p.base})`}`);
  const admin = await setUp(p, setupUrl);
  p.context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  const openSel = 'a[href="/p/fraud/nb/analysis/lab"]';
  const page = await startNotebook(p, openSel);
  const port = new URL(p.base).port;
  const nbOrigin = `https://analysis--fraud.${DOMAIN}:${port}`;
  const landing = new URL(`${mode.subdomain ? nbOrigin : p.base}/p/fraud/nb/analysis/lab`);
  const lab = await runCell(p, page, openSel, landing);
  if (mode.subdomain) await isolation(p, page, lab, nbOrigin);
  if (p.labNotes.length) console.log(`# JupyterLab's pages logged (not failures):\n#   ${p.labNotes.join('\n#   ')}`);
  await strangers(p, nbOrigin);
  await audited(p, admin);
  console.log(`# pass ${mode.title} took ${seconds(passStart)}s`);
}

async function stopServer(p) {
  const { server } = p;
  if (!server || server.exited) return;
  const gone = new Promise((r) => server.once('exit', r));
  server.kill('SIGTERM');
  const t = await Promise.race([gone.then(() => true), sleep(60000).then(() => false)]);
  if (!t) {
    console.error('# server did not stop in 60s after SIGTERM; killing it');
    server.kill('SIGKILL');
    await Promise.race([gone, sleep(5000)]);
  }
}

async function endPass(p) {
  if (p.context) await p.context.close().catch(() => {});
  await stopServer(p).catch(() => {});
  try {
    rmSync(p.root, { recursive: true, force: true });
  } catch (e) {
    console.error(`# could not remove ${p.root}: ${e.message}`);
  }
}

let failed = false;
try {
  const indexUrl = await startIndex();
  console.log(`# package index ${indexUrl}`);
  browser = await launchChromium();
  for (const mode of PASSES.filter((m) => !only || m.id === only)) {
    await runPass(mode, indexUrl);
    await endPass(current);
    current = undefined;
  }
  console.log(`notebook browser test passed in ${seconds(started)}s`);
} catch (e) {
  failed = true;
  console.error(e);
  const p = current;
  if (p) {
    console.error(`# failed in the ${p.mode.title} pass`);
    if (p.lab) {
      const shot = join(shots, p.mode.shot.replace('.png', '-failure.png'));
      await p.lab.screenshot({ path: shot }).catch(() => {});
      console.error(`# JupyterLab's tab at failure: ${shot}`);
    }
    if (p.problems.length) console.error(`problems on Enclave's pages:\n${p.problems.join('\n')}`);
    if (p.labNotes.length) console.error(`notes from JupyterLab's pages:\n${p.labNotes.join('\n')}`);
    writeFileSync(join(shots, p.mode.log), p.serverOut);
    console.error(`--- server log (tail; all of it in ${join(shots, p.mode.log)}) ---\n${p.serverOut.slice(-6000)}`);
    await endPass(p);
  }
  if (pypiOut && !process.env.ENCLAVE_TEST_INDEX_URL) console.error(`--- pypi-server log (tail) ---\n${pypiOut.slice(-2000)}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  if (pypi) pypi.kill('SIGKILL');
}
process.exit(failed ? 1 : 0);
