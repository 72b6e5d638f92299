// waitForEvent / notify: a waiter resumed by client.notify gets the event data; one whose
// timeout passes resumes with timeout: true; getWaiters lists them; a waiter survives a restart.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { startServer, startApp, runInState, until, sleep } from "./helpers.mjs";

let server, app;
const results = {};
const calls = { waitedSteps: 0 };

before(async () => {
  server = await startServer();
  app = await startApp(server, {
    routes: {
      "/wf/wait": async (context) => {
        const { orderId } = context.requestPayload;
        const res = await context.waitForEvent("approval", `approve-${orderId}`, { timeout: "30s" });
        await context.run("after", () => {
          calls.waitedSteps++;
          results[orderId] = res;
        });
      },
      "/wf/late-wait": async (context) => {
        await context.run("before", () => (calls.beforeLate = (calls.beforeLate ?? 0) + 1));
        await context.sleep("not waiting yet", 2);
        const res = await context.waitForEvent("late", "early-event", { timeout: "30s" });
        await context.run("after", () => {
          results.late = res;
        });
      },
      "/wf/timeout": async (context) => {
        const res = await context.waitForEvent("never", "nobody-sends-this", { timeout: 2 });
        await context.run("after", () => {
          results.timeout = res;
        });
      },
    },
  });
});

after(async () => {
  await app?.close();
  await server?.stop();
});

test("a waiter is resumed by notify with the event data", async () => {
  const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/wait"), body: { orderId: "o1" } });
  const waiters = await until(async () => {
    const w = await app.client.getWaiters({ eventId: "approve-o1" });
    return w.length === 1 && w;
  }, { what: "waiter registered" });
  assert.equal(waiters[0].url, app.url("/wf/wait"));
  const answer = await app.client.notify({ eventId: "approve-o1", eventData: { approved: true, by: "ann" } });
  assert.equal(answer.length, 1);
  assert.match(answer[0].messageId, /^msg_/);
  await runInState(app.client, workflowRunId, "RUN_SUCCESS");
  assert.deepEqual(results.o1, { eventData: { approved: true, by: "ann" }, timeout: false });
  assert.deepEqual(await app.client.getWaiters({ eventId: "approve-o1" }), []);
  // Nobody waits any more: a second notify resumes nothing.
  assert.deepEqual(await app.client.notify({ eventId: "approve-o1", eventData: "again" }), []);
  assert.equal(calls.waitedSteps, 1);
});

test("a run-scoped notify that comes before the wait is kept for it (lookback)", async () => {
  const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/late-wait"), body: {} });
  await until(() => calls.beforeLate === 1, { what: "first step" });
  const answer = await app.client.notify({ eventId: "early-event", eventData: { early: true }, workflowRunId });
  assert.deepEqual(answer, [], "nobody waits yet");
  await runInState(app.client, workflowRunId, "RUN_SUCCESS", 20000);
  assert.deepEqual(results.late, { eventData: { early: true }, timeout: false });
});

test("a waiter whose timeout passes resumes with timeout: true", async () => {
  const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/timeout"), body: {} });
  await runInState(app.client, workflowRunId, "RUN_SUCCESS", 20000);
  assert.deepEqual(results.timeout, { eventData: undefined, timeout: true });
});

test("a waiter survives a restart of the server", async () => {
  const { workflowRunId } = await app.client.trigger({ url: app.url("/wf/wait"), body: { orderId: "o2" } });
  await until(async () => (await app.client.getWaiters({ eventId: "approve-o2" })).length === 1, {
    what: "waiter registered",
  });
  await server.kill9();
  await server.restart();
  assert.equal((await app.client.getWaiters({ eventId: "approve-o2" })).length, 1);
  const answer = await app.client.notify({ eventId: "approve-o2", eventData: "yes", workflowRunId });
  assert.equal(answer.length, 1);
  await runInState(app.client, workflowRunId, "RUN_SUCCESS");
  assert.deepEqual(results.o2, { eventData: "yes", timeout: false });
  await sleep(10);
});

test("a webhook made by createWebhook resumes waitForWebhook with the request it received", async () => {
  let webhookUrl;
  const hookApp = await startApp(server, {
    routes: {
      "/wf/hook": async (context) => {
        const webhook = await context.createWebhook("make hook");
        await context.run("publish hook", () => {
          webhookUrl = webhook.webhookUrl;
        });
        const { request, timeout } = await context.waitForWebhook("wait hook", webhook, "30s");
        const body = request ? await request.text() : undefined;
        await context.run("record", () => {
          results.hook = { timeout, method: request?.method, body, sig: request?.headers.get("x-sig"), url: request?.url };
        });
      },
    },
  });
  try {
    const { workflowRunId } = await hookApp.client.trigger({ url: hookApp.url("/wf/hook"), body: {} });
    await until(() => webhookUrl, { what: "webhook URL" });
    assert.ok(webhookUrl.startsWith(`${server.baseUrl}/v2/workflows/hooks/defaultUser/${workflowRunId}/evt_`), webhookUrl);
    // The third party calls it without a token, maybe before the run waits: it is kept.
    const answer = await fetch(webhookUrl, { method: "POST", headers: { "x-sig": "s1" }, body: "paid=1" });
    assert.equal(answer.status, 200);
    await runInState(hookApp.client, workflowRunId, "RUN_SUCCESS");
    assert.deepEqual(results.hook, { timeout: false, method: "POST", body: "paid=1", sig: "s1", url: webhookUrl });
    const again = await fetch(webhookUrl, { method: "POST", body: "late" });
    assert.equal(again.status, 404);
  } finally {
    await hookApp.close();
  }
});
