// What a caller writes type-checks (`deno task check` and the Node.js build
// check this file), and runs.

import assert from "node:assert/strict";
import { test } from "./_harness.ts";
import { HOST } from "./_helpers.ts";
import { Client, Server } from "../mod.ts";

test("types: a promise's resolve listens for the first connection", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  await server.start();
  await using client = new Client({ host: HOST, port: server.port });
  // `resolve` takes a value the event does not have: it must still fit.
  await new Promise((resolve) => client.once("connected", resolve));
  assert.equal(client.connected, true);
  // Positional arguments keep their types: a wrong one is refused.
  // @ts-expect-error: the socket is not a number
  server.off("data", (socket: number) => socket);
});
