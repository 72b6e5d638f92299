// WIRE.md 2 (Upstash-Delay / Upstash-Not-Before), 3.1, 4.1.
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startServer, startSink, makeClient, uid, sleep, USERS } from "./helpers.mjs";

let server, sink, client;
const GRACE_MS = 3000;

before(async () => {
  server = await startServer();
  sink = await startSink();
  client = makeClient(server, USERS.default, { enableTelemetry: false });
});
after(async () => {
  await server?.stop();
  await sink?.close();
});

describe("delay", { concurrency: true }, () => {
  it("numeric delay (seconds): get works at once, notBefore >= now (ms), delivered only after the delay", async () => {
    const path = `/delay-num/${uid()}`;
    const t0 = Date.now();
    const { messageId } = await client.publish({ url: sink.url(path), body: "later", delay: 2 });
    const msg = await client.messages.get(messageId);
    assert.equal(msg.messageId, messageId);
    assert.ok(msg.notBefore >= Date.now(), `notBefore ${msg.notBefore} is not >= now ${Date.now()}`);
    assert.ok(msg.notBefore >= t0 + 1500 && msg.notBefore <= Date.now() + 2500, `notBefore ${msg.notBefore} vs t0 ${t0}`);
    await sleep(Math.max(0, t0 + 1500 - Date.now()));
    assert.equal(sink.requests(path).length, 0, "delivered before the delay");
    const [rec] = await sink.waitFor(path, 1, 2000 + GRACE_MS);
    assert.ok(rec.t >= t0 + 1900, `delivered after ${rec.t - t0} ms, delay was 2 s`);
    assert.equal(rec.body.toString(), "later");
  });

  it("string delay '3s'", async () => {
    const path = `/delay-str/${uid()}`;
    const t0 = Date.now();
    const { messageId } = await client.publish({ url: sink.url(path), body: "x", delay: "3s" });
    const msg = await client.messages.get(messageId);
    assert.ok(msg.notBefore >= t0 + 2500 && msg.notBefore <= Date.now() + 3500);
    await sleep(Math.max(0, t0 + 2000 - Date.now()));
    assert.equal(sink.requests(path).length, 0, "delivered before the delay");
    const [rec] = await sink.waitFor(path, 1, 3000 + GRACE_MS);
    assert.ok(rec.t >= t0 + 2900, `delivered after ${rec.t - t0} ms, delay was 3 s`);
  });

  it("absolute notBefore (unix seconds) is reported in ms and honoured", async () => {
    const path = `/notbefore/${uid()}`;
    const nb = Math.floor(Date.now() / 1000) + 3;
    const { messageId } = await client.publish({ url: sink.url(path), body: "x", notBefore: nb });
    const msg = await client.messages.get(messageId);
    assert.equal(msg.notBefore, nb * 1000);
    const [rec] = await sink.waitFor(path, 1, nb * 1000 - Date.now() + GRACE_MS);
    assert.ok(rec.t >= nb * 1000 - 100, `delivered ${nb * 1000 - rec.t} ms early`);
  });

  it("publishJSON with delay is gettable while pending", async () => {
    const path = `/delay-json/${uid()}`;
    const { messageId } = await client.publishJSON({ url: sink.url(path), body: { a: 1 }, delay: 30 });
    try {
      const msg = await client.messages.get(messageId);
      assert.equal(msg.body, '{"a":1}');
      assert.deepEqual(msg.header["Content-Type"], ["application/json"]);
      assert.equal(typeof msg.createdAt, "number");
      assert.ok(msg.notBefore >= msg.createdAt + 29000);
    } finally {
      await client.messages.cancel(messageId);
    }
  });

  it("label array and flow control are stored on the message", async () => {
    const key = `fc-${uid()}`;
    const { messageId } = await client.publish({
      url: sink.url(`/opts/${uid()}`),
      body: "x",
      delay: 30,
      label: ["first", "second"],
      flowControl: { key, parallelism: 3, ratePerSecond: 5, period: "1m" },
    });
    try {
      const msg = await client.messages.get(messageId);
      assert.equal(msg.label, "first");
      assert.deepEqual(msg.labels, ["first", "second"]);
      assert.equal(msg.flowControlKey, key);
      assert.equal(msg.parallelism, 3);
      assert.equal(msg.rate, 5);
      assert.equal(msg.ratePerSecond, 5);
      assert.equal(msg.period, 60);
    } finally {
      await client.messages.cancel(messageId);
    }
  });
});
