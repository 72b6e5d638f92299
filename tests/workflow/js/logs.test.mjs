// client.logs beyond the recorded steps: a step being retried shows its errors in the "next" group,
// a sleep not over yet and a waitForEvent not notified yet show there too, and a trigger answered by
// something that is not a workflow (WF_DetectTrigger) fails the run with the SDK's wording.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { startServer, startApp, runInState, until, USER } from "./helpers.mjs";

let server, app;
const calls = { first: 0, flaky: 0, last: 0, napped: 0, approved: 0, sink: 0 };

before(async () => {
  server = await startServer();
  app = await startApp(server, {
    routes: {
      "/wf/flaky": async (context) => {
        await context.run("first", () => (calls.first++, "a"));
        const b = await context.run("flaky", () => {
          calls.flaky++;
          if (calls.flaky === 1) throw new Error("flaky down once");
          return "b";
        });
        return await context.run("last", () => (calls.last++, `a${b}`));
      },
      "/wf/nap": async (context) => {
        // An hour: the test cancels it while it sleeps, however slow the machine.
        await context.sleep("nap", "1h");
        calls.napped++;
      },
      "/wf/approval": async (context) => {
        const { eventData, timeout } = await context.waitForEvent("approval", "logs-approval", { timeout: "1h" });
        await context.run("approved", () => (calls.approved++, { eventData, timeout }));
      },
      "/wf/waiting": async (context) => {
        await context.waitForEvent("wait", context.requestPayload.event, { timeout: "1h" });
      },
      "/wf/broken": async (context) => {
        await context.run("breaks", () => {
          throw new Error(`broken ${context.requestPayload.n}`);
        });
      },
    },
    plain: {
      // A plain endpoint: answers 200 without the workflow SDK's headers.
      // The trigger's deliveries are counted; the failure callback (the SDK's trigger makes the
      // workflow URL its failureUrl) comes here too and is not.
      "/plain/sink": async (req, body) => {
        if (!("sourceMessageId" in JSON.parse(body || "{}"))) calls.sink++;
        return { status: 200, body: "{}" };
      },
    },
  });
});

after(async () => {
  await app?.close();
  await server?.stop();
});

const nextGroup = (run) => run.steps.find((g) => g.type === "next");

async function logOf(workflowRunId) {
  const { runs } = await app.client.logs({ workflowRunId });
  return runs.find((r) => r.workflowRunId === workflowRunId);
}

test("a step that fails once shows STEP_RETRY with its error in the next group, then succeeds", async () => {
  const { workflowRunId } = await app.client.trigger({
    url: app.url("/wf/flaky"),
    body: {},
    retries: 2,
    retryDelay: "3000",
  });
  // Between the failed attempt and its retry (3 s later): the message being retried is "next".
  const retrying = await until(
    async () => {
      const run = await logOf(workflowRunId);
      return run && nextGroup(run)?.steps.find((s) => s.state === "STEP_RETRY") && run;
    },
    { what: "a STEP_RETRY step in the next group" },
  );
  assert.equal(retrying.workflowState, "RUN_STARTED");
  const step = nextGroup(retrying).steps.find((s) => s.state === "STEP_RETRY");
  assert.equal(step.stepName, "flaky", "named by the SDK's Upstash-Error-Step-Name header");
  assert.equal(step.retries, 2, "the trigger's retries, inherited");
  assert.equal(step.errors.length, 1);
  assert.equal(step.errors[0].status, 500);
  assert.match(step.errors[0].body, /flaky down once/);
  assert.ok(step.errors[0].error.length > 0);
  assert.ok(step.errors[0].time >= retrying.workflowRunCreatedAt);
  assert.ok(step.nextDeliveryTime > step.errors[0].time);
  // The step delivered with that message ("first") is recorded: it succeeded.
  const names = retrying.steps.filter((g) => g.type !== "next").flatMap((g) => g.steps.map((s) => s.stepName));
  assert.deepEqual(names, ["init", "first"]);
  const first = retrying.steps[1].steps[0];
  assert.equal(first.state, "STEP_SUCCESS");
  assert.equal(first.messageId, step.messageId, "the retried message is the one carrying the first step");

  const done = await runInState(app.client, workflowRunId, "RUN_SUCCESS", 20000);
  assert.equal(JSON.parse(done.workflowRunResponse), "ab");
  assert.deepEqual([calls.first, calls.flaky, calls.last], [1, 2, 1]);
  assert.equal(nextGroup(done), undefined, "nothing is under way once the run has finished");
  assert.deepEqual(
    done.steps.flatMap((g) => g.steps.map((s) => [s.stepName, s.state])),
    [["init", "STEP_SUCCESS"], ["first", "STEP_SUCCESS"], ["flaky", "STEP_SUCCESS"], ["last", "STEP_SUCCESS"]],
  );
});

test("a sleeping run shows its sleep in the next group while it sleeps", async () => {
  const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/nap"), body: {} });
  const run = await until(
    async () => {
      const r = await logOf(workflowRunId);
      return r && nextGroup(r)?.steps.some((s) => s.stepName === "nap") && r;
    },
    { what: "the sleep in the next group" },
  );
  const nap = nextGroup(run).steps.find((s) => s.stepName === "nap");
  assert.equal(nap.state, "STEP_PROGRESS");
  assert.equal(nap.errors, undefined);
  // Not among the recorded steps while it sleeps.
  assert.deepEqual(run.steps.filter((g) => g.type !== "next").flatMap((g) => g.steps.map((s) => s.stepName)), ["init"]);
  // Cancelled: the sleep's message is cancelled with it.
  await app.client.cancel({ ids: [workflowRunId] });
  const cancelled = await runInState(app.client, workflowRunId, "RUN_CANCELED");
  const dropped = nextGroup(cancelled).steps.find((s) => s.messageId === nap.messageId);
  assert.equal(dropped.state, "STEP_CANCELED");
  assert.equal(calls.napped, 0);
});

test("a run waiting for an event shows the wait in the next group until it is notified", async () => {
  const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/approval"), body: {} });
  const run = await until(
    async () => {
      const r = await logOf(workflowRunId);
      return r && nextGroup(r)?.steps.some((s) => s.waitEventId === "logs-approval") && r;
    },
    { what: "the wait in the next group" },
  );
  const wait = nextGroup(run).steps.find((s) => s.waitEventId === "logs-approval");
  assert.equal(wait.stepName, "approval");
  assert.equal(wait.state, "STEP_PROGRESS");
  assert.ok(wait.waitTimeoutDeadline > Date.now() + 3500 * 1000, "the deadline is an hour out");
  await app.client.notify({ eventId: "logs-approval", eventData: { ok: true } });
  const done = await runInState(app.client, workflowRunId, "RUN_SUCCESS");
  assert.equal(nextGroup(done), undefined);
  assert.equal(calls.approved, 1);
});

test("WF_DetectTrigger: a trigger answered 2xx by a non-workflow endpoint fails the run", async () => {
  const { workflowRunId } = await app.client.trigger({ url: app.url("/plain/sink"), body: { x: 1 } });
  const run = await runInState(app.client, workflowRunId, "RUN_FAILED");
  assert.equal(calls.sink, 1);
  const failed = nextGroup(run).steps.find((s) => s.state === "STEP_FAILED");
  assert.ok(failed, "the trigger's message is the failed step");
  assert.equal(failed.errors.at(-1).status, 200);
  assert.match(failed.errors.at(-1).error, /detected a non-workflow destination for trigger\/invoke/);
  // It is not retried: one delivery of the trigger, and its step is in the DLQ.
  const dlq = await (await fetch(`${server.baseUrl}/v2/dlq?workflowRunId=${workflowRunId}`, {
    headers: { Authorization: `Bearer ${USER.token}` },
  })).json();
  assert.equal(dlq.messages.length, 1);
  assert.match(dlq.messages[0].error ?? "", /non-workflow destination/);
});

// The logs of a page are read per page, not per run: one unfiltered page holding several runs must
// still give each run its own waiters, failed step and dlqId.
test("one page of several runs gives each run its own waiters, failed step and dlqId", async () => {
  const waiting = [];
  for (const event of ["page-e1", "page-e2"]) {
    const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/waiting"), body: { event } });
    waiting.push({ workflowRunId, event });
  }
  const broken = [];
  for (const n of [1, 2]) {
    const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/broken"), body: { n }, retries: 0 });
    broken.push(workflowRunId);
  }
  for (const id of broken) await runInState(app.client, id, "RUN_FAILED");
  const page = await until(
    async () => {
      const { runs } = await app.client.logs({ count: 100 });
      const ok = waiting.every(({ workflowRunId }) =>
        nextGroup(runs.find((r) => r.workflowRunId === workflowRunId) ?? { steps: [] })?.steps.some((s) => s.waitEventId),
      );
      return ok && runs;
    },
    { what: "both runs waiting in one page" },
  );
  const of = (id) => page.find((r) => r.workflowRunId === id);
  for (const { workflowRunId, event } of waiting) {
    const waits = nextGroup(of(workflowRunId)).steps.filter((s) => s.waitEventId);
    assert.deepEqual(waits.map((s) => s.waitEventId), [event], `the waiter of ${workflowRunId}`);
  }
  for (const id of broken) {
    const run = of(id);
    const [entry] = (await app.client.dlq.list({ filter: { workflowRunId: id } })).messages;
    assert.equal(run.dlqId, entry.dlqId, `the dlqId of ${id}`);
    const failed = nextGroup(run).steps.filter((s) => s.state === "STEP_FAILED");
    assert.deepEqual(failed.map((s) => s.messageId), [entry.messageId]);
    assert.equal(run.steps.filter((g) => g.type === "next").length, 1);
  }
  for (const { event } of waiting) await app.client.notify({ eventId: event, eventData: {} });
  for (const { workflowRunId } of waiting) await runInState(app.client, workflowRunId, "RUN_SUCCESS");
});
