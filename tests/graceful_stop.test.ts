// Graceful stop: server.stop() under load drains (see drain.test.ts): the
// frames it accepted for writing go out whole, requests its clients wrote
// before they heard the notice are answered too, and a peer that does not
// read cannot hold it past the grace period.

import assert from "node:assert/strict";
import { runtime, test } from "./_harness.ts";
import { HOST, next, until } from "./_helpers.ts";
import { silentClient } from "./_silent.ts";
import {
  Client,
  ClosedError,
  ProtocolError,
  Server,
  type ServerSocket,
} from "../mod.ts";

const REPLY = 64 * 1024;

function replyFor(request: Uint8Array): Uint8Array {
  const reply = new Uint8Array(REPLY);
  reply.fill(request[0]);
  reply[REPLY - 1] = request[1];
  return reply;
}

test("server.stop() under load: every reply arrives whole, requests written before the notice are answered, then it closes", async () => {
  const server = new Server({ host: HOST, port: 0, gracePeriod: 10 });
  let accepted = 0;
  let refusedAfterStop = 0;
  let stopping = false;
  const otherErrors: unknown[] = [];
  server.on("data", (socket, { uuid, data }) => {
    try {
      socket.send({ uuid, data: replyFor(data) });
      accepted++;
    } catch (error) {
      if (error instanceof ClosedError && stopping) refusedAfterStop++;
      else otherErrors.push(error);
    }
  });
  await server.start();
  const clients = Array.from(
    { length: 10 },
    () => new Client({ host: HOST, port: server.port, reconnect: false }),
  );
  const clientErrors: unknown[] = [];
  for (const client of clients) {
    client.on("exception", (error) => clientErrors.push(error));
  }
  await Promise.all(clients.map((client) => next(client, "connected")));
  // A client is connected once the kernel has the connection; the server
  // takes it from the listen backlog later (on Node.js, many turns later).
  // One still in the backlog when stop() closes the listener is reset.
  await until(() => server.connections.size === 10, 5000, "10 accepted");
  let answered = 0;
  let corrupted = 0;
  let closedRejections = 0;
  let lateAnswered = 0;
  const requests: Promise<void>[] = [];
  // 10 clients × 100 requests in flight, 64 KiB replies: 64 MB to write.
  for (const [c, client] of clients.entries()) {
    for (let i = 0; i < 100; i++) {
      const request = new Uint8Array([c, i, 0, 0]);
      requests.push(
        client.request(request, { timeout: 15_000 }).then((reply) => {
          const expected = replyFor(request);
          if (
            reply.length === REPLY && reply[0] === expected[0] &&
            reply[REPLY - 1] === expected[REPLY - 1] &&
            reply.every((b, k) => k === REPLY - 1 || b === expected[0])
          ) answered++;
          else corrupted++;
        }, (error) => {
          if (error instanceof ClosedError) closedRejections++;
          else otherErrors.push(error);
        }),
      );
    }
  }
  // Stop once replies are flowing and some are still waiting to be written.
  await until(
    () =>
      accepted >= 200 &&
      Array.from(server.connections).some((s: ServerSocket) =>
        s.bufferedAmount > 0
      ),
    10_000,
    "replies buffered",
  );
  const bufferedAtStop = Array.from(server.connections).reduce(
    (sum, socket) => sum + socket.bufferedAmount,
    0,
  );
  // "stopped" says the server closed every connection, not that each client
  // has read what came before the close: on a loaded machine a client's reads
  // lag, and closing it then would reject replies still in its socket. Each
  // client's `closed` comes once it read to the end.
  const clientsClosed = clients.map((client) => next(client, "closed", 15_000));
  stopping = true;
  const stopped = next(server, "stopped", 15_000);
  const stop = server.stop();
  // Requests made once stop() has begun: those written before the client
  // heard the notice are answered; the rest wait in the client's queue (these
  // clients do not reconnect) until it closes (ClosedError).
  for (const [c, client] of clients.entries()) {
    for (let i = 100; i < 120; i++) {
      requests.push(
        client.request(new Uint8Array([c, i]), { timeout: 15_000 }).then(
          () => void lateAnswered++,
          (error) => {
            if (error instanceof ClosedError) closedRejections++;
            else otherErrors.push(error);
          },
        ),
      );
    }
  }
  await stop;
  await stopped;
  await Promise.all(clientsClosed);
  await Promise.all(clients.map((client) => client.close()));
  await Promise.all(requests);
  console.log(
    `graceful stop[${runtime}]: ${bufferedAtStop} bytes buffered at stop(); replies accepted ${accepted}, arrived ${answered}, corrupted ${corrupted}; replies refused after stop ${refusedAfterStop}; of the 200 requests made after stop(), ${lateAnswered} answered, ${closedRejections} still queued at close (ClosedError)`,
  );
  assert.deepEqual(otherErrors, []);
  assert.ok(bufferedAtStop > 0);
  assert.equal(server.connections.size, 0);
  assert.equal(corrupted, 0);
  // Everything accepted for writing went out and arrived; nothing refused.
  assert.equal(refusedAfterStop, 0);
  assert.equal(answered, 1000);
  assert.equal(accepted, answered + lateAnswered);
  assert.equal(answered + lateAnswered + closedRejections, 1200);
  // No client saw a frame cut in half.
  assert.deepEqual(
    clientErrors.filter((error) => error instanceof ProtocolError),
    [],
  );
});

test("server.stop() with a peer that never reads closes after the grace period", async () => {
  const server = new Server({ host: HOST, port: 0, gracePeriod: 0.3 });
  await server.start();
  const connected = next<[ServerSocket]>(server, "connected");
  const peer = await silentClient(server.port);
  try {
    const [socket] = await connected;
    // Fill what the kernel will take and then some: 16 MiB into a peer that
    // never reads. The default maxBufferedBytes bounds what stays with us.
    const uuid = crypto.randomUUID();
    for (let i = 0; i < 16; i++) {
      try {
        socket.send({ uuid, data: new Uint8Array(1024 * 1024) });
      } catch { /* full */ }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.ok(socket.bufferedAmount > 0);
    const closed = next(server, "closed", 5000);
    await server.stop(); // bounded by the grace period, not by the peer
    await closed;
    assert.equal(server.connections.size, 0);
    assert.equal(socket.closed, true);
  } finally {
    await peer.close();
  }
});

test("client.close() lets what it already accepted go out first", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  const received: number[] = [];
  server.on("data", (_socket, { data }) => received.push(data[0]));
  await server.start();
  const client = new Client({ host: HOST, port: server.port, gracePeriod: 5 });
  await next(client, "connected");
  for (let i = 0; i < 200; i++) {
    client.send({
      uuid: crypto.randomUUID(),
      data: new Uint8Array(32 * 1024).fill(i),
    });
  }
  await client.close();
  await until(() => received.length === 200, 5000, "200 messages");
  assert.deepEqual(received, Array.from({ length: 200 }, (_, i) => i));
});
