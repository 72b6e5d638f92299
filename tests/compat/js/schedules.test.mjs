// Issue 5 through the JS SDK: schedules (WIRE.md 3.10 and the schedules pages).
// A real fire is covered by the Python suite and crates/cli/tests/schedules.rs (it waits for a minute).
import { before, after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startServer, startSink, makeClient, uid, expectStatus } from "./helpers.mjs";

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

/** Hour and minute of `ms` on the wall clock of `timeZone`. */
function wallClock(ms, timeZone) {
  const parts = new Intl.DateTimeFormat("en-GB", { timeZone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
    .formatToParts(new Date(ms));
  const get = (t) => Number(parts.find((p) => p.type === t).value);
  return [get("hour"), get("minute")];
}

describe("schedules", { concurrency: true }, () => {
  it("create, get, list, pause, resume, delete", async () => {
    const destination = sink.url(`/sched/${uid()}`);
    const { scheduleId } = await client.schedules.create({
      destination,
      cron: "*/5 * * * *",
      body: "tick",
      retries: 2,
      method: "PUT",
      headers: { "Content-Type": "text/plain" },
    });
    assert.match(scheduleId, /^scd_/);
    let s = await client.schedules.get(scheduleId);
    assert.equal(s.scheduleId, scheduleId);
    assert.equal(s.cron, "*/5 * * * *");
    assert.equal(s.destination, destination);
    assert.equal(s.method, "PUT");
    assert.equal(s.retries, 2);
    assert.equal(s.body, "tick");
    assert.equal(s.isPaused, false);
    assert.equal(s.nextScheduleTime % 300000, 0, "next tick on a 5-minute boundary");
    assert.ok(s.nextScheduleTime > Date.now());
    assert.ok((await client.schedules.list()).some((x) => x.scheduleId === scheduleId));

    await client.schedules.pause({ schedule: scheduleId });
    assert.equal((await client.schedules.get(scheduleId)).isPaused, true);
    await client.schedules.resume({ schedule: scheduleId });
    assert.equal((await client.schedules.get(scheduleId)).isPaused, false);
    await client.schedules.delete(scheduleId);
    await expectStatus(client.schedules.get(scheduleId), 404);
  });

  it("a custom scheduleId is updated in place", async () => {
    const scheduleId = `my-${uid()}`;
    const destination = sink.url(`/custom/${uid()}`);
    const first = await client.schedules.create({ destination, cron: "0 * * * *", scheduleId });
    assert.equal(first.scheduleId, scheduleId);
    await client.schedules.create({ destination, cron: "30 2 * * *", scheduleId, body: "v2" });
    const s = await client.schedules.get(scheduleId);
    assert.equal(s.cron, "30 2 * * *");
    assert.equal(s.body, "v2");
    assert.equal((await client.schedules.list()).filter((x) => x.scheduleId === scheduleId).length, 1);
  });

  it("CRON_TZ sets the time zone of the next tick", async () => {
    const { scheduleId } = await client.schedules.create({
      destination: sink.url(`/tz/${uid()}`),
      cron: "CRON_TZ=America/New_York 30 9 * * *",
    });
    const s = await client.schedules.get(scheduleId);
    assert.deepEqual(wallClock(s.nextScheduleTime, "America/New_York"), [9, 30]);
    assert.ok(s.nextScheduleTime - Date.now() <= 86_400_000 + 3_600_000);
  });

  it("a schedule can target a queue, and bad crons are 400", async () => {
    const queueName = `sq-${uid()}`;
    const { scheduleId } = await client.schedules.create({
      destination: sink.url(`/sq/${uid()}`),
      cron: "* * * * *",
      queueName,
    });
    assert.equal((await client.schedules.get(scheduleId)).queueName, queueName);
    for (const cron of ["* * * *", "61 * * * *", "CRON_TZ=Mars/Base * * * * *", "0 0 * * * *"]) {
      await expectStatus(client.schedules.create({ destination: sink.url("/bad"), cron }), 400);
    }
  });
});
