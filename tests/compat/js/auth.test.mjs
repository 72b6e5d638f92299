// WIRE.md 1 (authentication) and per-user isolation.
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startServer, startSink, makeClient, uid, expectStatus, USERS } from "./helpers.mjs";

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

describe("auth", { concurrency: true }, () => {
  it("a wrong token is rejected with 401", async () => {
    const bad = makeClient(server, { token: "wrong-token" }, { enableTelemetry: false });
    const path = `/unauth/${uid()}`;
    await expectStatus(bad.publish({ url: sink.url(path), body: "x" }), 401);
    await expectStatus(bad.publishJSON({ url: sink.url(path), body: { a: 1 } }), 401);
    await expectStatus(bad.messages.get("msg_x"), 401);
    await expectStatus(bad.batch([{ url: sink.url(path), body: "x" }]), 401);
    assert.equal(sink.requests(path).length, 0);
  });

  it("a message of user A is invisible to user B", async () => {
    const b = makeClient(server, USERS.user1, { enableTelemetry: false });
    const { messageId } = await client.publish({ url: sink.url(`/isolation/${uid()}`), body: "x", delay: 30 });
    try {
      await expectStatus(b.messages.get(messageId), 404);
      await expectStatus(b.messages.cancel(messageId), 404);
      assert.deepEqual(await b.messages.cancel([messageId]), { cancelled: 0 });
      assert.equal((await client.messages.get(messageId)).messageId, messageId);
    } finally {
      await client.messages.cancel(messageId);
    }
  });

  it("bad publish input is rejected with a 4xx", async () => {
    const url = sink.url(`/bad/${uid()}`);
    const cases = [
      { url, delay: "abc" },
      { url, method: "FOO" },
      { url, retryDelay: "pow(2," },
      { url, retries: -1 },
      { url, timeout: "soon" },
      { url: "ftp://x" },
    ];
    for (const req of cases) {
      let err;
      try {
        await client.publish({ body: "x", ...req });
      } catch (e) {
        err = e;
      }
      assert.ok(err, `accepted ${JSON.stringify(req)}`);
      assert.ok(err.status >= 400 && err.status < 500, `${JSON.stringify(req)} gave status ${err.status}: ${err.message}`);
    }
  });
});
