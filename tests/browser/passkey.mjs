// Browser test of passkeys: a real Enclave server whose public URL is https://localhost:PORT,
// and Debian's Chromium (playwright-core) with a virtual WebAuthn authenticator attached over
// the DevTools protocol, so the real browser ceremonies run: navigator.credentials.create on
// the account's MFA page, then navigator.credentials.get as the second step of a password login.
// Fails on any Content-Security-Policy violation or page error. Screenshots in target/browser/.
//
// Usage: node tests/browser/passkey.mjs path/to/enclave
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { check, cliIn, freePort, launchChromium, startEnclave } from './harness.mjs';

const bin = process.argv[2];
if (!bin) {
  console.error('usage: node passkey.mjs ENCLAVE_BINARY');
  process.exit(2);
}
const root = mkdtempSync(join(tmpdir(), 'enclave-passkey-'));
const dataDir = join(root, 'data');
const configDir = join(root, 'cli');
const shots = join(process.cwd(), 'target', 'browser');
mkdirSync(shots, { recursive: true });
const PASSWORD = 'Amber-Valley-Kestrel-314';
const DANA = 'Fox-Trot-Mulder-Files-1013';

let server;
let browser;
const problems = [];

const cli = cliIn(bin, configDir);

async function login(page, base, username, password) {
  await page.goto(`${base}/login`);
  await page.fill('#username', username);
  await page.fill('#password', password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
}

async function main() {
  const port = await freePort();
  const base = `https://localhost:${port}`;
  let setupUrl;
  ({ server, setupUrl } = await startEnclave({
    bin,
    dataDir,
    listen: `127.0.0.1:${port}`,
    env: { ENCLAVE_PUBLIC_URL: base },
  }));
  check(setupUrl.startsWith(base), 'the setup link uses the public URL');
  browser = await launchChromium();
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));

  // A virtual platform authenticator (CTAP2, resident keys, user verification), which the
  // browser uses for navigator.credentials like a real one, answering without a touch.
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });

  // The first admin, then a data scientist with a password.
  await page.goto(setupUrl);
  await page.fill('#username', 'admin');
  await page.fill('#password', PASSWORD);
  await page.fill('#repeat', PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  const ca = join(dataDir, 'tls', 'cert.pem');
  cli(['login', '--server', `https://127.0.0.1:${port}`, '--username', 'admin', '--password-stdin', '--ca', ca], PASSWORD);
  cli(['users', 'create', 'dana', '--password-stdin'], DANA);
  await Promise.all([page.waitForNavigation(), page.click('form[action="/logout"] button')]);

  // Dana adds a passkey: name and password, then the browser creates it.
  await login(page, base, 'dana', DANA);
  await page.goto(`${base}/account/mfa`);
  check((await page.textContent('main')).includes('You have no passkeys.'), 'the MFA page lists no passkeys yet');
  await page.fill('#p-name', 'laptop');
  await page.fill('#p-password', DANA);
  await Promise.all([page.waitForNavigation(), page.click('form[action="/account/mfa/passkeys/begin"] button[type=submit]')]);
  check(await page.isVisible('#passkey-create'), 'after the password the page offers to create the passkey');
  await Promise.all([page.waitForNavigation(), page.click('#passkey-create')]);
  let main = await page.textContent('main');
  check(main.includes('The passkey is added.'), "the browser's new passkey is accepted");
  check(main.includes('Recovery codes') && (await page.locator('ul.mono li').count()) === 10,
    'the first second factor shows the ten recovery codes once');
  check(main.includes('laptop') && main.includes('never'), 'the passkey is listed, not used yet');
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  check(credentials.length === 1 && credentials[0].rpId === 'localhost', 'the authenticator holds one credential for localhost');
  await page.screenshot({ path: join(shots, 'passkey-added.png'), fullPage: true });

  // Signing in again: the password, then the passkey.
  await Promise.all([page.waitForNavigation(), page.click('form[action="/logout"] button')]);
  await login(page, base, 'dana', DANA);
  check(await page.isVisible('#passkey-get'), 'after the password the second step offers the passkey');
  await page.screenshot({ path: join(shots, 'passkey-login.png'), fullPage: true });
  await Promise.all([page.waitForNavigation(), page.click('#passkey-get')]);
  check(new URL(page.url()).pathname === '/', 'the passkey finishes the login and opens the dashboard');
  await page.goto(`${base}/account/mfa`);
  main = await page.textContent('main');
  check(!main.includes('never'), 'the passkey shows when it was last used');
  const after = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  check(after.credentials[0].signCount >= 1, 'the authenticator signed with its counter');

  // An administrator's users page shows dana's second factor.
  await Promise.all([page.waitForNavigation(), page.click('form[action="/logout"] button')]);
  await login(page, base, 'admin', PASSWORD);
  await page.goto(`${base}/admin/users`);
  const danaRow = await page.textContent('tr:has-text("dana")');
  check(danaRow.includes('1 passkey'), "the users page shows dana's passkey");

  // The audit trail has the passkey's addition and the login it finished.
  const trail = cli(['audit', 'search', '--actor', 'dana', '--limit', '50', '--output', 'json']);
  check(trail.includes('mfa.passkey.add') && trail.includes('pwd hwk mfa'),
    'the trail records the passkey and the session opened with it');
  check(problems.length === 0, `no CSP violations or page errors (${problems.join('; ')})`);
}

let failed = false;
try {
  await main();
  console.log('passkey browser test passed');
} catch (e) {
  failed = true;
  console.error(e);
  if (problems.length) console.error(problems.join('\n'));
} finally {
  if (browser) await browser.close().catch(() => {});
  if (server) server.kill('SIGTERM');
  rmSync(root, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
