// Sending with `{ transfer: true }`: the caller's buffer is detached (where
// the runtime has ArrayBuffer.prototype.transfer, and not on Bun), the bytes arrive exact, and
// whatever refuses a send leaves the caller's buffer alone.

import assert from "node:assert/strict";
import { runtime, test } from "./_harness.ts";
import { assertSameBytes, HOST, next, patterned } from "./_helpers.ts";
import { Client, ClosedError, Server } from "../mod.ts";

// Taking needs ArrayBuffer.prototype.transfer, and is off on Bun, whose
// transfer() copies: there it would cost what the framework's copy does.
const canTransfer =
  typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer ===
    "function";
const hasTransfer = canTransfer && runtime !== "bun";
if (!hasTransfer) {
  console.log(
    `transfer.test: ${runtime} ${
      canTransfer
        ? "does not take payloads"
        : "has no ArrayBuffer.prototype.transfer"
    }; checking that transfer copies and leaves the caller's buffer as it is`,
  );
}

/** Asserts that `data` was taken (detached) or, without transfer(), kept. */
function assertTaken(data: Uint8Array, original: Uint8Array, label: string) {
  if (hasTransfer) {
    assert.equal(data.length, 0, `${label}: the caller's view is empty`);
    assert.equal(data.buffer.byteLength, 0, `${label}: its buffer detached`);
  } else {
    assertSameBytes(data, original, `${label}: copied, left as it was`);
  }
}

// Around the decoder's 64 KiB own-memory threshold, the 256 KiB write buffer
// (a frame over it is written from the payload itself), and beyond.
const SIZES = [
  0,
  1,
  45,
  16 * 1024,
  64 * 1024 - 1,
  64 * 1024,
  256 * 1024 - 45,
  256 * 1024 - 44,
  256 * 1024 + 1,
  1024 * 1024,
  3 * 1024 * 1024 + 5,
];

test("send/request with transfer: the caller's buffer is detached, the bytes arrive exact", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  const failures: unknown[] = [];
  server.on("data", (socket, { uuid, data }) => {
    // Answers with a buffer of its own, transferred, half of the time
    // through Server.send.
    const reply = data.slice();
    try {
      if (data.length % 2) {
        socket.send({ uuid, data: reply }, { transfer: true });
      } else server.send(socket, { uuid, data: reply }, { transfer: true });
      assertTaken(reply, data, `server reply of ${data.length} B`);
    } catch (error) {
      failures.push(error);
    }
  });
  await server.start();
  await using client = new Client({ host: HOST, port: server.port });
  await next(client, "connected");
  const replies = SIZES.map((size, n) => {
    const payload = patterned(size, n);
    const reply = client.request(payload, { timeout: 15000, transfer: true });
    assertTaken(payload, patterned(size, n), `request of ${size} B`);
    return reply;
  });
  const received = await Promise.all(replies);
  received.forEach((reply, n) =>
    assertSameBytes(reply, patterned(SIZES[n], n), `reply ${n}`)
  );
  assert.deepEqual(failures, []);

  // send(), connected: the replies come back as `data` events.
  const echoed = new Map<string, Uint8Array>();
  const all = new Promise<void>((resolve) => {
    client.on("data", ({ uuid, data }) => {
      echoed.set(uuid, data);
      if (echoed.size === SIZES.length) resolve();
    });
  });
  const uuids = SIZES.map((size, n) => {
    const uuid = crypto.randomUUID();
    const data = patterned(size, n + 100);
    client.send({ uuid, data }, { transfer: true });
    assertTaken(data, patterned(size, n + 100), `send of ${size} B`);
    return uuid;
  });
  await all;
  uuids.forEach((uuid, n) =>
    assertSameBytes(
      echoed.get(uuid)!,
      patterned(SIZES[n], n + 100),
      `send ${n}`,
    )
  );
});

test("send with transfer while disconnected: queued without a copy, detached, delivered exact", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  const received: Uint8Array[] = [];
  server.on("data", (_socket, { data }) => received.push(data));
  await server.start();
  await using client = new Client({ host: HOST, port: server.port });
  // Not connected yet: queued.
  const sizes = [70_000, 33, 300 * 1024];
  sizes.forEach((size, n) => {
    const data = patterned(size, n);
    client.send({ uuid: crypto.randomUUID(), data }, { transfer: true });
    assertTaken(data, patterned(size, n), `queued ${size} B`);
  });
  const last = patterned(17, 9);
  const reply = client.request(last, { transfer: true });
  assertTaken(last, patterned(17, 9), "queued request");
  server.on("data", (socket, message) => {
    if (message.data.length === 17) socket.send(message);
  });
  assertSameBytes(await reply, patterned(17, 9), "request");
  assert.equal(received.length, sizes.length + 1);
  sizes.forEach((size, n) =>
    assertSameBytes(received[n], patterned(size, n), `queued ${n}`)
  );
});

test("transfer leaves the caller's buffer alone when the send is refused, or when data is part of a larger buffer", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  const received: Uint8Array[] = [];
  server.on("data", (socket, message) => {
    received.push(message.data.slice());
    // A received payload shares its read buffer: sent with transfer, it is
    // copied, and the connection goes on reading into that buffer.
    socket.send(message, { transfer: true });
  });
  await server.start();
  const client = new Client({ host: HOST, port: server.port });
  await next(client, "connected");
  // Part of a larger buffer: copied; neither the view nor its buffer changes.
  const whole = patterned(1000, 1);
  const part = whole.subarray(100, 300);
  const reply = await client.request(part, { transfer: true });
  assertSameBytes(reply, patterned(1000, 1).subarray(100, 300), "reply");
  assertSameBytes(whole, patterned(1000, 1), "the larger buffer");
  // Bad options: TypeError, nothing sent, nothing taken.
  const data = patterned(64, 2);
  const uuid = crypto.randomUUID();
  assert.throws(
    () =>
      client.send({ uuid, data }, { transfer: "yes" as unknown as boolean }),
    TypeError,
  );
  assert.throws(
    () => client.send({ uuid, data }, null as unknown as { transfer: true }),
    TypeError,
  );
  await assert.rejects(
    client.request(data, { transfer: 1 as unknown as boolean }),
    TypeError,
  );
  // A bad uuid: TypeError before anything is taken.
  assert.throws(
    () => client.send({ uuid: "x", data }, { transfer: true }),
    TypeError,
  );
  assertSameBytes(data, patterned(64, 2), "after refused sends");
  // Many frames in one read, each echoed with transfer: all arrive exact.
  const many = Array.from({ length: 50 }, (_, n) => patterned(100 + n, n));
  const echoes = await Promise.all(many.map((p) => client.request(p)));
  echoes.forEach((echo, n) => assertSameBytes(echo, many[n], `echo ${n}`));
  await client.close();
  assert.throws(
    () => client.send({ uuid, data }, { transfer: true }),
    ClosedError,
  );
  assertSameBytes(data, patterned(64, 2), "after a refused send");
  assert.equal(received.length, 51);
});
