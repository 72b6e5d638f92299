// WIRE.md 2 (Upstash-Retries / -Retry-Delay) and 8 (retries, Retry-After).
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startServer, startSink, makeClient, uid, sleep, waitUntil, isGone, USERS } from "./helpers.mjs";

let server, sink, client;
const TOL = 50;

before(async () => {
  server = await startServer();
  sink = await startSink();
  client = makeClient(server, USERS.default, { enableTelemetry: false });
});
after(async () => {
  await server?.stop();
  await sink?.close();
});

describe("retries", { concurrency: true }, () => {
  it("500, 500, then 200: delivered on the 3rd attempt with Upstash-Retried 0, 1, 2", async () => {
    const path = `/retry/${uid()}`;
    sink.script(path, [{ status: 500 }, { status: 500 }, { status: 200 }]);
    const { messageId } = await client.publish({ url: sink.url(path), body: "payload", retries: 3, retryDelay: "1000" });
    const recs = await sink.waitFor(path, 3, 10000);
    assert.deepEqual(recs.map((r) => r.headers["upstash-retried"]), ["0", "1", "2"]);
    assert.ok(recs.every((r) => r.headers["upstash-message-id"] === messageId));
    assert.ok(recs.every((r) => r.body.toString() === "payload"));
    assert.ok(recs[1].t - recs[0].t >= 1000 - TOL, `first retry after ${recs[1].t - recs[0].t} ms, retryDelay 1000`);
    assert.ok(recs[2].t - recs[1].t >= 1000 - TOL, `second retry after ${recs[2].t - recs[1].t} ms, retryDelay 1000`);
    await sleep(1000);
    assert.equal(sink.requests(path).length, 3, "delivered again after a 2xx");
    await waitUntil(() => isGone(client, messageId), 5000, "404 after delivery");
  });

  it("retryDelay expression in `retried` (pow(2, retried) * 100)", async () => {
    const path = `/retry-pow/${uid()}`;
    sink.script(path, [{ status: 500 }, { status: 502 }, { status: 200 }]);
    await client.publish({ url: sink.url(path), body: "x", retries: 2, retryDelay: "pow(2, retried) * 100" });
    const recs = await sink.waitFor(path, 3, 8000);
    assert.ok(recs[1].t - recs[0].t >= 100 - TOL);
    assert.ok(recs[2].t - recs[1].t >= 200 - TOL);
    assert.deepEqual(recs.map((r) => r.headers["upstash-retried"]), ["0", "1", "2"]);
  });

  it("stops after 1 + retries attempts", async () => {
    const path = `/retry-exhaust/${uid()}`;
    sink.script(path, Array(10).fill({ status: 500 }));
    const { messageId } = await client.publish({ url: sink.url(path), body: "x", retries: 1, retryDelay: "100" });
    await sink.waitFor(path, 2, 8000);
    await sleep(1000);
    assert.equal(sink.requests(path).length, 2);
    await waitUntil(() => isGone(client, messageId), 5000, "404 after retries are exhausted");
  });

  it("Retry-After on a 429 overrides a long retryDelay", async () => {
    const path = `/retry-after/${uid()}`;
    sink.script(path, [{ status: 429, headers: { "Retry-After": "1" } }, { status: 200 }]);
    await client.publish({ url: sink.url(path), body: "x", retries: 3, retryDelay: "60000" });
    const recs = await sink.waitFor(path, 2, 10000);
    const gap = recs[1].t - recs[0].t;
    assert.ok(gap >= 1000 - TOL && gap <= 8000, `Retry-After: 1 should give ~1 s, got ${gap} ms`);
    assert.equal(recs[1].headers["upstash-retried"], "1");
  });

  it("timeout: a destination slower than the timeout is a failed attempt", async () => {
    const path = `/timeout/${uid()}`;
    sink.script(path, [{ status: 200, delayMs: 4000 }, { status: 200 }]);
    // The timeout runs from the server's send, which comes after the publish: the retry is at least 1 s after
    // the publish. (Measured from the sink's receipt of the first attempt, a busy machine that receives it late
    // made the gap look shorter than the timeout.)
    const published = Date.now();
    await client.publish({ url: sink.url(path), body: "x", timeout: "1s", retries: 1, retryDelay: "100" });
    const recs = await sink.waitFor(path, 2, 6000);
    const sincePublish = recs[1].t - published;
    const gap = recs[1].t - recs[0].t;
    assert.ok(
      sincePublish >= 1000 - TOL && gap < 3500,
      `retry ${sincePublish} ms after the publish, ${gap} ms after the first attempt; timeout 1 s, sink slept 4 s`,
    );
  });
});
