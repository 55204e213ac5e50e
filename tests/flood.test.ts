// Floods and slow attacks: many simultaneous connections, maxConnections,
// a peer that dribbles a header, a peer that claims a huge length.

import assert from "node:assert/strict";
import { runtime, test } from "./_harness.ts";
import { HOST, next, RawSocket, sleep, until } from "./_helpers.ts";
import { memory } from "./_silent.ts";
import {
  Client,
  ConnectionLimitError,
  encodeFrame,
  FrameTooLargeError,
  ProtocolError,
  Server,
  SIGN_DATA,
  TimeoutError,
} from "../mod.ts";

const CONNECTIONS = 1000;

test(`${CONNECTIONS} simultaneous connections on one server, all served`, async () => {
  await using server = new Server({ host: HOST, port: 0 });
  server.on("data", (socket, message) => socket.send(message));
  await server.start();
  let peak = 0;
  server.on("connected", () => {
    peak = Math.max(peak, server.connections.size);
  });
  const clients: Client[] = [];
  try {
    // Opened in batches of 100 so the listen backlog is never the limit.
    for (let i = 0; i < CONNECTIONS; i += 100) {
      const batch = Array.from(
        { length: 100 },
        () => new Client({ host: HOST, port: server.port, reconnect: false }),
      );
      clients.push(...batch);
      await Promise.all(
        batch.map((client) => next(client, "connected", 10_000)),
      );
    }
    await until(
      () => server.connections.size === CONNECTIONS,
      10_000,
      `${CONNECTIONS} server connections`,
    );
    // Every connection is served while all are open.
    const replies = await Promise.all(
      clients.map((client, i) =>
        client.request(new Uint8Array(new Uint32Array([i]).buffer), {
          timeout: 10_000,
        }).catch((error) => error)
      ),
    );
    assert.equal(server.connections.size, CONNECTIONS);
    console.log(
      `flood[${runtime}]: ${CONNECTIONS} connections open at once (peak ${peak})`,
    );
    for (const [i, reply] of replies.entries()) {
      assert.ok(reply instanceof Uint8Array, `client ${i}: ${reply}`);
      // A copy (a Buffer's slice() on Node.js would not be one).
      assert.equal(new Uint32Array(new Uint8Array(reply).buffer)[0], i);
    }
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
  await until(() => server.connections.size === 0, 10_000, "all closed");
});

test("maxConnections closes the excess at once and keeps serving the rest", async () => {
  await using server = new Server({ host: HOST, port: 0, maxConnections: 10 });
  server.on("data", (socket, message) => socket.send(message));
  const refusals: unknown[] = [];
  server.on("exception", (_socket, error) => refusals.push(error));
  await server.start();
  const kept: Client[] = [];
  const extra: RawSocket[] = [];
  try {
    for (let i = 0; i < 10; i++) {
      const client = new Client({ host: HOST, port: server.port });
      kept.push(client);
      await next(client, "connected");
    }
    for (let i = 0; i < 5; i++) {
      extra.push(await RawSocket.connect(server.port));
    }
    // Each one past the limit is closed without a byte read or written.
    await Promise.all(extra.map((socket) => socket.ended));
    assert.equal(refusals.length, 5);
    assert.ok(refusals.every((error) => error instanceof RangeError));
    for (const error of refusals) {
      assert.ok(error instanceof ConnectionLimitError);
      assert.equal(error.maxConnections, 10);
    }
    assert.ok(extra.every((socket) => socket.receivedBytes === 0));
    assert.equal(server.connections.size, 10);
    for (const client of kept) {
      const reply = await client.request(new Uint8Array([1]), {
        timeout: 2000,
      });
      assert.deepEqual([...reply], [1]);
    }
    // Room again once one leaves.
    const closed = next(server, "closed");
    await kept.pop()!.close();
    await closed;
    const late = new Client({ host: HOST, port: server.port });
    kept.push(late);
    const reply = await late.request(new Uint8Array([2]), { timeout: 2000 });
    assert.deepEqual([...reply], [2]);
  } finally {
    await Promise.all(extra.map((socket) => socket.close()));
    await Promise.all(kept.map((client) => client.close()));
  }
});

function header(length: number): Uint8Array {
  const bytes = encodeFrame({
    sign: SIGN_DATA,
    uuid: crypto.randomUUID(),
    payload: new Uint8Array(0),
  });
  new DataView(bytes.buffer).setFloat64(37, length);
  return bytes;
}

// The silence timeout alone would never fire: a byte arrives more often than
// `timeout`. A header must arrive whole within `timeout` of its first byte.
test("a peer that dribbles a header one byte at a time is dropped by the timeout", async () => {
  // PINGs between its bytes, too: on Deno, a finished PING write once made the
  // next read look held back, which restarted the header's clock.
  await using server = new Server({
    host: HOST,
    port: 0,
    timeout: 0.3,
    heartbeat: 0.1,
  });
  const exceptions: unknown[] = [];
  server.on("exception", (_socket, error) => exceptions.push(error));
  await server.start();
  const raw = await RawSocket.connect(server.port);
  try {
    const bytes = header(4);
    let sent = 0;
    // One byte every 100 ms, a third of the timeout; at most the 45 bytes
    // (4.5 s) if it is never dropped.
    for (; sent < bytes.length && !raw.isEnded; sent++) {
      await raw.write(bytes.subarray(sent, sent + 1)).catch(() => {});
      await sleep(100);
    }
    assert.ok(raw.isEnded, "the dribbler was never dropped");
    assert.ok(sent < bytes.length, `dropped only after all ${sent} bytes`);
    assert.ok(exceptions.some((e) => e instanceof TimeoutError));
  } finally {
    await raw.close();
  }
});

test("steady traffic cut mid-header in every write is not mistaken for a dribbler", async () => {
  await using server = new Server({ host: HOST, port: 0, timeout: 0.3 });
  let frames = 0;
  server.on("data", () => frames++);
  const exceptions: unknown[] = [];
  server.on("exception", (_socket, error) => exceptions.push(error));
  await server.start();
  const raw = await RawSocket.connect(server.port);
  try {
    // 49-byte frames written 30 bytes every 50 ms for 1.2 s (four timeouts):
    // almost every write ends inside a header, but frames keep completing.
    const frame = encodeFrame({
      sign: SIGN_DATA,
      uuid: crypto.randomUUID(),
      payload: new Uint8Array(4),
    });
    const stream = new Uint8Array(frame.length * 20);
    for (let i = 0; i < 20; i++) stream.set(frame, i * frame.length);
    for (let at = 0; at < stream.length && !raw.isEnded; at += 30) {
      await raw.write(stream.subarray(at, at + 30));
      await sleep(50);
    }
    assert.equal(raw.isEnded, false);
    assert.deepEqual(exceptions, []);
    await until(() => frames === 20, 2000, "20 frames");
  } finally {
    await raw.close();
  }
});

test("a peer claiming a huge length is dropped from the header alone, nothing allocated", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  const exceptions: unknown[] = [];
  server.on("exception", (_socket, error) => exceptions.push(error));
  await server.start();
  for (const claimed of [2 ** 40, 2 ** 53, Number.MAX_VALUE]) {
    const raw = await RawSocket.connect(server.port);
    const closed = next(server, "closed");
    await raw.write(header(claimed));
    await closed;
    await raw.ended;
    await raw.close();
    const error = exceptions.pop();
    assert.ok(error instanceof FrameTooLargeError, String(error));
    assert.equal(error.length, claimed);
  }
});

test("a header claiming exactly maxFrameSize allocates nothing up front", async () => {
  const maxFrameSize = 64 * 1024 * 1024; // the default
  await using server = new Server({ host: HOST, port: 0, maxFrameSize });
  const exceptions: unknown[] = [];
  server.on("exception", (_socket, error) => exceptions.push(error));
  await server.start();
  const raw = await RawSocket.connect(server.port);
  try {
    const before = memory().used;
    // A legal header, then 1 KiB of a payload that never completes.
    await raw.write(header(maxFrameSize));
    await raw.write(new Uint8Array(1024));
    await sleep(50);
    const grown = memory().used - before;
    console.log(
      `flood[${runtime}]: header claiming 64 MiB, 1 KiB sent: memory +${
        (grown / 1024 / 1024).toFixed(1)
      } MiB`,
    );
    assert.ok(grown < 32 * 1024 * 1024, `grew by ${grown} bytes`);
    assert.equal(server.connections.size, 1); // legal, so still open
  } finally {
    await raw.close();
  }
  // The peer left inside the frame: the server says so, once.
  await until(() => exceptions.length > 0, 5000, "the server's exception");
  assert.equal(exceptions.length, 1, String(exceptions));
  assert.ok(exceptions[0] instanceof ProtocolError, String(exceptions[0]));
  assert.match(String(exceptions[0]), /Stream ended inside a frame/);
});
