// A failing step: retries (inherited from the trigger) run out, the run fails, its step is in the
// DLQ, and the failure function runs once with the error and the run's payload. A non-retryable
// error fails at once. Cancelling a sleeping run drops its next step.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { WorkflowNonRetryableError } from "@upstash/workflow";
import { startServer, startApp, runInState, until, sleep, USER, execSql } from "./helpers.mjs";

let server, app;
const calls = { ok: 0, boom: 0, fatal: 0, after: 0, cancelFirst: 0, cancelSecond: 0, flakyFirst: 0, flaky: 0, flakyLast: 0 };
let flakyFails = true;
const failures = [];

before(async () => {
  server = await startServer();
  const failureFunction = async ({ context, failStatus, failResponse }) => {
    failures.push({ runId: context.workflowRunId, payload: context.requestPayload, failStatus, failResponse });
    return "handled";
  };
  app = await startApp(server, {
    routes: {
      "/wf/fail": {
        fn: async (context) => {
          await context.run("ok", () => (calls.ok++, "fine"));
          await context.run("boom", () => {
            calls.boom++;
            throw new Error(`boom ${calls.boom}`);
          });
          calls.after++;
        },
        options: { failureFunction },
      },
      "/wf/fatal": {
        fn: async (context) => {
          await context.run("fatal", () => {
            calls.fatal++;
            throw new WorkflowNonRetryableError("no point retrying");
          });
        },
        options: { failureFunction },
      },
      "/wf/flaky": async (context) => {
        await context.run("first", () => (calls.flakyFirst++, "a"));
        const b = await context.run("flaky", () => {
          calls.flaky++;
          if (flakyFails) throw new Error("down for now");
          return "b";
        });
        return await context.run("last", () => (calls.flakyLast++, `a${b}`));
      },
      "/wf/parked": async (context) => {
        await context.sleep("park", 600);
      },
      "/wf/cancel": async (context) => {
        await context.run("first", () => (calls.cancelFirst++, 1));
        await context.sleep("long", 3);
        await context.run("second", () => (calls.cancelSecond++, 2));
      },
    },
  });
});

after(async () => {
  await app?.close();
  await server?.stop();
});

test("a step whose retries run out fails the run, lands in the DLQ and calls the failure function", async () => {
  const { workflowRunId } = await app.client.trigger({
    url: app.url("/wf/fail"),
    body: { order: 7 },
    retries: 1,
    retryDelay: "100",
  });
  const run = await runInState(app.client, workflowRunId, "RUN_FAILED", 30000);
  assert.equal(calls.ok, 1);
  // One attempt and one retry, inherited from the trigger's retries: 1.
  assert.equal(calls.boom, 2);
  assert.equal(calls.after, 0);
  await until(() => failures.find((f) => f.runId === workflowRunId), { what: "failure function" });
  const failure = failures.find((f) => f.runId === workflowRunId);
  assert.deepEqual(failure.payload, { order: 7 });
  assert.equal(failure.failStatus, 500);
  assert.match(failure.failResponse, /boom 2/);
  assert.equal(failures.filter((f) => f.runId === workflowRunId).length, 1);
  assert.ok(run.workflowRunCompletedAt >= run.workflowRunCreatedAt);
  const dlq = await (await fetch(`${server.baseUrl}/v2/dlq`, { headers: { Authorization: `Bearer ${USER.token}` } })).json();
  const entry = dlq.messages.find((m) => m.url === app.url("/wf/fail"));
  assert.ok(entry, "the failed step is in the DLQ");
  assert.equal(entry.workflowRunId, workflowRunId);
  assert.equal(run.dlqId, entry.dlqId, "client.logs names the failed run's DLQ entry");
  // client.dlq.retryFailureFunction sends the failure callback again.
  const retried = await app.client.dlq.retryFailureFunction({ dlqId: entry.dlqId });
  assert.equal(retried.workflowRunId, workflowRunId);
  await until(() => failures.filter((f) => f.runId === workflowRunId).length === 2, { what: "second failure call" });
  assert.deepEqual(failures.filter((f) => f.runId === workflowRunId)[1].payload, { order: 7 });
});

test("a non-retryable error (489) fails the run at once", async () => {
  const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/fatal"), body: "x" });
  await runInState(app.client, workflowRunId, "RUN_FAILED", 20000);
  assert.equal(calls.fatal, 1);
  await until(() => failures.find((f) => f.runId === workflowRunId), { what: "failure function" });
  assert.match(failures.find((f) => f.runId === workflowRunId).failResponse, /no point retrying/);
});

test("cancelling a sleeping run drops its next step", async () => {
  const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/cancel"), body: {} });
  await until(() => calls.cancelFirst === 1, { what: "first step" });
  // Cancel once the sleep is published (client.logs shows it under way), not after a guessed delay.
  await until(
    async () => {
      const { runs } = await app.client.logs({ workflowRunId });
      const next = runs[0]?.steps.find((g) => g.type === "next");
      return next?.steps.some((s) => s.stepName === "long");
    },
    { what: "the sleep under way" },
  );
  const answer = await app.client.cancel({ ids: [workflowRunId] });
  assert.deepEqual(answer, { cancelled: 1 });
  await runInState(app.client, workflowRunId, "RUN_CANCELED");
  // Cancelling again changes nothing and still answers.
  assert.deepEqual(await app.client.cancel({ ids: [workflowRunId] }), { cancelled: 0 });
  await sleep(4000);
  assert.equal(calls.cancelSecond, 0, "the step after the sleep never ran");
  assert.equal(app.hits["/wf/cancel"], 2, "init and the first step's result only");
});

test("client.dlq.resume continues a failed run from its failed step; client.dlq.delete drops an entry", async () => {
  const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/flaky"), body: {}, retries: 0 });
  await runInState(app.client, workflowRunId, "RUN_FAILED");
  assert.deepEqual([calls.flakyFirst, calls.flaky, calls.flakyLast], [1, 1, 0]);
  const { messages } = await app.client.dlq.list();
  const entry = messages.find((m) => m.url === app.url("/wf/flaky"));
  assert.ok(entry, "the failed step is in the DLQ");
  flakyFails = false;
  const resumed = await app.client.dlq.resume({ dlqId: entry.dlqId });
  assert.equal(resumed.workflowRunId, workflowRunId);
  const run = await runInState(app.client, workflowRunId, "RUN_SUCCESS");
  assert.equal(JSON.parse(run.workflowRunResponse), "ab");
  // "first" is not run again: the resumed step replays the stored log.
  assert.deepEqual([calls.flakyFirst, calls.flaky, calls.flakyLast], [1, 2, 1]);
  await assert.rejects(app.client.dlq.resume({ dlqId: entry.dlqId }), /not found/);

  flakyFails = true;
  const second = await app.client.trigger({ url: app.url("/wf/flaky"), body: {}, retries: 0 });
  await runInState(app.client, second.workflowRunId, "RUN_FAILED");
  const again = (await app.client.dlq.list()).messages.find((m) => m.url === app.url("/wf/flaky"));
  assert.equal((await app.client.dlq.delete([again.dlqId])).deleted, 1);
  assert.equal((await app.client.dlq.list()).messages.filter((m) => m.url === app.url("/wf/flaky")).length, 0);

  // restart: a new run from the beginning, with the same payload.
  const third = await app.client.trigger({ url: app.url("/wf/flaky"), body: { again: true }, retries: 0 });
  await runInState(app.client, third.workflowRunId, "RUN_FAILED");
  const failed = (await app.client.dlq.list()).messages.find((m) => m.url === app.url("/wf/flaky"));
  flakyFails = false;
  const before = calls.flakyFirst;
  const restarted = await app.client.dlq.restart({ dlqId: failed.dlqId });
  assert.notEqual(restarted.workflowRunId, third.workflowRunId);
  await runInState(app.client, restarted.workflowRunId, "RUN_SUCCESS");
  assert.equal(calls.flakyFirst, before + 1, "a restart runs the first step again");
  assert.equal((await app.client.dlq.list()).messages.filter((m) => m.url === app.url("/wf/flaky")).length, 0);
});

// Delivery commits a failed step's DLQ entry (and a failing note), then fails its run in a second
// commit. A crash between the two leaves the run RUN_STARTED with its step in the DLQ and the note:
// dlq.resume and dlq.restart take the note and fail the run first, so they still work. (The notes
// are young here, so the housekeeping, which takes notes older than 5 s, leaves them to the DLQ
// actions; a run with no note is not failed by them: it may be one a resume revived.)
test("a run left running by a crash after its step reached the DLQ still resumes and restarts", async () => {
  flakyFails = true;
  const crashed = [];
  for (const n of [1, 2]) {
    const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/flaky"), body: { n }, retries: 0 });
    await runInState(app.client, workflowRunId, "RUN_FAILED");
    crashed.push(workflowRunId);
  }
  await server.kill9();
  const ids = crashed.map((id) => `'${id}'`).join(", ");
  execSql(
    server,
    `UPDATE workflow_runs SET state = 'RUN_STARTED', failure = NULL WHERE run_id IN (${ids});
     INSERT INTO workflow_failing (user_id, run_id, message_id, error, at)
       SELECT user_id, run_id, message_id, 'destination answered 500', ${Date.now() + 600_000} FROM workflow_steps
       WHERE run_id IN (${ids}) AND seq > 0;`,
  );
  await server.restart();
  await runInState(app.client, crashed[0], "RUN_STARTED");
  const entries = (await app.client.dlq.list()).messages.filter((m) => m.url === app.url("/wf/flaky"));
  const entryOf = (runId) => entries.find((m) => m.workflowRunId === runId || JSON.stringify(m).includes(runId));
  flakyFails = false;
  const resumed = await app.client.dlq.resume({ dlqId: entryOf(crashed[0]).dlqId });
  assert.equal(resumed.workflowRunId, crashed[0]);
  await runInState(app.client, crashed[0], "RUN_SUCCESS");
  const restarted = await app.client.dlq.restart({ dlqId: entryOf(crashed[1]).dlqId });
  assert.notEqual(restarted.workflowRunId, crashed[1]);
  await runInState(app.client, restarted.workflowRunId, "RUN_SUCCESS");
  await runInState(app.client, crashed[1], "RUN_FAILED");
});

// The same crash, as it happens now: the step's DLQ commit also notes its run as failing
// (workflow_failing), and ending the run clears the note. A crash between leaves the note; the
// leader's housekeeping, which runs at start, fails the run from it.
test("a run whose step failed just before a crash is failed at the next start", async () => {
  flakyFails = true;
  const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/flaky"), body: { crash: 1 }, retries: 0 });
  await runInState(app.client, workflowRunId, "RUN_FAILED");
  await server.kill9();
  // Back to the state between the two commits: run running, the note in place (old enough).
  execSql(
    server,
    `UPDATE workflow_runs SET state = 'RUN_STARTED', failure = NULL WHERE run_id = '${workflowRunId}';
     INSERT INTO workflow_failing (user_id, run_id, message_id, error, at)
       SELECT user_id, run_id, message_id, 'destination answered 500', 1 FROM workflow_steps
       WHERE run_id = '${workflowRunId}' ORDER BY seq DESC LIMIT 1;`,
  );
  await server.restart();
  const run = await runInState(app.client, workflowRunId, "RUN_FAILED", 20000);
  assert.equal(run.failureReason, "destination answered 500");
  // Failed once: the note is gone, and the DLQ entry can resume it.
  const entry = (await app.client.dlq.list({ filter: { workflowRunId } })).messages[0];
  assert.ok(entry, "its step is in the DLQ");
  flakyFails = false;
  const resumed = await app.client.dlq.resume({ dlqId: entry.dlqId });
  assert.equal(resumed.workflowRunId, workflowRunId);
  await runInState(app.client, workflowRunId, "RUN_SUCCESS");
});

// cancel({ all: true }) cancels up to count (100) runs per call, as the SDK documents; repeating it
// until it answers 0 cancels every running run.
test("cancel({ all: true }) cancels 100 runs per call and a repeat the rest", async () => {
  const requests = Array.from({ length: 130 }, (_, n) => ({ url: app.url("/wf/parked"), body: { n } }));
  const started = await app.client.trigger(requests);
  assert.equal(started.length, 130);
  const ids = started.map((s) => s.workflowRunId);
  await until(() => (app.hits["/wf/parked"] || 0) >= 130, { what: "every parked run started" });
  assert.deepEqual(await app.client.cancel({ all: true }), { cancelled: 100 });
  assert.deepEqual(await app.client.cancel({ all: true, count: 20 }), { cancelled: 20 });
  assert.deepEqual(await app.client.cancel({ all: true }), { cancelled: 10 });
  assert.deepEqual(await app.client.cancel({ all: true }), { cancelled: 0 });
  for (const id of [ids[0], ids[64], ids[129]]) await runInState(app.client, id, "RUN_CANCELED");
});

// client.dlq.list sends source=workflow and its filter (workflowRunId, workflowCreatedAt) as query keys.
test("client.dlq.list filters by workflow run id and creation time", async () => {
  flakyFails = true;
  const runs = [];
  for (const n of [1, 2]) {
    const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/flaky"), body: { n }, retries: 0 });
    runs.push(await runInState(app.client, workflowRunId, "RUN_FAILED"));
  }
  const [a, b] = runs;
  const listed = await app.client.dlq.list({ filter: { workflowRunId: a.workflowRunId } });
  assert.equal(listed.messages.length, 1, JSON.stringify(listed.messages.map((m) => m.dlqId)));
  assert.ok(JSON.stringify(listed.messages[0]).includes(a.workflowRunId));
  const both = await app.client.dlq.list({ filter: { workflowCreatedAt: b.workflowRunCreatedAt, workflowRunId: b.workflowRunId } });
  assert.equal(both.messages.length, 1);
  const none = await app.client.dlq.list({ filter: { workflowCreatedAt: b.workflowRunCreatedAt + 1, workflowRunId: b.workflowRunId } });
  assert.equal(none.messages.length, 0);
  // A plain message's DLQ entry is not a workflow's: source=workflow leaves it out.
  const auth = { Authorization: `Bearer ${USER.token}` };
  const plainUrl = app.url("/not-a-workflow");
  const published = await fetch(`${server.baseUrl}/v2/publish/${plainUrl}`, {
    method: "POST",
    headers: { ...auth, "Upstash-Retries": "0" },
    body: "plain",
  });
  assert.equal(published.status, 201, await published.text());
  await until(async () => {
    const r = await fetch(`${server.baseUrl}/v2/dlq`, { headers: auth });
    return (await r.json()).messages.some((m) => m.url === plainUrl);
  }, { what: "the plain message in the DLQ" });
  const all = await app.client.dlq.list();
  assert.ok(all.messages.length >= 2);
  assert.ok(!all.messages.some((m) => m.url === plainUrl), "source=workflow lists workflow messages only");
  const bad = await fetch(`${server.baseUrl}/v2/dlq?source=nope`, { headers: { Authorization: `Bearer ${USER.token}` } });
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error, /source/);
});
