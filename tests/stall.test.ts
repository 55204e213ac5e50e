// Issue 11, item 3: a stalled event loop must not drop healthy peers. When the
// loop wakes, the liveness tick runs before the reads that piled up; a late
// tick must not count its own lateness as the peers' silence, on either side.

import assert from "node:assert/strict";
import { test } from "./_harness.ts";
import { HOST, sleep, until } from "./_helpers.ts";
import { Client, Server } from "../mod.ts";
import { TickClock } from "../_liveness.ts";

/** Blocks the event loop for `ms`, as a long synchronous handler would. */
function blockLoop(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* busy */ }
}

test("stall: a loop blocked past the timeout drops no healthy peer, on the server or the client side", async () => {
  const liveness = { heartbeat: 0.1, timeout: 0.5 };
  await using server = new Server({ host: HOST, port: 0, ...liveness });
  server.on("data", (socket, message) => socket.send(message));
  let serverClosed = 0;
  let serverTimeouts = 0;
  server.on("closed", () => serverClosed++);
  server.on("exception", (_socket, error) => {
    if ((error as Error).name === "TimeoutError") serverTimeouts++;
  });
  await server.start();
  const clients: Client[] = [];
  let clientClosed = 0;
  try {
    for (let i = 0; i < 20; i++) {
      const client = new Client({ host: HOST, port: server.port, ...liveness });
      client.on("closed", () => clientClosed++);
      client.on("exception", () => {});
      clients.push(client);
    }
    await until(
      () => clients.every((client) => client.connected),
      5000,
      "every client connected",
    );
    await sleep(300); // heartbeats flowing both ways
    blockLoop(800); // longer than the 500 ms timeout
    await sleep(700); // more than a timeout of live traffic after the stall
    assert.equal(serverTimeouts, 0, "server dropped a peer as silent");
    assert.equal(serverClosed, 0, "server closed a connection");
    assert.equal(clientClosed, 0, "a client dropped its server as silent");
    const reply = await clients[0].request(new Uint8Array([7]), {
      timeout: 2000,
    });
    assert.deepEqual([...reply], [7]);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
});

test("stall: a tick's lateness is what passed beyond its period, never negative", () => {
  const clock = new TickClock(100, 0);
  assert.equal(clock.lateness(100), 0);
  assert.equal(clock.lateness(195), 0); // early: not negative
  assert.equal(clock.lateness(750), 455); // blocked: 555 ms for a 100 ms tick
  assert.equal(clock.lateness(851), 1);
});
