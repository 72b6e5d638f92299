import { randomBytes } from "node:crypto";
// Shared helpers for the JS SDK compatibility suite (node:test, Node 20).
// All traffic stays on 127.0.0.1: a `qstash dev` server per test file, and a local sink.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, openSync, closeSync, readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Client, Receiver } from "@upstash/qstash";

// Never let the SDK switch to its own dev mode / regions / env credentials.
for (const k of [
  "QSTASH_DEV",
  "QSTASH_DEV_PORT",
  "QSTASH_REGION",
  "QSTASH_URL",
  "QSTASH_TOKEN",
  "QSTASH_CURRENT_SIGNING_KEY",
  "QSTASH_NEXT_SIGNING_KEY",
  "UPSTASH_DISABLE_TELEMETRY",
]) {
  delete process.env[k];
}

// The SDK logs every non-2xx answer with console.error/warn; the suite provokes many on purpose.
// Drop those lines only (QSTASH_COMPAT_VERBOSE=1 keeps them).
if (!process.env.QSTASH_COMPAT_VERBOSE) {
  for (const level of ["error", "warn"]) {
    const orig = console[level].bind(console);
    console[level] = (...args) => {
      if (typeof args[0] === "string" && args[0].startsWith("[Upstash QStash]")) return;
      orig(...args);
    };
  }
}

// WIRE.md section 11.
export const USERS = {
  default: {
    token: "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0=",
    current: "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r",
    next: "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs",
  },
  user1: {
    token: "eyJVc2VySUQiOiJ0ZXN0VXNlcjEiLCJQYXNzd29yZCI6InRlc3RQYXNzd29yZCJ9",
    current: "sig_7GVPjvuwsfqF65iC8fSrs1dfYruM",
    next: "sig_5NoELc3EFnZn4DVS5bDs2Nk4b7Ua",
  },
  user2: {
    token: "eyJVc2VySUQiOiJ0ZXN0VXNlcjIiLCJQYXNzd29yZCI6InRlc3RQYXNzd29yZCJ9",
    current: "sig_6jWGaWRxHsw4vMSPJprXadyvrybF",
    next: "sig_7qHbvhmahe5GwfePDiS5Lg3pi6Qx",
  },
  user3: {
    token: "eyJVc2VySUQiOiJ0ZXN0VXNlcjMiLCJQYXNzd29yZCI6InRlc3RQYXNzd29yZCJ9",
    current: "sig_5T8FcSsynBjn9mMLBsXhpacRovJf",
    next: "sig_7GFR4YaDshFcqsxWRZpRB161jguD",
  },
};

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, "..", "..", "..");
export const QSTASH_BIN = process.env.QSTASH_BIN || path.join(REPO_ROOT, "target", "debug", "qstash");

export const uid = () => randomUUID().replace(/-/g, "").slice(0, 16);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

async function freePortPair() {
  for (let i = 0; i < 200; i++) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.once("error", reject);
      s.listen(0, "127.0.0.1", () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    if (port < 65535 && (await portFree(port + 1))) return port;
  }
  throw new Error("no two consecutive free ports");
}

/**
 * With QSTASH_TEST_BACKEND=postgres, the server's database: QSTASH_TEST_DATABASE_URL (default the local
 * server) with a schema of its own, so suites run in parallel (the server creates the schema).
 */
function databaseEnv() {
  if ((process.env.QSTASH_TEST_BACKEND || "").toLowerCase() !== "postgres") return {};
  const base = process.env.QSTASH_TEST_DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres";
  const prefix = process.env.QSTASH_TEST_SCHEMA_PREFIX || "qt_";
  const schema = `${prefix}js_${randomBytes(6).toString("hex")}`;
  const sep = base.includes("?") ? "&" : "?";
  return { QSTASH_DATABASE_URL: `${base}${sep}options=-csearch_path%3D${schema}` };
}

/** Start `$QSTASH_BIN dev --port P --data-dir D`; resolves once GET /v2/keys answers 200. */
export async function startServer({ timeoutMs = 20000, args = [] } = {}) {
  if (!existsSync(QSTASH_BIN)) {
    throw new Error(`qstash server binary not found at ${QSTASH_BIN} (set QSTASH_BIN or build it first)`);
  }
  const port = await freePortPair();
  const tmp = mkdtempSync(path.join(tmpdir(), "qstash-compat-js-"));
  const logPath = path.join(tmp, "server.log");
  const logFd = openSync(logPath, "w");
  const dataDir = path.join(tmp, "data");
  const proc = spawn(QSTASH_BIN, ["dev", "--port", String(port), "--data-dir", dataDir, ...args], {
    stdio: ["ignore", logFd, logFd],
    env: { RUST_LOG: "info", ...process.env, ...databaseEnv() },
  });
  closeSync(logFd);
  let exited = null;
  proc.on("exit", (code, signal) => {
    exited = { code, signal };
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  const logTail = () => {
    try {
      return readFileSync(logPath, "utf8").slice(-4000);
    } catch {
      return "<no log>";
    }
  };
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`qstash dev exited early (${JSON.stringify(exited)}):\n${logTail()}`);
    try {
      const r = await fetch(`${baseUrl}/v2/keys`, {
        headers: { Authorization: `Bearer ${USERS.default.token}` },
        signal: AbortSignal.timeout(1000),
      });
      last = r.status;
      await r.arrayBuffer();
      if (r.status === 200) {
        return {
          port,
          baseUrl,
          logTail,
          async stop() {
            if (!exited) {
              const done = new Promise((res) => proc.once("exit", res));
              proc.kill("SIGTERM");
              const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
              await done;
              clearTimeout(t);
            }
            if (!process.env.QSTASH_COMPAT_KEEP_TMP) rmSync(tmp, { recursive: true, force: true });
          },
        };
      }
    } catch (e) {
      last = String(e);
    }
    await sleep(100);
  }
  proc.kill("SIGKILL");
  throw new Error(`qstash dev did not answer GET /v2/keys with 200 within ${timeoutMs} ms (last: ${last})`);
}

/**
 * A local HTTP sink that records every request. `script(path, replies)` makes the next
 * requests on `path` (path part only) answer with the given replies, in order; afterwards
 * (and for unscripted paths) it answers 200 "ok".
 * A reply is { status, headers?, body?, delayMs? }.
 */
export async function startSink() {
  const records = [];
  const scripts = new Map();
  const waiters = new Set();
  const server = http.createServer((req, res) => {
    const t = Date.now();
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const u = new URL(req.url, "http://x");
      const rec = {
        method: req.method,
        target: req.url,
        path: u.pathname,
        query: u.search,
        headers: req.headers, // lower-cased names
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks),
        t,
      };
      records.push(rec);
      for (const w of waiters) w();
      const script = scripts.get(u.pathname);
      const reply = (script && script.shift()) || { status: 200 };
      const send = () => {
        if (res.destroyed) return;
        try {
          res.writeHead(reply.status ?? 200, reply.headers ?? {});
          res.end(reply.body ?? "ok");
        } catch {
          /* client went away */
        }
      };
      if (reply.delayMs) setTimeout(send, reply.delayMs);
      else send();
    });
  });
  server.on("clientError", () => {});
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const port = server.address().port;
  const requests = (p) => records.filter((r) => r.path === p);
  return {
    port,
    records,
    url: (p) => `http://127.0.0.1:${port}${p}`,
    script: (p, replies) => scripts.set(p, [...replies]),
    requests,
    /** Resolve with the requests on `p` once there are at least `n`; reject after timeoutMs. */
    waitFor(p, n = 1, timeoutMs = 10000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const got = requests(p);
          if (got.length >= n) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(got);
            return true;
          }
          return false;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`sink: expected >= ${n} request(s) on ${p} within ${timeoutMs} ms, got ${requests(p).length}`));
        }, timeoutMs);
        if (!check()) waiters.add(check);
      });
    },
    close: () =>
      new Promise((r) => {
        server.closeAllConnections?.();
        server.close(() => r());
      }),
  };
}

export function makeClient(server, user = USERS.default, extra = {}) {
  return new Client({ baseUrl: server.baseUrl, token: user.token, devMode: false, retry: false, ...extra });
}

export function makeReceiver(user = USERS.default) {
  return new Receiver({ currentSigningKey: user.current, nextSigningKey: user.next, devMode: false });
}

/** Await a promise that must reject with a QstashError carrying `status`. */
export async function expectStatus(promise, status) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  if (!err) throw new Error(`expected a rejection with status ${status}, but the call succeeded`);
  if (err.status !== status) {
    throw new Error(`expected status ${status}, got ${err.status} (${err.name}: ${err.message})`);
  }
  return err;
}

export async function waitUntil(pred, timeoutMs, what = "condition") {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** True once messages.get(id) rejects with 404. */
export async function isGone(client, id) {
  try {
    await client.messages.get(id);
    return false;
  } catch (e) {
    if (e.status !== 404) throw e;
    return true;
  }
}
