// context.call: the server makes the call (retrying it), then delivers one callback with the
// status, headers and body; any status is a result.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { startServer, startApp, runInState } from "./helpers.mjs";

let server, app;
const results = {};
let flakyHits = 0;
const received = [];

before(async () => {
  server = await startServer();
  app = await startApp(server, {
    routes: {
      "/wf/call": async (context) => {
        const flaky = await context.call("flaky", {
          url: app.url("/api/flaky"),
          method: "POST",
          body: { ask: "price" },
          headers: { "x-api-key": "k1" },
          retries: 2,
          retryDelay: "100",
        });
        const missing = await context.call("missing", { url: app.url("/api/missing"), method: "GET" });
        await context.run("record", () => {
          results.flaky = flaky;
          results.missing = missing;
        });
      },
    },
    plain: {
      "/api/flaky": (req, body) => {
        flakyHits++;
        received.push({ key: req.headers["x-api-key"], body, method: req.method });
        if (flakyHits === 1) return { status: 503, body: JSON.stringify({ error: "busy" }) };
        return { status: 200, body: JSON.stringify({ price: 42 }), headers: { "content-type": "application/json", "x-served": "yes" } };
      },
      "/api/missing": () => ({ status: 404, body: "nothing here", headers: { "content-type": "text/plain" } }),
    },
  });
});

after(async () => {
  await app?.close();
  await server?.stop();
});

test("context.call retries the third party, and any status comes back as the step result", async () => {
  const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/call"), body: {} });
  await runInState(app.client, workflowRunId, "RUN_SUCCESS", 30000);
  assert.equal(flakyHits, 2, "one failed attempt, one retry");
  assert.deepEqual(received[0], { key: "k1", body: JSON.stringify({ ask: "price" }), method: "POST" });
  assert.equal(results.flaky.status, 200);
  assert.deepEqual(results.flaky.body, { price: 42 });
  assert.deepEqual(results.flaky.header["X-Served"] ?? results.flaky.header["x-served"], ["yes"]);
  assert.equal(results.missing.status, 404);
  assert.equal(results.missing.body, "nothing here");
  assert.equal(app.hits["/api/missing"], 1);
  // init, call 1's callback, its result step, call 2's callback, its result step, "record": the
  // callback of the failed first attempt is not delivered.
  assert.equal(app.hits["/wf/call"], 6);
  assert.deepEqual(app.errors, []);
});
