// Issue 3 through the JS SDK: callbacks, failure callbacks, the DLQ and the logs
// (WIRE.md 3.7-3.9). Every assertion is on what the server really did.
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startServer, startSink, makeClient, makeReceiver, uid, waitUntil } from "./helpers.mjs";

let server, sink, client;

before(async () => {
  server = await startServer();
  sink = await startSink();
  client = makeClient(server, undefined, { enableTelemetry: false });
});
after(async () => {
  await server?.stop();
  await sink?.close();
});

/** Publishes to `path` (scripted to answer 500) with no retries; resolves with the DLQ entry. */
async function deadLetter(path, extra = {}) {
  sink.script(path, [{ status: 500, body: "boom" }]);
  const { messageId } = await client.publish({ url: sink.url(path), body: "lost", retries: 0, ...extra });
  let entry;
  await waitUntil(
    async () => {
      const { messages } = await client.dlq.listMessages({ filter: { messageId } });
      entry = messages[0];
      return Boolean(entry);
    },
    10000,
    `${messageId} in the DLQ`,
  );
  return entry;
}

describe("callbacks, DLQ and logs", { concurrency: true }, () => {
  it("a callback carries the destination's answer and is signed", async () => {
    const target = `/cb-target/${uid()}`;
    const cb = `/cb/${uid()}`;
    sink.script(target, [{ status: 201, body: "made it" }]);
    const { messageId } = await client.publish({ url: sink.url(target), body: "hello", callback: sink.url(cb) });
    const [req] = await sink.waitFor(cb, 1);
    const doc = JSON.parse(req.body.toString());
    assert.equal(doc.status, 201);
    assert.equal(Buffer.from(doc.body, "base64").toString(), "made it");
    assert.equal(doc.sourceMessageId, messageId);
    assert.equal(Buffer.from(doc.sourceBody, "base64").toString(), "hello");
    assert.equal(doc.url, sink.url(target));
    const ok = await makeReceiver().verify({
      signature: req.headers["upstash-signature"],
      body: req.body.toString(),
      url: sink.url(cb),
    });
    assert.equal(ok, true);
  });

  it("a failure callback carries the dlqId of the entry the DLQ lists", async () => {
    const fcb = `/fcb/${uid()}`;
    const entry = await deadLetter(`/fails/${uid()}`, { failureCallback: sink.url(fcb) });
    assert.equal(entry.responseStatus, 500);
    assert.equal(entry.responseBody, "boom");
    assert.equal(entry.body, "lost");
    const [req] = await sink.waitFor(fcb, 1);
    const doc = JSON.parse(req.body.toString());
    assert.equal(doc.dlqId, entry.dlqId);
    assert.equal(doc.sourceMessageId, entry.messageId);
    assert.equal(doc.status, 500);
  });

  it("listMessages pages by cursor; delete and deleteMany remove entries", async () => {
    const path = `/dlq-page/${uid()}`;
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await deadLetter(path)).dlqId);
    const url = sink.url(path);
    const first = await client.dlq.listMessages({ count: 2, filter: { url } });
    assert.equal(first.messages.length, 2);
    assert.equal(typeof first.cursor, "string");
    const second = await client.dlq.listMessages({ count: 2, filter: { url }, cursor: first.cursor });
    assert.equal(second.messages.length, 1);
    assert.equal(second.cursor, undefined);
    const seen = [...first.messages, ...second.messages].map((m) => m.dlqId).sort();
    assert.deepEqual(seen, [...ids].sort());

    assert.deepEqual(await client.dlq.delete(ids[0]), { deleted: 1 });
    assert.deepEqual(await client.dlq.deleteMany({ dlqIds: ids.slice(1) }), { deleted: 2 });
    const after = await client.dlq.listMessages({ filter: { url } });
    assert.equal(after.messages.length, 0);
  });

  it("retry puts a DLQ entry back as a new message", async () => {
    const path = `/dlq-retry/${uid()}`;
    const entry = await deadLetter(path);
    const res = await client.dlq.retry(entry.dlqId);
    assert.equal(res.responses.length, 1);
    assert.notEqual(res.responses[0].messageId, entry.messageId);
    const got = await sink.waitFor(path, 2);
    assert.equal(got[1].body.toString(), "lost");
    const left = await client.dlq.listMessages({ dlqIds: [entry.dlqId] });
    assert.equal(left.messages.length, 0);
  });

  it("logs show a message's lifecycle, filtered by messageIds and by state", async () => {
    const path = `/logs/${uid()}`;
    const { messageId } = await client.publish({ url: sink.url(path), body: "x", label: "js-logs" });
    await sink.waitFor(path, 1);
    let states = [];
    await waitUntil(
      async () => {
        const { logs, events } = await client.logs({ messageIds: [messageId] });
        assert.deepEqual(logs, events);
        states = logs.map((l) => l.state);
        return states.includes("DELIVERED");
      },
      10000,
      "a DELIVERED entry",
    );
    assert.deepEqual(states, ["DELIVERED", "ACTIVE", "CREATED"]);
    const delivered = await client.logs({ filter: { state: "DELIVERED", url: sink.url(path) } });
    assert.equal(delivered.logs.length, 1);
    assert.equal(delivered.logs[0].messageId, messageId);
    const byPath = await client.logs({ filter: { path, state: "CREATED" } });
    assert.deepEqual(byPath.logs.map((l) => l.messageId), [messageId]);
    const paged = await client.logs({ count: 1, filter: { label: "js-logs" } });
    assert.equal(paged.logs.length, 1);
    assert.equal(typeof paged.cursor, "string");
  });
});
