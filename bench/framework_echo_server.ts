// The framework's echo server, as an application would write it: every
// request goes back on its connection with the same uuid and payload.
// `--protocol=2` serves the 2.x wire layout (compared with the Node.js 2.0.10
// package on the same protocol). `--borrow-transfer` is the opt-in modes'
// server: it receives with `borrowPayloads: true` and answers with
// `{ transfer: true }`.
//
// Protocol with the runner: prints {"port": n} once listening; on a stdin
// line "rss" collects garbage and prints {"rss": bytes, "connections": n};
// exits when stdin ends.

import { Server } from "../mod.ts";
import {
  collectGarbage,
  exit,
  heapBytes,
  println,
  rssBytes,
  scriptArgs,
  stdinLines,
} from "./_runtime.ts";

const protocol = scriptArgs().includes("--protocol=2") ? 2 : 3;
const optIn = scriptArgs().includes("--borrow-transfer");
const server = new Server({
  host: "127.0.0.1",
  port: 0,
  protocol,
  borrowPayloads: optIn,
});
if (optIn) {
  server.on(
    "data",
    (socket, message) => server.send(socket, message, { transfer: true }),
  );
} else server.on("data", (socket, message) => server.send(socket, message));
await server.start();
println(JSON.stringify({ port: server.port }));

for await (const line of stdinLines()) {
  if (line.trim() === "rss") {
    for (let i = 0; i < 3; i++) {
      collectGarbage();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    println(
      JSON.stringify({
        rss: rssBytes(),
        ...heapBytes(),
        connections: server.connections.size,
      }),
    );
  }
}
await Promise.race([
  server.stop(),
  new Promise((resolve) => setTimeout(resolve, 2000)),
]);
exit(0);
