// Helpers of the Upstash Workflow suite (node:test, Node 20): a real `qstash dev` server per test
// file, and a workflow app (`@upstash/workflow`'s serve() on node:http). Only 127.0.0.1 is used.
import { spawn, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, openSync, closeSync, readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Client as QStashClient, Receiver } from "@upstash/qstash";
import { Client as WorkflowClient, serve } from "@upstash/workflow";

for (const k of ["QSTASH_DEV", "QSTASH_REGION", "QSTASH_URL", "QSTASH_TOKEN", "QSTASH_CURRENT_SIGNING_KEY",
  "QSTASH_NEXT_SIGNING_KEY", "UPSTASH_WORKFLOW_URL"]) {
  delete process.env[k];
}

// The dev user (shared/spec/WIRE.md section 11).
export const USER = {
  token: "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0=",
  current: "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r",
  next: "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs",
};

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, "..", "..", "..");
export const QSTASH_BIN = process.env.QSTASH_BIN || path.join(REPO_ROOT, "target", "debug", "qstash");
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  return await new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

function databaseEnv() {
  if ((process.env.QSTASH_TEST_BACKEND || "").toLowerCase() !== "postgres") return {};
  const base = process.env.QSTASH_TEST_DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres";
  const prefix = process.env.QSTASH_TEST_SCHEMA_PREFIX || "qt_";
  const schema = `${prefix}wf_${randomBytes(6).toString("hex")}`;
  const sep = base.includes("?") ? "&" : "?";
  return { QSTASH_DATABASE_URL: `${base}${sep}options=-csearch_path%3D${schema}` };
}

/**
 * Starts `qstash dev` on a free port; `restart()` starts it again on the same port, data directory
 * and database (after `kill9()` or `stop()`).
 */
export async function startServer() {
  if (!existsSync(QSTASH_BIN)) throw new Error(`qstash binary not found at ${QSTASH_BIN}`);
  const port = await freePort();
  const tmp = mkdtempSync(path.join(tmpdir(), "qstash-workflow-js-"));
  const logPath = path.join(tmp, "server.log");
  const dataDir = path.join(tmp, "data");
  const env = { RUST_LOG: "info", ...process.env, ...databaseEnv() };
  const baseUrl = `http://127.0.0.1:${port}`;
  let proc;
  let exited = null;
  const logTail = () => {
    try {
      return readFileSync(logPath, "utf8").slice(-4000);
    } catch {
      return "<no log>";
    }
  };
  const launch = async () => {
    const logFd = openSync(logPath, "a");
    exited = null;
    proc = spawn(QSTASH_BIN, ["dev", "--port", String(port), "--data-dir", dataDir], {
      stdio: ["ignore", logFd, logFd],
      env,
    });
    closeSync(logFd);
    proc.on("exit", (code, signal) => {
      exited = { code, signal };
    });
    const deadline = Date.now() + 20000;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`qstash dev exited early (${JSON.stringify(exited)}):\n${logTail()}`);
      try {
        const r = await fetch(`${baseUrl}/v2/keys`, {
          headers: { Authorization: `Bearer ${USER.token}` },
          signal: AbortSignal.timeout(1000),
        });
        await r.arrayBuffer();
        if (r.status === 200) return;
      } catch {
        /* not up yet */
      }
      await sleep(100);
    }
    throw new Error(`qstash dev did not start:\n${logTail()}`);
  };
  const halt = async (signal) => {
    if (exited) return;
    const done = new Promise((res) => proc.once("exit", res));
    proc.kill(signal);
    const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await done;
    clearTimeout(t);
  };
  await launch();
  return {
    baseUrl,
    logTail,
    dataDir,
    databaseUrl: env.QSTASH_DATABASE_URL,
    restart: launch,
    kill9: () => halt("SIGKILL"),
    async stop() {
      await halt("SIGTERM");
      if (!process.env.QSTASH_WORKFLOW_KEEP_TMP) rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/**
 * Runs `sql` on a stopped server's database (psql on PostgreSQL, sqlite3 on the data directory's
 * file): a test uses it to set up a state only a crash between two commits leaves behind.
 */
export function execSql(server, sql) {
  if (server.databaseUrl) {
    execFileSync("psql", [server.databaseUrl, "-v", "ON_ERROR_STOP=1", "-qc", sql]);
  } else {
    execFileSync("sqlite3", [path.join(server.dataDir, "qstash.db"), sql]);
  }
}

/** Converts a node:http request into a web Request. */
async function toRequest(req, port) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const body = Buffer.concat(chunks);
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (Array.isArray(v)) v.forEach((x) => headers.append(k, x));
    else if (v !== undefined) headers.set(k, v);
  }
  const hasBody = !["GET", "HEAD"].includes(req.method);
  return new Request(`http://127.0.0.1:${port}${req.url}`, {
    method: req.method,
    headers,
    body: hasBody ? body : undefined,
  });
}

/**
 * A workflow app: `routes` maps a path ("/wf/name") to a route function or to
 * { fn, options } (serve options, e.g. failureFunction); `plain` maps a path to a plain
 * (req, body) => {status, body} handler (third-party endpoints). Every request is counted per
 * path in `hits`.
 */
export async function startApp(server, { routes = {}, plain = {} }) {
  const port = await freePort();
  const hits = {};
  const qstashClient = new QStashClient({ baseUrl: server.baseUrl, token: USER.token });
  const receiver = new Receiver({ currentSigningKey: USER.current, nextSigningKey: USER.next });
  const handlers = {};
  for (const [p, r] of Object.entries(routes)) {
    const { fn, options } = typeof r === "function" ? { fn: r, options: {} } : r;
    handlers[p] = serve(fn, {
      qstashClient,
      receiver,
      url: `http://127.0.0.1:${port}${p}`,
      env: {},
      ...options,
    }).handler;
  }
  const errors = [];
  const app = http.createServer(async (req, res) => {
    const p = new URL(req.url, "http://x").pathname;
    hits[p] = (hits[p] ?? 0) + 1;
    try {
      if (plain[p]) {
        const chunks = [];
        for await (const c of req) chunks.push(c);
        const out = await plain[p](req, Buffer.concat(chunks).toString());
        res.writeHead(out.status ?? 200, out.headers ?? { "content-type": "application/json" });
        res.end(out.body ?? "");
        return;
      }
      const handler = handlers[p];
      if (!handler) {
        res.writeHead(404);
        res.end("no route");
        return;
      }
      const response = await handler(await toRequest(req, port));
      const headers = {};
      response.headers.forEach((v, k) => (headers[k] = v));
      res.writeHead(response.status, headers);
      res.end(Buffer.from(await response.arrayBuffer()));
    } catch (e) {
      errors.push(e);
      res.writeHead(500);
      res.end(String(e));
    }
  });
  await new Promise((r) => app.listen(port, "127.0.0.1", r));
  return {
    port,
    hits,
    errors,
    url: (p) => `http://127.0.0.1:${port}${p}`,
    client: new WorkflowClient({ baseUrl: server.baseUrl, token: USER.token }),
    // Connections the server keeps alive (or a delivery still open) must not hold the suite.
    close: () =>
      new Promise((r) => {
        app.close(r);
        app.closeAllConnections();
      }),
  };
}

/** Polls until `check()` returns a truthy value; throws after `timeoutMs`. */
export async function until(check, { timeoutMs = 20000, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last) return last;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

/** The run's `client.logs` entry once its state is `state`. */
export async function runInState(client, workflowRunId, state, timeoutMs = 20000) {
  return await until(
    async () => {
      const { runs } = await client.logs({ workflowRunId });
      return runs.find((r) => r.workflowRunId === workflowRunId && r.workflowState === state);
    },
    { timeoutMs, what: `run ${workflowRunId} in ${state}` },
  );
}
