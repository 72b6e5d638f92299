// The qstash-bench publish and end-to-end scenarios through BullMQ:
// 64 concurrent producers adding 1 KB jobs (delayed an hour for the publish
// figure), and a worker POSTing each job to a local sink while producers
// keep at most 4096 jobs undelivered (the end-to-end figure).
import { fork } from "node:child_process";
import { Queue } from "bullmq";
import IORedis from "ioredis";

const redisPort = Number(process.env.REDIS_PORT);
const clients = Number(process.env.CLIENTS ?? 64);
const warmupMs = Number(process.env.WARMUP_MS ?? 2000);
const measureMs = Number(process.env.MEASURE_MS ?? 10000);
const concurrency = Number(process.env.WORKER_CONCURRENCY ?? 512);
const window = 4096;
const body = "B 0 0 0\n".padEnd(1024, "x");
// BullMQ 6 in ESM takes a constructed client.
const redis = () => new IORedis({ host: "127.0.0.1", port: redisPort, maxRetriesPerRequest: null });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function closedLoop(queue, opts, gate) {
  let ok = 0;
  let stop = false;
  const loops = Array.from({ length: clients }, async () => {
    while (!stop) {
      if (gate && !gate()) {
        await sleep(1);
        continue;
      }
      await queue.add("m", { body }, opts);
      ok++;
    }
  });
  await sleep(warmupMs);
  const ok0 = ok;
  const t0 = performance.now();
  return {
    ok: () => ok,
    async finish() {
      await sleep(measureMs);
      const rate = ((ok - ok0) * 1000) / (performance.now() - t0);
      stop = true;
      await Promise.all(loops);
      return rate;
    },
    t0,
  };
}

// Publish: jobs delayed an hour, so the worker is not involved.
const delayed = new Queue("bench-publish", { connection: redis() });
await delayed.obliterate({ force: true }).catch(() => {});
const pub = await closedLoop(delayed, { delay: 3_600_000, removeOnComplete: true });
const publishRate = await pub.finish();
await delayed.obliterate({ force: true });
await delayed.close();

// End-to-end: sink and worker in their own processes.
const sink = fork(new URL("./sink.mjs", import.meta.url));
let arrivals = 0;
const sinkPort = await new Promise((resolve) =>
  sink.on("message", (m) => {
    if (m.port) resolve(m.port);
    if (m.arrivals !== undefined) arrivals = m.arrivals;
  }),
);
const worker = fork(new URL("./worker.mjs", import.meta.url), [redisPort, sinkPort, concurrency]);
await new Promise((resolve) => worker.on("message", (m) => m.ready && resolve()));
const queue = new Queue("bench-e2e", { connection: redis() });
let sent = 0;
const e2e = await closedLoop(queue, { removeOnComplete: true, removeOnFail: true }, () => {
  if (sent >= arrivals + window) return false;
  sent++;
  return true;
});
const a0 = arrivals;
const t0 = performance.now();
await sleep(measureMs);
const deliveredRate = ((arrivals - a0) * 1000) / (performance.now() - t0);
const publishedE2e = await e2e.finish();
await queue.close();
// Stop the children now: left running, the worker outlives redis-server
// (stopped by run.sh on exit) and dies noisily with ECONNRESET.
worker.kill();
sink.kill();

const fmt = (n) => Math.round(n).toLocaleString("en-US");
console.log(`| BullMQ publish (1 KB, delayed 1 h) | acknowledged | ${fmt(publishRate)} /s |`);
console.log(`| BullMQ end-to-end delivery | delivered | ${fmt(deliveredRate)} /s |`);
console.log(`| BullMQ end-to-end delivery | published | ${fmt(publishedE2e)} /s |`);
console.log(JSON.stringify({ peer: "bullmq", clients, worker_concurrency: concurrency,
  publish_per_second: publishRate, e2e_delivered_per_second: deliveredRate,
  e2e_published_per_second: publishedE2e, redis_appendfsync: process.env.REDIS_FSYNC }));
process.exit(0);
