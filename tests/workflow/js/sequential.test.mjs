// Sequential `context.run` steps: each runs once, each sees the previous result, and the run ends
// with its return value.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { startServer, startApp, runInState, USER } from "./helpers.mjs";

let server, app;
const seen = [];
const calls = { a: 0, b: 0, c: 0 };

before(async () => {
  server = await startServer();
  app = await startApp(server, {
    routes: {
      "/wf/seq": async (context) => {
        const input = context.requestPayload;
        const a = await context.run("a", () => {
          calls.a++;
          return input.n + 1;
        });
        const b = await context.run("b", () => {
          calls.b++;
          return { twice: a * 2 };
        });
        const c = await context.run("c", () => {
          calls.c++;
          return `${b.twice}!`;
        });
        seen.push([a, b, c]);
        return { done: c };
      },
    },
  });
});

after(async () => {
  await app?.close();
  await server?.stop();
});

test("sequential run steps execute once each, in order, with the previous results", async () => {
  const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/seq"), body: { n: 4 } });
  assert.match(workflowRunId, /^wfr_/);
  const run = await runInState(app.client, workflowRunId, "RUN_SUCCESS");
  assert.deepEqual(calls, { a: 1, b: 1, c: 1 });
  assert.deepEqual(seen.at(-1), [5, { twice: 10 }, "10!"]);
  assert.deepEqual(JSON.parse(run.workflowRunResponse), { done: "10!" });
  const names = run.steps.flatMap((g) => g.steps.map((s) => s.stepName));
  assert.deepEqual(names, ["init", "a", "b", "c"]);
  // init + one delivery per step result (a, b, c) = 4 endpoint hits.
  assert.equal(app.hits["/wf/seq"], 4);
  assert.deepEqual(app.errors, []);
  // The run is over: the lazy fetch answers 404 and a step publish 400.
  const auth = { Authorization: `Bearer ${USER.token}` };
  const fetched = await fetch(`${server.baseUrl}/v2/workflows/runs/${workflowRunId}`, { headers: auth });
  assert.equal(fetched.status, 404);
  const step = await fetch(`${server.baseUrl}/v2/batch`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify([{ destination: app.url("/wf/seq"), headers: {
      "Upstash-Workflow-RunId": workflowRunId, "Upstash-Workflow-Init": "false" }, body: "{}" }]),
  });
  assert.equal(step.status, 400);
  assert.match((await step.json()).error, /not running/);
});

test("a repeated run id is deduplicated", async () => {
  const workflowRunId = `wfr_dup${Date.now()}`;
  await app.client.trigger({ url: app.url("/wf/seq"), body: { n: 1 }, workflowRunId: workflowRunId.slice(4) });
  await runInState(app.client, workflowRunId, "RUN_SUCCESS");
  const before = calls.a;
  await app.client.trigger({ url: app.url("/wf/seq"), body: { n: 1 }, workflowRunId: workflowRunId.slice(4) });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(calls.a, before, "a deduplicated trigger runs nothing");
});

test("workflow features this server does not have answer 501 with the feature named", async () => {
  const auth = { Authorization: `Bearer ${USER.token}` };
  // POST /v2/trigger/... (triggering without an SDK): the installed SDK never calls it.
  for (const [method, path, feature] of [
    ["POST", "/v2/trigger/http://127.0.0.1:1/x", /workflow endpoint/],
    ["POST", "/v2/workflows/dlq/elsewhere", /workflow DLQ action/],
  ]) {
    const r = await fetch(`${server.baseUrl}${path}`, { method, headers: auth });
    assert.equal(r.status, 501, path);
    assert.match((await r.json()).error, feature);
  }
  // The DLQ actions by filter are supported (dlq.test.mjs): an unknown filter key is a 400.
  const bad = await fetch(`${server.baseUrl}/v2/workflows/dlq/restart?nope=1`, { method: "POST", headers: auth });
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error, /unknown workflow DLQ filter "nope"/);
});
