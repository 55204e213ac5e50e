// The Node.js package's demo, on this framework: a server that answers
// "echo" at once and "delayed_echo" after a delay, and a client that asks both.
// Run with `deno task example` (or `bun examples/echo.ts`).

import { Client, Server } from "../mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

await using server = new Server({ host: "127.0.0.1", port: 0 });
server.on(
  "connected",
  (socket) =>
    console.log(
      `server: ${socket.remoteAddr.hostname}:${socket.remoteAddr.port} connected`,
    ),
);
server.on("data", (socket, { uuid, data }) => {
  const command = decoder.decode(data);
  console.log(`server: received ${uuid} ${command}`);
  if (command === "delayed_echo") {
    setTimeout(() => {
      if (!socket.closed) server.send(socket, { uuid, data });
    }, 300);
  } else {
    server.send(socket, { uuid, data });
  }
});
server.on("closed", () => console.log("server: connection closed"));
await server.start();
console.log(`server: listening on 127.0.0.1:${server.port}`);

await using client = new Client({ host: "127.0.0.1", port: server.port });
client.on("connected", () => console.log("client: connected"));
for (const command of ["echo", "delayed_echo"]) {
  const started = performance.now();
  const reply = await client.request(encoder.encode(command), {
    timeout: 2000,
  });
  const took = (performance.now() - started).toFixed(1);
  console.log(`client: ${command} -> ${decoder.decode(reply)} (${took} ms)`);
}
