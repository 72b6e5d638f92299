// WIRE.md 1 (error handling, 429): per-user API rate limits answered as QStash does,
// so the SDK raises QstashRatelimitError (burst) and QstashDailyRatelimitError (daily).
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { QstashDailyRatelimitError, QstashRatelimitError } from "@upstash/qstash";
import { startServer, startSink, makeClient, USERS } from "./helpers.mjs";

let server, sink;

before(async () => {
  server = await startServer({ args: ["--burst-rate-limit", "2", "--daily-rate-limit", "3"] });
  sink = await startSink();
});
after(async () => {
  await server?.stop();
  await sink?.close();
});

async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  return null;
}

describe("rate limits", () => {
  it("a burst of management calls raises QstashRatelimitError", async () => {
    const client = makeClient(server, USERS.user1, { enableTelemetry: false });
    let err = null;
    for (let i = 0; i < 6 && !err; i++) err = await rejection(client.dlq.listMessages());
    assert.ok(err instanceof QstashRatelimitError, `got ${err?.name}: ${err?.message}`);
    assert.equal(err.limit, "2");
    assert.equal(err.remaining, "0");
    assert.ok(Number(err.reset) >= Math.floor(Date.now() / 1000), `reset ${err.reset}`);
  });

  it("publishing past the daily limit raises QstashDailyRatelimitError", async () => {
    const client = makeClient(server, USERS.user2, { enableTelemetry: false });
    for (let i = 0; i < 3; i++) {
      await client.publish({ url: sink.url("/daily"), body: String(i) });
    }
    const err = await rejection(client.publish({ url: sink.url("/daily"), body: "4" }));
    assert.ok(err instanceof QstashDailyRatelimitError, `got ${err?.name}: ${err?.message}`);
    assert.equal(err.limit, "3");
    assert.ok(Number(err.reset) > Math.floor(Date.now() / 1000), `reset ${err.reset}`);
    // Another user's limits are its own.
    const other = makeClient(server, USERS.user3, { enableTelemetry: false });
    await other.publish({ url: sink.url("/daily"), body: "other" });
  });
});
