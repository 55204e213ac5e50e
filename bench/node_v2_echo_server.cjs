// The server users would otherwise run: the @qtk/tcp-framework 2.0.10 package
// from the npm registry (installed in tools/node_modules as
// qtk-tcp-framework-2), run by Node.js, protocol 2, echoing every request as
// its README shows. Started by bench/run.ts with `node`.
//
// Protocol with the runner, as the other echo servers: prints {"port": n}
// once listening; on a stdin line "rss" collects garbage (when Node.js was
// started with --expose-gc) and prints {"rss": bytes, ...}; exits when stdin
// ends (2.0.10's Server.stop() calls process.exit itself).

"use strict";

const path = require("node:path");
const readline = require("node:readline");

const packageDir = path.join(
  __dirname,
  "..",
  "tools",
  "node_modules",
  "qtk-tcp-framework-2",
);
const { Server } = require(packageDir);

const server = new Server({ host: "127.0.0.1", port: 0 });
server.on("data", (socket, { uuid, data }) => {
  server.send(socket, { uuid, data });
});
server.on("exception", () => {});
server.start();
// 2.0.10 does not wait for the listener nor say its port: read both from the
// net.Server it keeps in a private field, as tests/interop/v2_peer.cjs does.
server._server.on("connection", (socket) => socket.setNoDelay(true));
server._server.on("listening", () => {
  process.stdout.write(
    JSON.stringify({ port: server._server.address().port }) + "\n",
  );
});

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() !== "rss") return;
  if (typeof globalThis.gc === "function") globalThis.gc();
  const usage = process.memoryUsage();
  process.stdout.write(
    JSON.stringify({
      rss: usage.rss,
      heapUsed: usage.heapUsed,
      external: usage.external,
      connections: server._socketMap.size,
    }) + "\n",
  );
});
process.stdin.on("end", () => process.exit(0));
