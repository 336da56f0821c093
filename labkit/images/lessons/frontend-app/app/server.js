// frontend-app 2.1.0: a small web service for the containers lesson.
// GET / answers who is serving (which container, which process);
// GET /health answers "ok" for health checks.
"use strict";

const http = require("http");
const os = require("os");

const SERVICE = "frontend-app";
const VERSION = "2.1.0";
const port = Number(process.env.PORT || 3000);

const server = http.createServer((req, res) => {
  let status = 200;
  if (req.method === "GET" && req.url === "/") {
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(JSON.stringify({
      service: SERVICE,
      version: VERSION,
      env: process.env.NODE_ENV || null,
      hostname: os.hostname(),
      pid: process.pid,
    }) + "\n");
  } else if (req.method === "GET" && req.url === "/health") {
    res.writeHead(status, { "Content-Type": "text/plain" });
    res.end("ok");
  } else {
    status = 404;
    res.writeHead(status, { "Content-Type": "text/plain" });
    res.end("not found\n");
  }
  console.log(`${req.method} ${req.url} ${status}`);
});

// As PID 1 in its container this process gets no default signal handling:
// without this handler `stop` would wait its full timeout and then SIGKILL.
process.on("SIGTERM", () => {
  console.log("SIGTERM received, closing");
  server.close(() => process.exit(0));
});

server.listen(port, () => {
  console.log(`${SERVICE} ${VERSION} listening on port ${port} (NODE_ENV=${process.env.NODE_ENV})`);
});
