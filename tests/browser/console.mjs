// Browser test of the web console: a real Enclave server, the real CLI, and Debian's Chromium
// driven by playwright-core. Follows the README's first-run story: the first admin is created
// through the setup URL in the browser; a user, a group and a project are created from the CLI;
// the browser then shows them. Then governance: a project owner approves a support request in
// the browser, sees the access banner, explains decisions and gets a policy's error by line and
// column. Then audit: the owner sees who accessed her work; a security auditor filters the
// trail, copies the public key and verifies the trail. Fails on any Content-Security-Policy violation or page error.
//
// Usage: node tests/browser/console.mjs path/to/enclave
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { check, cliIn, launchChromium, startEnclave } from './harness.mjs';

const bin = process.argv[2];
if (!bin) {
  console.error('usage: node console.mjs ENCLAVE_BINARY');
  process.exit(2);
}
const root = mkdtempSync(join(tmpdir(), 'enclave-browser-'));
const dataDir = join(root, 'data');
const configDir = join(root, 'cli');
const shots = join(process.cwd(), 'target', 'browser');
mkdirSync(shots, { recursive: true });
const PASSWORD = 'Amber-Valley-Kestrel-314';
const OLIVIA = 'Lumen-Orchard-Basalt-2718';
const ARIA = 'Cobalt-Meadow-Ferry-4471';

let server;
let browser;
const problems = [];

const cli = cliIn(bin, configDir);

async function main() {
  let base;
  let setupUrl;
  ({ server, base, setupUrl } = await startEnclave({ bin, dataDir }));
  browser = await launchChromium();
  // The server's certificate is self-signed; the CLI below verifies it with --ca.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));

  // 1. First admin through the one-time setup URL.
  await page.goto(setupUrl);
  await page.fill('#username', 'admin');
  await page.fill('#password', PASSWORD);
  await page.fill('#repeat', PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  check(new URL(page.url()).pathname === '/', 'setup logs the new admin in and opens the dashboard');
  await page.screenshot({ path: join(shots, 'dashboard-empty.png'), fullPage: true });

  // 2. A user, a group and a project from the CLI.
  const ca = join(dataDir, 'tls', 'cert.pem');
  cli(['login', '--server', base, '--username', 'admin', '--password-stdin', '--ca', ca], PASSWORD);
  cli(['users', 'create', 'dana', '--password-stdin', '--display-name', 'Dana Scully'], 'Fox-Trot-Mulder-Files-1013');
  cli(['groups', 'create', 'analysts', '--description', 'Risk analysts']);
  cli(['groups', 'add-member', 'analysts', 'dana']);
  cli(['projects', 'create', 'fraud-detection', '--description', 'Card fraud models']);
  cli(['projects', 'set-member', 'fraud-detection', 'dana', '--role', 'member']);

  // 3. The browser shows them.
  await page.goto(`${base}/`);
  check((await page.content()).includes('fraud-detection'), 'dashboard lists the project made by the CLI');
  await page.click('a[href="/projects/fraud-detection"]');
  const project = await page.content();
  check(project.includes('dana') && project.includes('member'), 'project page lists the member and role');
  await page.screenshot({ path: join(shots, 'project.png'), fullPage: true });
  await page.goto(`${base}/admin/users`);
  check((await page.content()).includes('Dana Scully'), 'users page lists the CLI-created user');
  await page.goto(`${base}/admin/groups`);
  check((await page.content()).includes('analysts'), 'groups page lists the CLI-created group');
  await page.screenshot({ path: join(shots, 'groups.png'), fullPage: true });

  // 4. The stylesheet applied (same origin, allowed by the CSP).
  const bg = await page.evaluate(() => getComputedStyle(document.body).fontFamily);
  check(bg && bg.length > 0, 'stylesheet applied');

  // 5. Logout ends the session.
  await Promise.all([page.waitForNavigation(), page.click('form[action="/logout"] button')]);
  await page.goto(`${base}/`);
  check(new URL(page.url()).pathname === '/login', 'after logout the dashboard redirects to login');

  // 6. The member logs in and sees only her project, no admin pages.
  await page.fill('#username', 'dana');
  await page.fill('#password', 'Fox-Trot-Mulder-Files-1013');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  check((await page.content()).includes('fraud-detection'), 'member sees her project');
  check(problems.length === 0, `no CSP violations or page errors (${problems.join('; ')})`);
  const resp = await page.goto(`${base}/admin/users`);
  check(resp.status() === 403, 'member gets 403 on the users page');
  await page.screenshot({ path: join(shots, 'forbidden.png'), fullPage: true });

  problems.length = 0; // the 403 page above logs its status in the console, as it should

  // 7. Governance: the admin asks for support access from the CLI; a project owner sees the
  // request on the project page, approves it, and everyone sees the banner; then she explains
  // decisions and writes a policy with a mistake, which the page points at by line and column.
  cli(['users', 'create', 'olivia', '--password-stdin'], OLIVIA);
  cli(['projects', 'set-member', 'fraud-detection', 'olivia', '--role', 'owner']);
  cli(['grants', 'request', '--project', 'fraud-detection', '--role', 'support',
    '--reason', 'ticket 4411: kernel crash', '--duration', '2h']);
  await page.goto(`${base}/`);
  await Promise.all([page.waitForNavigation(), page.click('form[action="/logout"] button')]);
  await page.fill('#username', 'olivia');
  await page.fill('#password', OLIVIA);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await page.click('a[href="/projects/fraud-detection"]');
  const grants = await page.textContent('#grants-table');
  check(grants.includes('ticket 4411: kernel crash') && grants.includes('pending'),
    'the owner sees the pending support request with its reason');
  check(await page.locator('.banner-access').count() === 0, 'no access banner while pending');
  await Promise.all([page.waitForNavigation(), page.click('form[action$="/approve"] button')]);
  const banner = await page.textContent('.banner-access');
  check(banner.includes("admin's support access is active until") && banner.includes('ticket 4411'),
    'after approval the project page shows the active access banner');
  await page.screenshot({ path: join(shots, 'project-grants.png'), fullPage: true });

  await Promise.all([page.waitForNavigation(), page.click('text=Explain a decision in this project')]);
  check(new URL(page.url()).pathname === '/policy/check', 'the project page links to explain');
  await page.fill('#c-principal', 'dana');
  await page.selectOption('#c-action', 'secret.read_value');
  await page.fill('#c-resource', 'secret:fraud-detection/db');
  await Promise.all([page.waitForNavigation(), page.click('form[action="/policy/check"] button[type=submit]')]);
  check((await page.textContent('#decision .verdict')).trim() === 'ALLOW', 'explain: a member may read secret values');
  check((await page.textContent('#decision')).includes('builtin.data_scientist'), 'explain names the deciding policy');
  await page.selectOption('#c-action', 'project.delete');
  await page.fill('#c-resource', 'project:fraud-detection');
  await Promise.all([page.waitForNavigation(), page.click('form[action="/policy/check"] button[type=submit]')]);
  check((await page.textContent('#decision .verdict')).trim() === 'DENY', 'explain: a member may not delete the project');
  await page.screenshot({ path: join(shots, 'explain.png'), fullPage: true });

  await page.goto(`${base}/projects/fraud-detection/policies/new`);
  await page.fill('#pol-name', 'broken');
  await page.fill('#pol-body', 'permit (principal, action, resource)\nwhen { resource.nosuch == 1 };');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]:has-text("Create policy")')]);
  const err = await page.textContent('#pol-body-error');
  check(/line 2, column \d+/.test(err), 'an invalid policy is refused with its line and column');
  check((await page.inputValue('#pol-body')).includes('resource.nosuch'), 'the text is kept for fixing');
  await page.screenshot({ path: join(shots, 'policy-error.png'), fullPage: true });
  // The refused form answered 400, which Chromium logs; anything else is a problem.
  const unexpected = problems.filter((p) => !p.includes('status of 400 (Bad Request)'));
  check(unexpected.length === 0, `no CSP violations or page errors on the governance pages (${unexpected.join('; ')})`);
  problems.length = 0;

  // 7b. Secrets: the owner stores a database password through the form; it is listed with
  // its description and version, and neither the page nor the form shows the value again.
  const DBPW = 'Birch-Lagoon-Saffron-5150';
  await page.goto(`${base}/projects/fraud-detection`);
  await Promise.all([page.waitForNavigation(), page.click('#secrets-link')]);
  await page.fill('#s-name', 'DB_PASSWORD');
  await page.fill('#s-description', 'warehouse login');
  await page.fill('#s-value', DBPW);
  await Promise.all([page.waitForNavigation(), page.click('#add-secret button[type=submit]')]);
  check((await page.textContent('#versions-table')).includes('v1'), 'the new secret shows its first version');
  check(!(await page.content()).includes(DBPW), 'the value is not shown after saving');
  await Promise.all([page.waitForNavigation(), page.click('.crumbs a[href$="/secrets"]')]);
  const secrets = await page.textContent('#secrets-table');
  check(secrets.includes('DB_PASSWORD') && secrets.includes('warehouse login'), 'the secret is listed with its description');
  check(!(await page.content()).includes(DBPW) && (await page.inputValue('#s-value')) === '',
    'neither the list nor the form carries the value');
  await page.screenshot({ path: join(shots, 'secrets.png'), fullPage: true });
  check(problems.length === 0, `no CSP violations or page errors on the secrets pages (${problems.join('; ')})`);

  // 8. Audit: the owner sees her own records and who outside the project acted in it; a security auditor, who
  // holds no project, finds the audit pages in the nav, filters the trail, copies the public
  // key and verifies the trail.
  await Promise.all([page.waitForNavigation(), page.click('nav.nav a[href="/audit"]')]);
  const own = await page.textContent('#audit-records');
  check(own.includes('grant.approve') && !own.includes('grant.request'),
    'the owner finds her own approval in the audit trail, and only her own records');
  await Promise.all([page.waitForNavigation(), page.click('a[href="/audit/my-work"]')]);
  // The admin created the project, so is a member: nobody outside it has acted there.
  check((await page.textContent('main')).includes("Nobody outside your projects' members"),
    '"who accessed my work" lists no outside access in a project without any');
  cli(['users', 'create', 'aria', '--password-stdin'], ARIA);
  cli(['roles', 'bind', 'security_auditor', '--user', 'aria']);
  await Promise.all([page.waitForNavigation(), page.click('form[action="/logout"] button')]);
  await page.fill('#username', 'aria');
  await page.fill('#password', ARIA);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  await Promise.all([page.waitForNavigation(), page.click('nav.nav a[href="/audit"]')]);
  check((await page.textContent('#audit-scope')).includes('every record'), 'the auditor sees every record');
  await page.fill('#a-actor', 'olivia');
  await page.fill('#a-action', 'grant.approve');
  await Promise.all([page.waitForNavigation(), page.click('#audit-filter button[type=submit]')]);
  const rows = await page.textContent('#audit-records');
  check(rows.includes('grant.approve') && rows.includes('olivia') && !rows.includes('grant.request'),
    "the auditor finds the owner's approval by actor and action");
  await page.screenshot({ path: join(shots, 'audit.png'), fullPage: true });
  await Promise.all([page.waitForNavigation(), page.click('a[href="/audit/key"]')]);
  check((await page.textContent('#public-key')).trim().length > 40, 'the key page shows the public key');
  check((await page.inputValue('#key-json')).includes('latest_checkpoint'), 'key and checkpoint ready to copy');
  await Promise.all([page.waitForNavigation(), page.click('form[action="/audit/verify"] button')]);
  check((await page.textContent('#verdict')).includes('Intact'), 'verifying the stored trail says it is intact');
  await page.screenshot({ path: join(shots, 'audit-key.png'), fullPage: true });
  check(problems.length === 0, `no CSP violations or page errors on the audit pages (${problems.join('; ')})`);
}

let failed = false;
try {
  await main();
  console.log('browser test passed');
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
