// Issue 4 through the JS SDK: URL groups, queues and flow control (WIRE.md 3.5, 3.6, 3.11).
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startServer, startSink, makeClient, uid, sleep, expectStatus, waitUntil } from "./helpers.mjs";

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

describe("URL groups, queues, flow control", { concurrency: true }, () => {
  it("URL group CRUD, and a publish fans out to every endpoint", async () => {
    const name = `group-${uid()}`;
    const [a, b] = [`/ga/${uid()}`, `/gb/${uid()}`];
    await client.urlGroups.addEndpoints({ name, endpoints: [{ url: sink.url(a), name: "a" }, { url: sink.url(b) }] });
    const group = await client.urlGroups.get(name);
    assert.equal(group.name, name);
    assert.deepEqual(group.endpoints.map((e) => e.url).sort(), [sink.url(a), sink.url(b)].sort());
    assert.ok((await client.urlGroups.list()).some((g) => g.name === name));

    const res = await client.publish({ urlGroup: name, body: "fan" });
    assert.equal(res.length, 2);
    assert.deepEqual(res.map((r) => r.url).sort(), [sink.url(a), sink.url(b)].sort());
    const [ra] = await sink.waitFor(a, 1);
    await sink.waitFor(b, 1);
    assert.equal(ra.body.toString(), "fan");
    assert.equal(ra.headers["upstash-topic-name"], name);
    assert.equal(ra.headers["upstash-endpoint-name"], "a");

    await client.urlGroups.removeEndpoints({ name, endpoints: [{ url: sink.url(b) }] });
    assert.deepEqual((await client.urlGroups.get(name)).endpoints.map((e) => e.url), [sink.url(a)]);
    await client.urlGroups.delete(name);
    await expectStatus(client.urlGroups.get(name), 404);
    await expectStatus(client.publish({ urlGroup: name, body: "x" }), 404);
  });

  it("a paused queue holds its messages in order; resume delivers them FIFO", async () => {
    const queueName = `q-${uid()}`;
    const path = `/queue/${uid()}`;
    const queue = client.queue({ queueName });
    await queue.upsert({ parallelism: 1 });
    await queue.pause();
    let info = await queue.get();
    assert.equal(info.name, queueName);
    assert.equal(info.parallelism, 1);
    assert.equal(info.paused, true);
    for (let i = 0; i < 3; i++) await queue.enqueueJSON({ url: sink.url(path), body: { i } });
    await sleep(700);
    assert.equal(sink.requests(path).length, 0, "a paused queue delivered");
    assert.equal((await queue.get()).lag, 3);
    await queue.resume();
    const got = await sink.waitFor(path, 3);
    assert.deepEqual(got.map((r) => JSON.parse(r.body.toString()).i), [0, 1, 2]);
    await waitUntil(async () => (await queue.get()).lag === 0, 5000, "lag 0");
    assert.ok((await queue.list()).some((q) => q.name === queueName));
    await queue.delete();
    await expectStatus(queue.get(), 404);
  });

  it("flow control: the key's settings, pause, pin, unpin, resetRate, global parallelism", async () => {
    const key = `fc-${uid()}`;
    const path = `/fc/${uid()}`;
    await client.publish({ url: sink.url(path), body: "x", flowControl: { key, parallelism: 1, rate: 10, period: 2 } });
    await sink.waitFor(path, 1);
    let info = await client.flowControl.get(key);
    assert.equal(info.flowControlKey, key);
    assert.equal(info.parallelismMax, 1);
    assert.equal(info.rateMax, 10);
    assert.equal(info.ratePeriod, 2);
    assert.equal(info.isPaused, false);

    await client.flowControl.pause(key);
    await client.publish({ url: sink.url(path), body: "held", flowControl: { key, parallelism: 1 } });
    await sleep(500);
    assert.equal(sink.requests(path).length, 1, "a paused key delivered");
    info = await client.flowControl.get(key);
    assert.equal(info.isPaused, true);
    assert.equal(info.waitListSize, 1);
    await client.flowControl.resume(key);
    await sink.waitFor(path, 2);

    await client.flowControl.pin(key, { parallelism: 3 });
    info = await client.flowControl.get(key);
    assert.equal(info.isPinnedParallelism, true);
    assert.equal(info.parallelismMax, 3);
    await client.publish({ url: sink.url(path), body: "y", flowControl: { key, parallelism: 1 } });
    assert.equal((await client.flowControl.get(key)).parallelismMax, 3, "a pinned value changed");
    await client.flowControl.unpin(key, { parallelism: true });
    assert.equal((await client.flowControl.get(key)).isPinnedParallelism, false);
    await client.flowControl.resetRate(key);
    assert.equal((await client.flowControl.get(key)).rateCount, 0);
    await expectStatus(client.flowControl.get(`none-${uid()}`), 404);

    const global = await client.flowControl.getGlobalParallelism();
    assert.equal(typeof global.parallelismMax, "number");
    assert.ok(global.parallelismMax > 0);
  });
});
