// Fixtures of the console's browser tests: the real binary, a local sink,
// headless Chromium (the Debian package) driven by playwright-core, and
// axe-core. Everything listens on 127.0.0.1.

import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = join(HERE, '..', '..');
export const BIN = process.env.QSTASH_BIN || join(REPO, 'target', 'debug', 'qstash');
export const SHOTS = process.env.CONSOLE_SCREENSHOTS || join(REPO, 'target', 'console-screenshots');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export const DEV_TOKENS = {
  defaultUser: 'eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0=',
  testUser1: 'eyJVc2VySUQiOiJ0ZXN0VXNlcjEiLCJQYXNzd29yZCI6InRlc3RQYXNzd29yZCJ9',
};

/** Starts `qstash <mode> --port 0 --data-dir <tmp>`; resolves when it prints its URL. */
/**
 * With QSTASH_TEST_BACKEND=postgres (as the Rust suites), the server keeps
 * its data in a schema of its own at QSTASH_TEST_DATABASE_URL.
 */
function backendArgs(dataDir) {
  if ((process.env.QSTASH_TEST_BACKEND || '').toLowerCase() !== 'postgres') return [];
  const base = process.env.QSTASH_TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
  const prefix = process.env.QSTASH_TEST_SCHEMA_PREFIX || 'qt_';
  const schema = `${prefix}c_${dataDir.replace(/[^A-Za-z0-9]/g, '').slice(-12).toLowerCase()}`;
  return ['--database-url', `${base}${base.includes('?') ? '&' : '?'}options=-csearch_path%3D${schema}`];
}

export function startServer(mode = 'dev', { env = {}, args = [] } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'qstash-console-'));
  const argv = [mode, '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, ...backendArgs(dataDir), ...args];
  const child = spawn(BIN, argv, {
    env: { ...process.env, RUST_LOG: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`qstash ${mode} did not start: ${out}`)), 20000);
    child.on('exit', (code) => reject(new Error(`qstash ${mode} exited with ${code}: ${out}`)));
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/running at (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1],
          stop: () => {
            child.kill('SIGKILL');
            rmSync(dataDir, { recursive: true, force: true });
          },
        });
      }
    });
  });
}

/**
 * A destination: `/ok/...` answers 200, `/fail/...` 500, `/flaky/<name>`
 * 500 while `<name>` is in `failing`. Counts hits per path.
 */
export function startSink() {
  const hits = new Map();
  const failing = new Set();
  const server = createServer((req, res) => {
    const path = req.url.split('?')[0];
    req.resume();
    req.on('end', () => {
      hits.set(path, (hits.get(path) || 0) + 1);
      const flaky = path.startsWith('/flaky/') && failing.has(path.slice('/flaky/'.length));
      const bad = path.startsWith('/fail') || flaky;
      res.writeHead(bad ? 500 : 200, { 'Content-Type': 'text/plain', 'X-Sink': 'console-test' });
      res.end(bad ? 'the sink says no' : 'ok');
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({
        url: `http://127.0.0.1:${port}`,
        hits: (path) => hits.get(path) || 0,
        failing,
        stop: () => new Promise((r) => server.close(r)),
      });
    });
  });
}

export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/**
 * Runs axe-core (WCAG 2.0/2.1 A and AA, and best practices) on the page
 * and answers its violations, one line each. The script is evaluated over
 * the DevTools protocol, so the console's strict CSP stays on.
 */
export async function axe(page) {
  await page.evaluate(`${AXE}\n;0`);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
    });
    return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
  });
  return violations;
}

export function shotPath(name) {
  mkdirSync(SHOTS, { recursive: true });
  return join(SHOTS, `${name}.png`);
}

/** Collects page errors and console errors (CSP violations show there). */
export function watchErrors(page, allowed = []) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    if (!allowed.some((re) => re.test(text))) errors.push(`console: ${text}`);
  });
  return errors;
}
