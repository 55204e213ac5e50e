// Graceful shutdown: on SIGINT (Ctrl-C) or SIGTERM, stop accepting, let the
// replies in flight go out (server.stop() drains), close the client, and let
// the process end by itself: nothing is left running, no process.exit needed.
//
//   deno run -N examples/shutdown.ts     (then Ctrl-C, or kill -TERM <pid>)
//   bun examples/shutdown.ts
//   node npm/examples/shutdown.js        (from the npm build)

import process from "node:process";
import { Client, Server } from "../mod.ts";

const server = new Server({ host: "127.0.0.1", port: 0 });
server.on("data", (socket, message) => socket.send(message));
await server.start();

const client = new Client({ host: "127.0.0.1", port: server.port });
const reply = await client.request(new TextEncoder().encode("ping"), {
  timeout: 1000,
});
async function shutdown(signal: string): Promise<void> {
  console.log(`${signal}: stopping`);
  for (const name of ["SIGINT", "SIGTERM"]) process.off(name, shutdown);
  await client.close();
  await server.stop();
  console.log("stopped");
}
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
console.log(`listening on 127.0.0.1:${server.port}, got ${reply.length} bytes`);
