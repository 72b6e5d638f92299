// WIRE.md 3.4: messages.cancel(id) -> {"cancelled":1}, cancel([ids]), cancel({all:true}).
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startServer, startSink, makeClient, uid, sleep, expectStatus, USERS } from "./helpers.mjs";

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

describe("cancel", { concurrency: true }, () => {
  it("cancel(id) returns {cancelled: 1}; get is 404; never delivered", async () => {
    const path = `/cancel/${uid()}`;
    const t0 = Date.now();
    const { messageId } = await client.publish({ url: sink.url(path), body: "x", delay: 2 });
    const res = await client.messages.cancel(messageId);
    assert.deepEqual(res, { cancelled: 1 });
    await expectStatus(client.messages.get(messageId), 404);
    await sleep(Math.max(0, t0 + 3500 - Date.now()));
    assert.equal(sink.requests(path).length, 0, "a cancelled message was delivered");
  });

  it("cancel of an unknown id is 404", async () => {
    await expectStatus(client.messages.cancel(`msg_unknown${uid()}`), 404);
  });

  it("deprecated messages.delete(id) cancels", async () => {
    const { messageId } = await client.publish({ url: sink.url(`/delete/${uid()}`), body: "x", delay: 30 });
    await client.messages.delete(messageId);
    await expectStatus(client.messages.get(messageId), 404);
  });

  it("cancel([a, b]) counts 2, then cancel({all: true}) counts the remaining 1 (per user)", async () => {
    // testUser2 is used by no other test in this file: its pending-message count is exact.
    const c2 = makeClient(server, USERS.user2, { enableTelemetry: false });
    const path = `/cancel-many/${uid()}`;
    const ids = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await c2.publish({ url: sink.url(path), body: String(i), delay: 3 })).messageId);
    }
    const mine = await client.publish({ url: sink.url(`/cancel-other/${uid()}`), body: "x", delay: 30 });
    const t0 = Date.now();
    try {
      assert.deepEqual(await c2.messages.cancel([ids[0], ids[1], `msg_unknown${uid()}`]), { cancelled: 2 });
      assert.equal((await c2.messages.get(ids[2])).messageId, ids[2]);
      assert.deepEqual(await c2.messages.cancel({ all: true }), { cancelled: 1 });
      for (const id of ids) await expectStatus(c2.messages.get(id), 404);
      assert.deepEqual(await c2.messages.cancel({ all: true }), { cancelled: 0 });
      // The default user's message is untouched.
      assert.equal((await client.messages.get(mine.messageId)).messageId, mine.messageId);
    } finally {
      await client.messages.cancel(mine.messageId);
    }
    await sleep(Math.max(0, t0 + 4000 - Date.now()));
    assert.equal(sink.requests(path).length, 0);
  });

  it("cancel by filter (url, label) and {all: true, count: 1} count exactly", async () => {
    // testUser3 is used by no other test in this file.
    const c3 = makeClient(server, USERS.user3, { enableTelemetry: false });
    const urlA = sink.url(`/cancel-filter-a/${uid()}`);
    const urlB = sink.url(`/cancel-filter-b/${uid()}`);
    const label = `lab-${uid()}`;
    const pub = async (req) => (await c3.publish({ body: "x", delay: 30, ...req })).messageId;
    const a1 = await pub({ url: urlA });
    const a2 = await pub({ url: urlA });
    const b1 = await pub({ url: urlB, label });
    const b2 = await pub({ url: urlB });
    const b3 = await pub({ url: urlB });
    assert.deepEqual(await c3.messages.cancel({ filter: { url: urlA } }), { cancelled: 2 });
    await expectStatus(c3.messages.get(a1), 404);
    await expectStatus(c3.messages.get(a2), 404);
    assert.deepEqual(await c3.messages.cancel({ filter: { label } }), { cancelled: 1 });
    await expectStatus(c3.messages.get(b1), 404);
    // WIRE 3.4 only specifies `cancelled` here (upstream JS tests read `result.cancelled`).
    assert.equal((await c3.messages.cancel({ all: true, count: 1 })).cancelled, 1);
    assert.deepEqual(await c3.messages.cancel({ all: true }), { cancelled: 1 });
    await expectStatus(c3.messages.get(b2), 404);
    await expectStatus(c3.messages.get(b3), 404);
  });
});
