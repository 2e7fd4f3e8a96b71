// What the browser tests share: checks, a free loopback port, Chromium, an Enclave server
// started on a fresh data directory, and the CLI. Only loopback addresses are used.
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { chromium } from 'playwright-core';

/** Throws with `what` unless `cond`; prints `ok - what` otherwise. */
export function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}

/** A free port on 127.0.0.1, for a server whose address must be known before it starts. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Debian's Chromium, headless, with nothing that reaches the network by itself. */
export function launchChromium() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/**
 * Starts `bin serve` on `dataDir` listening on `listen` (default a free port) with extra
 * environment `env`; resolves with the child process, the address it listens on and the
 * one-time setup URL it printed.
 */
export function startEnclave({ bin, dataDir, listen = '127.0.0.1:0', env = {} }) {
  return new Promise((resolve, reject) => {
    const server = spawn(bin, ['serve', '--data-dir', dataDir, '--listen', listen], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        ENCLAVE_CONFIG: '',
        ENCLAVE_NOTEBOOKS_BUILD_ON_START: 'false',
        ENCLAVE_NOTEBOOKS_INDEX_URL: 'http://127.0.0.1:9/simple/',
        ...env,
      },
    });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 60000);
    server.stdout.on('data', (d) => {
      out += d.toString();
      const base = out.match(/Enclave listening on (https:\/\/[0-9.:]+)/);
      const setup = out.match(/(https:\/\/\S+\/setup\?token=\S+)/);
      if (base && setup) {
        clearTimeout(timer);
        resolve({ server, base: base[1], setupUrl: setup[1] });
      }
    });
    server.stderr.on('data', () => {});
    server.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${out}`)));
  });
}

/** A function running the CLI with its own config directory; it throws unless it exits 0. */
export function cliIn(bin, configDir) {
  return (args, input) => {
    const r = spawnSync(bin, args, {
      input: input ?? '',
      env: { ...process.env, ENCLAVE_CONFIG_DIR: configDir },
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`enclave ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  };
}
