// context.invoke: a child run starts with the invoke body; when it finishes (or fails) the
// parent resumes with { body, isFailed, isCanceled }.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { WorkflowNonRetryableError } from "@upstash/workflow";
import { startServer, startApp, runInState } from "./helpers.mjs";

let server, app;
const results = {};
const calls = { child: 0, failingChild: 0 };

// What `createWorkflow`/`serveMany` of the framework adapters give `invoke`: the target's
// workflowId, which replaces the last segment of the invoking workflow's URL.
const child = { workflowId: "child" };
const failingChild = { workflowId: "failing-child" };

before(async () => {
  server = await startServer();
  app = await startApp(server, {
    routes: {
      "/wf/parent": async (context) => {
        const res = await context.invoke("call child", { workflow: child, body: { n: 21 } });
        const bad = await context.invoke("call failing child", { workflow: failingChild, body: "x", retries: 0 });
        await context.run("record", () => {
          results.parent = { res, bad };
        });
      },
      "/wf/child": async (context) => {
        const doubled = await context.run("double", () => (calls.child++, context.requestPayload.n * 2));
        return { doubled };
      },
      "/wf/failing-child": async (context) => {
        await context.run("fail", () => {
          calls.failingChild++;
          throw new WorkflowNonRetryableError("child gave up");
        });
      },
    },
  });
});

after(async () => {
  await app?.close();
  await server?.stop();
});

test("the parent resumes with the child's result, and with isFailed when a child fails", async () => {
  const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/parent"), body: {} });
  await runInState(app.client, workflowRunId, "RUN_SUCCESS", 30000);
  assert.deepEqual(results.parent.res, { body: { doubled: 42 }, isFailed: false, isCanceled: false });
  assert.equal(results.parent.bad.isFailed, true);
  assert.equal(results.parent.bad.isCanceled, false);
  assert.deepEqual([calls.child, calls.failingChild], [1, 1]);
  // init + the child's result + the failed child's result + record = 4 deliveries to the parent.
  assert.equal(app.hits["/wf/parent"], 4);
  // The child: init, "double"'s result.
  assert.equal(app.hits["/wf/child"], 2);
});
