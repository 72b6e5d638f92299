// A run survives kill -9 of the server between two steps: after the restart it completes, and no
// step already recorded runs again.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { startServer, startApp, runInState, until, sleep } from "./helpers.mjs";

let server, app;
const calls = { one: 0, two: 0, three: 0 };

before(async () => {
  server = await startServer();
  app = await startApp(server, {
    routes: {
      "/wf/durable": async (context) => {
        const one = await context.run("one", () => (calls.one++, "1"));
        await context.sleep("gap", 2);
        const two = await context.run("two", () => (calls.two++, `${one}2`));
        return await context.run("three", () => (calls.three++, `${two}3`));
      },
    },
  });
});

after(async () => {
  await app?.close();
  await server?.stop();
});

test("a run survives kill -9 between two steps, each step executed once", async () => {
  const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/durable"), body: {} });
  await until(() => calls.one === 1, { what: "step one" });
  // The sleep step is published by the same delivery that ran "one"; give it time to commit.
  await until(() => (app.hits["/wf/durable"] ?? 0) >= 2, { what: "step one's result delivered" });
  await sleep(300);
  await server.kill9();
  await server.restart();
  const run = await runInState(app.client, workflowRunId, "RUN_SUCCESS", 30000);
  assert.deepEqual(calls, { one: 1, two: 1, three: 1 });
  assert.equal(JSON.parse(run.workflowRunResponse), "123");
  assert.deepEqual(app.errors, []);
});
