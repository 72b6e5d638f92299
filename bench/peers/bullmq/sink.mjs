// The destination: answers 200 at once and reports its arrival count to the
// parent every 20 ms, like qstash-bench's sink (which keeps no requests).
import http from "node:http";

let arrivals = 0;
const server = http.createServer((req, res) => {
  req.on("data", () => {});
  req.on("end", () => {
    arrivals++;
    res.writeHead(200).end();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  process.send({ port: server.address().port });
});
setInterval(() => process.send({ arrivals }), 20).unref();
process.on("disconnect", () => process.exit(0));
