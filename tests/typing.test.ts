// What a caller writes type-checks (`deno task check` and the Node.js build
// check this file), and runs.

import assert from "node:assert/strict";
import { test } from "./_harness.ts";
import { HOST } from "./_helpers.ts";
import { Client, Server, type ServerSocket } from "../mod.ts";
import type { MessageContext, RequestContext } from "../diagnostics.ts";
import type { MessageContextOf, RequestContextOf } from "../_diagnostics.ts";

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

// client.ts and server.ts build their trace contexts as _diagnostics.ts's
// shapes, because importing diagnostics.ts (which names the classes) would
// make an import circle: a field one has and the other lacks, or a type or
// an optional mark they disagree on, fails the type check here.
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends
  (<T>() => T extends B ? 1 : 2) ? true : false;
const contextsAgree: [
  Same<RequestContext, RequestContextOf<Client>>,
  Same<MessageContext, MessageContextOf<Server, ServerSocket>>,
] = [true, true];

test("types: the trace contexts published are the documented ones", () => {
  assert.deepEqual(contextsAgree, [true, true]);
});
