// sleep, sleepUntil and parallel steps.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { startServer, startApp, runInState } from "./helpers.mjs";

let server, app;
const times = {};
const calls = { before: 0, after: 0, p1: 0, p2: 0, p3: 0, sum: 0 };
let parallelResult;

before(async () => {
  server = await startServer();
  app = await startApp(server, {
    routes: {
      "/wf/sleep": async (context) => {
        const t0 = await context.run("before", () => {
          calls.before++;
          return Date.now();
        });
        await context.sleep("nap", 2);
        await context.sleepUntil("until", new Date(t0 + 4000));
        await context.run("after", () => {
          calls.after++;
          times.after = Date.now();
          times.t0 = t0;
        });
      },
      "/wf/parallel": async (context) => {
        const [a, b, c] = await Promise.all([
          context.run("p1", () => (calls.p1++, 1)),
          context.run("p2", () => (calls.p2++, 20)),
          context.run("p3", () => (calls.p3++, 300)),
        ]);
        parallelResult = await context.run("sum", () => (calls.sum++, a + b + c));
        return parallelResult;
      },
    },
  });
});

after(async () => {
  await app?.close();
  await server?.stop();
});

test("sleep and sleepUntil delay the next step", async () => {
  const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/sleep"), body: {} });
  const run = await runInState(app.client, workflowRunId, "RUN_SUCCESS", 30000);
  assert.deepEqual([calls.before, calls.after], [1, 1]);
  // sleep 2 s, then until t0 + 4 s (sent in whole seconds): "after" runs no earlier than ~3.5 s.
  assert.ok(times.after - times.t0 >= 3400, `after ran ${times.after - times.t0} ms after before`);
  const types = run.steps.flatMap((g) => g.steps.map((s) => s.stepType));
  assert.deepEqual(types, ["Initial", "Run", "SleepFor", "SleepUntil", "Run"]);
  assert.deepEqual(app.errors, []);
});

test("parallel steps run once each and the run continues with all their results", async () => {
  const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/parallel"), body: {} });
  const run = await runInState(app.client, workflowRunId, "RUN_SUCCESS");
  assert.deepEqual(calls, { ...calls, p1: 1, p2: 1, p3: 1, sum: 1 });
  assert.equal(parallelResult, 321);
  assert.equal(JSON.parse(run.workflowRunResponse), 321);
  const parallel = run.steps.find((g) => g.type === "parallel");
  assert.deepEqual(parallel.steps.map((s) => s.stepName).sort(), ["p1", "p2", "p3"]);
  // init, 3 plan steps, 3 results, the sum: 8 hits.
  assert.equal(app.hits["/wf/parallel"], 8);
  assert.deepEqual(app.errors, []);
});
