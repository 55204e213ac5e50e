// One server process per core on one port: this file is both the launcher and
// the worker. Run on Linux with
//
//   deno run --allow-net --allow-read --allow-run --allow-env examples/workers.ts
//   bun examples/workers.ts
//
// and try it with `tcp-framework send -p 8212 hello` (or `tcp-framework bench
// -p 8212`). Ctrl-C drains every worker (server.stop()) and exits; kill one
// worker (`kill -9 <pid>`) and it is started again.
//
// Behind a load balancer that speaks the PROXY protocol (examples/haproxy.cfg,
// examples/nginx.conf), add `proxyProtocol: { trusted: [...] }` to the server.

import process from "node:process";
import { Server } from "../mod.ts";
import { serveWorkers, stopOnSignal, WORKER_ENV } from "../workers.ts";

const PORT = Number(process.env.PORT ?? 8212);
const worker = process.env[WORKER_ENV];

if (worker === undefined) {
  // The launcher: the same file again, once per core. Under Deno the workers
  // get --allow-net --allow-read --allow-env --unstable-net.
  const workers = serveWorkers(import.meta.url, {
    workers: navigator.hardwareConcurrency,
  });
  setTimeout(() => console.log(`launcher: workers ${workers.pids}`), 100);
} else {
  const server = new Server({ host: "0.0.0.0", port: PORT, reusePort: true });
  server.on("data", (socket, { uuid, data }) => socket.send({ uuid, data }));
  stopOnSignal(server); // before start(): from the first connection on
  await server.start();
  console.log(`worker ${worker} (pid ${process.pid}) listening on ${PORT}`);
}
