// The workflow DLQ actions by filter (client.dlq.resume / restart / delete with { filter } or
// { all: true }): one page of matching entries per call (count, 100 by default), and a cursor to go
// on from until it is undefined.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { startServer, startApp, runInState, USER } from "./helpers.mjs";

let server, app;
let failing = true;
const calls = { a: 0, b: 0, other: 0 };

before(async () => {
  server = await startServer();
  const flaky = (name) => async (context) => {
    await context.run("start", () => "s");
    return await context.run(name, () => {
      calls[name]++;
      if (failing) throw new Error(`${name} is down`);
      return `${name} ok`;
    });
  };
  // A parallel block: a branch that fails while its sibling (a sleep) is still pending.
  const parallel = async (context) => {
    await Promise.all([
      context.run("pa", () => {
        calls.pa = (calls.pa ?? 0) + 1;
        if (failing) throw new Error("pa is down");
        return "pa ok";
      }),
      context.sleep("pb", 4),
    ]);
    return "both";
  };
  app = await startApp(server, {
    routes: { "/wf/a": flaky("a"), "/wf/b": flaky("b"), "/wf/other": flaky("other"), "/wf/par": parallel },
  });
});

after(async () => {
  await app?.close();
  await server?.stop();
});

async function failedRun(path, body = {}) {
  const { workflowRunId } = await app.client.trigger({ url: app.url(path), body, retries: 0 });
  return await runInState(app.client, workflowRunId, "RUN_FAILED");
}

const dlqRuns = async () => (await app.client.dlq.list()).messages.map((m) => m.workflowRunId);

test("resume, restart and delete select DLQ entries by filter, a page at a time", async () => {
  const a = await failedRun("/wf/a");
  const b1 = await failedRun("/wf/b", { n: 1 });
  const b2 = await failedRun("/wf/b", { n: 2 });
  const other = await failedRun("/wf/other");
  assert.equal((await dlqRuns()).length, 4);
  failing = false;

  // resume by workflowRunId: only that run continues, from its failed step.
  const resumed = await app.client.dlq.resume({ filter: { workflowRunId: a.workflowRunId } });
  assert.deepEqual(resumed.workflowRuns.map((r) => r.workflowRunId), [a.workflowRunId]);
  assert.equal(resumed.cursor, undefined);
  const done = await runInState(app.client, a.workflowRunId, "RUN_SUCCESS");
  assert.equal(JSON.parse(done.workflowRunResponse), "a ok");
  assert.equal((await dlqRuns()).length, 3);

  // restart by workflowUrl: a new run of that URL, from the beginning.
  const restarted = await app.client.dlq.restart({ filter: { workflowUrl: app.url("/wf/other") } });
  assert.equal(restarted.workflowRuns.length, 1);
  assert.notEqual(restarted.workflowRuns[0].workflowRunId, other.workflowRunId);
  await runInState(app.client, restarted.workflowRuns[0].workflowRunId, "RUN_SUCCESS");
  assert.deepEqual((await dlqRuns()).sort(), [b1.workflowRunId, b2.workflowRunId].sort());

  // resume { all: true, count: 1 }: one entry per call, a cursor until none is left.
  const first = await app.client.dlq.resume({ all: true, count: 1 });
  assert.equal(first.workflowRuns.length, 1);
  assert.ok(first.cursor, "a cursor while entries may follow");
  const second = await app.client.dlq.resume({ all: true, count: 1, cursor: first.cursor });
  assert.equal(second.workflowRuns.length, 1);
  const rest = await app.client.dlq.resume({ all: true, count: 1, cursor: second.cursor });
  assert.equal(rest.workflowRuns.length, 0);
  assert.equal(rest.cursor, undefined);
  const both = [first.workflowRuns[0].workflowRunId, second.workflowRuns[0].workflowRunId].sort();
  assert.deepEqual(both, [b1.workflowRunId, b2.workflowRunId].sort());
  for (const id of both) await runInState(app.client, id, "RUN_SUCCESS");

  // delete by filter, looping on the cursor as the SDK documents.
  failing = true;
  const x = await failedRun("/wf/b", { n: 3 });
  const y = await failedRun("/wf/b", { n: 4 });
  const z = await failedRun("/wf/a", { n: 5 });
  let cursor;
  let deleted = 0;
  let calls = 0;
  do {
    const r = await app.client.dlq.delete({ filter: { workflowUrl: app.url("/wf/b") }, count: 1, cursor });
    deleted += r.deleted;
    cursor = r.cursor;
    calls++;
  } while (cursor && calls < 10);
  assert.equal(deleted, 2);
  assert.deepEqual(await dlqRuns(), [z.workflowRunId], `${x.workflowRunId} and ${y.workflowRunId} deleted`);

  // A filter this server cannot apply is refused, nothing is changed.
  await assert.rejects(app.client.dlq.delete({ filter: { failureFunctionState: "CALLBACK_FAIL" } }), /failureFunctionState/);
  assert.deepEqual(await dlqRuns(), [z.workflowRunId]);
  assert.equal((await app.client.dlq.delete({ all: true })).deleted, 1);
  assert.deepEqual(await dlqRuns(), []);
});

// Raw calls, to send what the SDK would not (a bad override, ids with a filter).
async function raw(method, pathAndQuery, headers = {}) {
  const res = await fetch(`${server.baseUrl}${pathAndQuery}`, {
    method,
    headers: { Authorization: `Bearer ${USER.token}`, ...headers },
  });
  return { status: res.status, body: await res.json() };
}

test("a bad override or ids with a filter answer 400 and change nothing; dlq.list filters by workflowUrl", async () => {
  failing = true;
  const r = await failedRun("/wf/a", { n: 6 });
  const [entry] = (await app.client.dlq.list({ filter: { workflowRunId: r.workflowRunId } })).messages;
  assert.ok(entry, "the failed step is in the DLQ");
  const before = calls.a;
  for (const action of ["resume", "restart"]) {
    for (const retries of ["abc", "-1"]) {
      for (const query of ["count=100", `workflowRunId=${r.workflowRunId}`, `dlqIds=${entry.dlqId}`]) {
        const res = await raw("POST", `/v2/workflows/dlq/${action}?${query}`, { "Upstash-Retries": retries });
        assert.equal(res.status, 400, `${action}?${query} with Upstash-Retries: ${retries}`);
        assert.match(res.body.error, /retries/i);
      }
    }
    const both = await raw("POST", `/v2/workflows/dlq/${action}?dlqIds=${entry.dlqId}&workflowRunId=${r.workflowRunId}`);
    assert.equal(both.status, 400);
    assert.match(both.body.error, /dlqIds cannot be combined with workflowRunId/);
  }
  const both = await raw("DELETE", `/v2/workflows/dlq?dlqIds=${entry.dlqId}&label=x`);
  assert.equal(both.status, 400);
  // Nothing changed: the run is still failed, its entry still there, the step not run again.
  assert.equal((await runInState(app.client, r.workflowRunId, "RUN_FAILED")).workflowState, "RUN_FAILED");
  assert.deepEqual((await app.client.dlq.list({ filter: { workflowRunId: r.workflowRunId } })).messages.map((m) => m.dlqId), [entry.dlqId]);
  assert.equal(calls.a, before);

  // client.dlq.list applies workflowUrl (as resume/restart/delete do) and refuses failureFunctionState.
  const other = await failedRun("/wf/other", { n: 7 });
  const byUrl = await app.client.dlq.list({ filter: { workflowUrl: app.url("/wf/other") } });
  assert.deepEqual(byUrl.messages.map((m) => m.workflowRunId), [other.workflowRunId]);
  await assert.rejects(app.client.dlq.list({ filter: { failureFunctionState: "CALLBACK_FAIL" } }), /failureFunctionState/);
  assert.equal((await app.client.dlq.delete({ all: true })).deleted, 2);
});

// Failing a parallel run cancels its other branches' messages; resuming it from the DLQ brings
// them back in their place, so the run finishes instead of waiting for them for good.
test("a parallel run whose branch failed finishes after dlq.resume", async () => {
  failing = true;
  const r = await failedRun("/wf/par");
  const [entry] = (await app.client.dlq.list({ filter: { workflowRunId: r.workflowRunId } })).messages;
  assert.ok(entry, "the failed branch is in the DLQ");
  // The sleep branch (4 s) was still pending when the other branch failed: cancelled with the
  // run, in the commit that failed it (the store's `end_run`), so the first read after
  // RUN_FAILED already shows it.
  const { runs } = await app.client.logs({ workflowRunId: r.workflowRunId });
  const run = runs.find((x) => x.workflowRunId === r.workflowRunId);
  const canceled = nextOf(run ?? r).filter((s) => s.state === "STEP_CANCELED").length;
  assert.equal(canceled, 1);
  failing = false;
  const resumed = await app.client.dlq.resume({ dlqId: entry.dlqId });
  assert.equal(resumed.workflowRunId, r.workflowRunId);
  const done = await runInState(app.client, r.workflowRunId, "RUN_SUCCESS", 30000);
  assert.equal(JSON.parse(done.workflowRunResponse), "both");
});

const nextOf = (run) => run.steps.find((g) => g.type === "next")?.steps ?? [];
