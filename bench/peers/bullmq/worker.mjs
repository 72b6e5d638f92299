// The BullMQ worker: POSTs each job's body to the sink over keep-alive
// connections, as qstash delivers a message.
import http from "node:http";
import { Worker } from "bullmq";
import IORedis from "ioredis";

const [redisPort, sinkPort, concurrency] = process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });

function post(body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port: sinkPort, path: "/e", method: "POST", agent,
        headers: { "content-type": "application/octet-stream", "content-length": Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on("end", () => (res.statusCode < 300 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const worker = new Worker("bench-e2e", (job) => post(job.data.body), {
  connection: new IORedis({ host: "127.0.0.1", port: redisPort, maxRetriesPerRequest: null }),
  concurrency,
});
worker.on("ready", () => process.send({ ready: true }));
process.on("disconnect", async () => {
  await worker.close(true);
  process.exit(0);
});
