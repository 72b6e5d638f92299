// WIRE.md 2: Upstash-Deduplication-Id and Upstash-Content-Based-Deduplication ("true" from JS).
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startServer, startSink, makeClient, uid, sleep, USERS } from "./helpers.mjs";

let server, sink, client;

before(async () => {
  server = await startServer();
  sink = await startSink();
  client = makeClient(server, USERS.default, { enableTelemetry: false });
});
after(async () => {
  await server?.stop();
  await sink?.close();
});

describe("deduplication", { concurrency: true }, () => {
  it("same deduplicationId twice: same messageId, second deduplicated, delivered once", async () => {
    const path = `/dedup/${uid()}`;
    const deduplicationId = `dedup-${uid()}`;
    const first = await client.publish({ url: sink.url(path), body: "x", deduplicationId });
    const second = await client.publish({ url: sink.url(path), body: "x", deduplicationId });
    assert.ok(!first.deduplicated);
    assert.equal(second.deduplicated, true);
    assert.equal(second.messageId, first.messageId);
    await sink.waitFor(path, 1);
    await sleep(1000);
    assert.equal(sink.requests(path).length, 1);
  });

  it("contentBasedDeduplication with the same body: deduplicated", async () => {
    const path = `/cbd/${uid()}`;
    const body = `same ${uid()}`;
    const first = await client.publish({ url: sink.url(path), body, contentBasedDeduplication: true });
    const second = await client.publish({ url: sink.url(path), body, contentBasedDeduplication: true });
    assert.ok(!first.deduplicated);
    assert.equal(second.deduplicated, true);
    assert.equal(second.messageId, first.messageId);
    await sink.waitFor(path, 1);
    await sleep(1000);
    assert.equal(sink.requests(path).length, 1);
  });

  it("contentBasedDeduplication with different bodies: both delivered", async () => {
    const path = `/cbd-diff/${uid()}`;
    const a = await client.publishJSON({ url: sink.url(path), body: { v: uid() }, contentBasedDeduplication: true });
    const b = await client.publishJSON({ url: sink.url(path), body: { v: uid() }, contentBasedDeduplication: true });
    assert.ok(!b.deduplicated);
    assert.notEqual(a.messageId, b.messageId);
    await sink.waitFor(path, 2);
  });
});
