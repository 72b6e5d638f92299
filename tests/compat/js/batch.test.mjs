// WIRE.md 3.3: batch / batchJSON.
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startServer, startSink, makeClient, makeReceiver, uid, USERS } from "./helpers.mjs";

let server, sink, client;

before(async () => {
  server = await startServer();
  sink = await startSink();
  client = makeClient(server, USERS.default); // telemetry on: batch items carry upstash-telemetry-* headers
});
after(async () => {
  await server?.stop();
  await sink?.close();
});

describe("batch", { concurrency: true }, () => {
  it("batch returns one result per item, in order, and delivers each", async () => {
    const base = `/batch/${uid()}`;
    const res = await client.batch([
      { url: sink.url(`${base}/0`) + "?i=0", body: "zero", headers: { "content-type": "text/plain" } },
      { url: sink.url(`${base}/1`), body: "one", method: "PUT", headers: { "test-header": "h1" } },
      { url: sink.url(`${base}/2`), body: "two", retries: 0 },
    ]);
    assert.equal(res.length, 3);
    const ids = res.map((r) => r.messageId);
    assert.equal(new Set(ids).size, 3);
    ids.forEach((id) => assert.match(id, /^msg_/));
    const recs = [];
    for (let i = 0; i < 3; i++) recs.push((await sink.waitFor(`${base}/${i}`, 1))[0]);
    assert.deepEqual(recs.map((r) => r.body.toString()), ["zero", "one", "two"]);
    assert.deepEqual(recs.map((r) => r.headers["upstash-message-id"]), ids);
    assert.equal(recs[0].query, "?i=0");
    assert.equal(recs[0].headers["content-type"], "text/plain");
    assert.equal(recs[1].method, "PUT");
    assert.equal(recs[1].headers["test-header"], "h1");
    assert.equal(recs[2].method, "POST");
    for (const r of recs) {
      assert.equal(r.headers["upstash-retried"], "0");
      for (const name of Object.keys(r.headers)) assert.ok(!name.startsWith("upstash-telemetry"), name);
    }
    const url0 = sink.url(`${base}/0`) + "?i=0";
    assert.equal(await makeReceiver().verify({ signature: recs[0].headers["upstash-signature"], body: "zero", url: url0 }), true);
  });

  it("batchJSON serializes bodies and sets application/json", async () => {
    const base = `/batchjson/${uid()}`;
    const bodies = [{ i: 0 }, [1, 2, 3], "str"];
    const res = await client.batchJSON(bodies.map((body, i) => ({ url: sink.url(`${base}/${i}`), body, headers: { "x-i": String(i) } })));
    assert.equal(res.length, 3);
    for (let i = 0; i < 3; i++) {
      const [rec] = await sink.waitFor(`${base}/${i}`, 1);
      assert.equal(rec.body.toString(), JSON.stringify(bodies[i]));
      assert.equal(rec.headers["content-type"], "application/json");
      assert.equal(rec.headers["x-i"], String(i));
      assert.equal(rec.headers["upstash-message-id"], res[i].messageId);
    }
  });

  it("batch item with a delay is gettable; the others are delivered", async () => {
    const path = `/batch-delay/${uid()}`;
    const res = await client.batch([
      { url: sink.url(path), body: "later", delay: 30 },
      { url: sink.url(`${path}/now`), body: "now" },
    ]);
    const msg = await client.messages.get(res[0].messageId);
    assert.equal(msg.body, "later");
    // Telemetry and Upstash-* config headers of batch items are not stored (WIRE 4.0).
    for (const name of Object.keys(msg.header ?? {})) assert.ok(!/^upstash-/i.test(name), `stored header ${name}`);
    await sink.waitFor(`${path}/now`, 1);
    assert.deepEqual(await client.messages.cancel(res[0].messageId), { cancelled: 1 });
    assert.equal(sink.requests(path).length, 0);
  });

  it("batch item with queueName is enqueued and delivered", async () => {
    const path = `/batch-queue/${uid()}`;
    const res = await client.batch([{ url: sink.url(path), body: "queued", queueName: `q-${uid()}` }]);
    assert.equal(res.length, 1);
    const [rec] = await sink.waitFor(path, 1);
    assert.equal(rec.body.toString(), "queued");
    assert.equal(rec.headers["upstash-message-id"], res[0].messageId);
  });
});
