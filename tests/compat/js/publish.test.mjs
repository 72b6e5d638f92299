// WIRE.md 2, 3.1, 4.0, 7, 8: publish / publishJSON with the JS SDK, and JS Receiver verification.
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { startServer, startSink, makeClient, makeReceiver, uid, USERS } from "./helpers.mjs";

let server, sink, client, clientTelemetry;
const sentToServer = [];

before(async () => {
  server = await startServer();
  sink = await startSink();
  client = makeClient(server, USERS.default, { enableTelemetry: false });
  clientTelemetry = makeClient(server, USERS.default); // telemetry on (the SDK default)
  // Spy on what the SDK sends to the server (to prove telemetry headers really go out).
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    if (url.startsWith(server.baseUrl)) {
      sentToServer.push({ url, headers: new Headers(init?.headers ?? {}) });
    }
    return realFetch(input, init);
  };
});

after(async () => {
  await server?.stop();
  await sink?.close();
});

const rawCount = (rec, name) =>
  rec.rawHeaders.filter((v, i) => i % 2 === 0 && v.toLowerCase() === name.toLowerCase()).length;

describe("publish", { concurrency: true }, () => {
  it("delivers method, body, content-type, forwarded headers and query; id and retried headers", async () => {
    const path = `/pub/${uid()}/x`;
    const url = sink.url(path) + "?a=b";
    const res = await client.publish({
      url,
      body: "hello body",
      method: "PUT",
      headers: { "Test-Header": "v", "Content-Type": "text/plain" },
    });
    assert.match(res.messageId, /^msg_/);
    assert.equal(res.url, url, "publish response carries the destination url (WIRE 3.1)");
    const [rec] = await sink.waitFor(path, 1);
    assert.equal(rec.method, "PUT");
    assert.equal(rec.target, path + "?a=b");
    assert.equal(rec.body.toString(), "hello body");
    assert.equal(rec.headers["content-type"], "text/plain");
    assert.equal(rec.headers["test-header"], "v");
    assert.equal(rec.headers["upstash-message-id"], res.messageId);
    assert.equal(rec.headers["upstash-retried"], "0");
    assert.equal(rec.headers["user-agent"], "Upstash-QStash");
    assert.equal(rec.headers["authorization"], undefined, "the QStash token must not be forwarded");
    for (const name of Object.keys(rec.headers)) {
      assert.ok(!name.startsWith("upstash-forward-"), `prefixed header leaked: ${name}`);
      assert.ok(!name.startsWith("upstash-telemetry-"), `telemetry header leaked: ${name}`);
    }
    assert.equal(rec.headers["upstash-method"], undefined);
  });

  it("telemetry headers sent by the SDK are neither forwarded nor stored", async () => {
    const path = `/telemetry/${uid()}`;
    const url = sink.url(path);
    const res = await clientTelemetry.publish({ url, body: "t", headers: { "test-header": "v" } });
    const sent = sentToServer.find((s) => s.url.includes(path));
    assert.ok(sent, "fetch spy did not see the publish");
    assert.match(sent.headers.get("upstash-telemetry-sdk") ?? "", /^upstash-qstash-js@2\.12\.0/);
    const [rec] = await sink.waitFor(path, 1);
    for (const name of Object.keys(rec.headers)) {
      assert.ok(!name.startsWith("upstash-telemetry"), `telemetry header forwarded: ${name}`);
    }
    assert.equal(rec.headers["test-header"], "v");
    assert.equal(rec.headers["upstash-message-id"], res.messageId);
  });

  it("messages.get shows a canonical header map without telemetry or Upstash-* headers", async () => {
    const path = `/get/${uid()}/x`;
    const url = sink.url(path) + "?a=b";
    const { messageId } = await clientTelemetry.publish({
      url,
      body: "stored",
      method: "PATCH",
      delay: 30,
      retries: 2,
      headers: { "test-header": "v", "x-api-key": "k", "content-type": "text/plain", "x-multi": "value-uppercase, value-lowercase" },
    });
    try {
      const msg = await clientTelemetry.messages.get(messageId);
      assert.equal(msg.messageId, messageId);
      assert.equal(msg.url, url);
      assert.equal(msg.method, "PATCH");
      assert.equal(msg.body, "stored");
      assert.equal(msg.maxRetries, 2);
      assert.deepEqual(msg.header, {
        "Test-Header": ["v"],
        "X-Api-Key": ["k"],
        "X-Multi": ["value-uppercase, value-lowercase"],
        "Content-Type": ["text/plain"],
      });
    } finally {
      await clientTelemetry.messages.cancel(messageId);
    }
  });

  it("publishJSON delivers JSON with application/json", async () => {
    const path = `/pubjson/${uid()}`;
    const payload = { hello: "world", n: 1, nested: { list: [1, 2, 3] } };
    const res = await client.publishJSON({ url: sink.url(path) + "?a=b&c=d", body: payload, headers: { "test-header": "v" } });
    const [rec] = await sink.waitFor(path, 1);
    assert.equal(rec.method, "POST");
    assert.equal(rec.query, "?a=b&c=d");
    assert.equal(rec.body.toString(), JSON.stringify(payload));
    assert.equal(rec.headers["content-type"], "application/json");
    assert.equal(rec.headers["test-header"], "v");
    assert.equal(rec.headers["upstash-message-id"], res.messageId);
  });

  it("a forwarded header value containing a comma arrives as one header", async () => {
    const path = `/comma/${uid()}`;
    await client.publish({ url: sink.url(path), body: "x", headers: { "x-multi": "value-uppercase, value-lowercase" } });
    const [rec] = await sink.waitFor(path, 1);
    assert.equal(rawCount(rec, "x-multi"), 1);
    assert.equal(rec.headers["x-multi"], "value-uppercase, value-lowercase");
  });
});

describe("signature (JS Receiver)", { concurrency: true }, () => {
  it("delivery verifies with the exact destination URL", async () => {
    const path = `/sig/${uid()}/x`;
    const url = sink.url(path) + "?a=b";
    await client.publish({ url, body: "signed body \u00e9" });
    const [rec] = await sink.waitFor(path, 1);
    const signature = rec.headers["upstash-signature"];
    assert.ok(signature, "no Upstash-Signature header");
    assert.equal(await makeReceiver().verify({ signature, body: rec.body.toString(), url }), true);
  });

  it("rejects another URL or a tampered body", async () => {
    const path = `/sig-neg/${uid()}`;
    const url = sink.url(path) + "?q=1";
    await client.publish({ url, body: "original" });
    const [rec] = await sink.waitFor(path, 1);
    const signature = rec.headers["upstash-signature"];
    await assert.rejects(makeReceiver().verify({ signature, body: "original", url: sink.url(path) }));
    await assert.rejects(makeReceiver().verify({ signature, body: "tampered", url }));
  });

  it("is signed with the current key", async () => {
    const path = `/sig-cur/${uid()}`;
    const url = sink.url(path);
    await client.publish({ url, body: "k" });
    const [rec] = await sink.waitFor(path, 1);
    const signature = rec.headers["upstash-signature"];
    const onlyCurrent = makeReceiver({ current: USERS.default.current, next: "sig_notTheRightKeyAtAll1234567" });
    assert.equal(await onlyCurrent.verify({ signature, body: "k", url }), true);
    const onlyNext = makeReceiver({ current: USERS.default.next, next: USERS.default.next });
    await assert.rejects(onlyNext.verify({ signature, body: "k", url }));
  });

  it("empty-body delivery verifies (body claim present)", async () => {
    const path = `/sig-empty/${uid()}`;
    const url = sink.url(path);
    await client.publish({ url });
    const [rec] = await sink.waitFor(path, 1);
    assert.equal(rec.body.length, 0);
    const signature = rec.headers["upstash-signature"];
    const claims = JSON.parse(Buffer.from(signature.split(".")[1], "base64url").toString());
    const expected = createHash("sha256").update("").digest("base64url");
    assert.equal(claims.body.replace(/=+$/, ""), expected);
    assert.equal(await makeReceiver().verify({ signature, body: "", url }), true);
  });

  it("publishJSON delivery verifies", async () => {
    const path = `/sig-json/${uid()}`;
    const url = sink.url(path);
    await client.publishJSON({ url, body: { a: [1, 2], b: "\u4e2d" } });
    const [rec] = await sink.waitFor(path, 1);
    const signature = rec.headers["upstash-signature"];
    assert.equal(await makeReceiver().verify({ signature, body: rec.body.toString(), url }), true);
  });
});
