// borrowPayloads: a `data` payload is valid while its listeners run and reads
// as empty afterwards (where ArrayBuffer.prototype.transfer exists, not on
// Bun), never as
// the bytes of a later read; bytes arrive exact however the stream is cut.

import assert from "node:assert/strict";
import { runtime, test } from "./_harness.ts";
import {
  assertSameBytes,
  HOST,
  next,
  patterned,
  RawSocket,
} from "./_helpers.ts";
import { Client, encodeFrame, Server, SIGN_DATA } from "../mod.ts";

// Lending needs ArrayBuffer.prototype.transfer, and is off on Bun, where it
// costs more than it saves (fresh memory per read, a copying transfer()).
const hasTransfer =
  typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer ===
    "function";
const canDetach = hasTransfer && runtime !== "bun";
if (!canDetach) {
  console.log(
    `borrow.test: ${runtime} ${
      hasTransfer
        ? "does not lend payloads"
        : "has no ArrayBuffer.prototype.transfer"
    }; checking that borrowed payloads behave as default ones (kept intact)`,
  );
}

// Around the connection's read buffer (16 KiB, growing to 256 KiB), the
// decoder's 64 KiB own-memory threshold, and beyond.
const SIZES = [
  0,
  1,
  16 * 1024 - 45,
  16 * 1024 - 44,
  16 * 1024,
  32 * 1024 + 7,
  64 * 1024 - 1,
  64 * 1024,
  256 * 1024 - 45,
  256 * 1024,
  1024 * 1024 + 3,
  17,
  1024 * 1024 + 3,
];

test("borrowPayloads: a payload kept past its listener reads as empty; copies and bytes are exact", async () => {
  await using server = new Server({
    host: HOST,
    port: 0,
    borrowPayloads: true,
  });
  const kept: Uint8Array[] = [];
  const copies: Uint8Array[] = [];
  server.on("data", (socket, message) => {
    kept.push(message.data);
    copies.push(new Uint8Array(message.data));
    socket.send(message); // echo from the lent memory: copied as it is sent
  });
  await server.start();
  await using client = new Client({
    host: HOST,
    port: server.port,
    borrowPayloads: true,
  });
  await next(client, "connected");
  // Replies to request() are copies the caller keeps.
  const replies = await Promise.all(
    SIZES.map((size, n) =>
      client.request(patterned(size, n), { timeout: 15000 })
    ),
  );
  replies.forEach((reply, n) =>
    assertSameBytes(reply, patterned(SIZES[n], n), `reply ${n}`)
  );
  assert.equal(kept.length, SIZES.length);
  kept.forEach((payload, n) => {
    assertSameBytes(copies[n], patterned(SIZES[n], n), `copy ${n}`);
    if (canDetach) assert.equal(payload.length, 0, `kept payload ${n}`);
    else assertSameBytes(payload, patterned(SIZES[n], n), `kept ${n}`);
  });
  // The client's `data` payloads are lent the same way.
  const lent: Uint8Array[] = [];
  const seen: Uint8Array[] = [];
  const all = new Promise<void>((resolve) =>
    client.on("data", ({ data }) => {
      lent.push(data);
      seen.push(new Uint8Array(data));
      if (lent.length === SIZES.length) resolve();
    })
  );
  SIZES.forEach((size, n) =>
    client.send({ uuid: crypto.randomUUID(), data: patterned(size, n + 50) })
  );
  await all;
  lent.forEach((payload, n) => {
    assertSameBytes(seen[n], patterned(SIZES[n], n + 50), `seen ${n}`);
    if (canDetach) assert.equal(payload.length, 0, `lent payload ${n}`);
  });
});

test("borrowPayloads: bytes exact when frames arrive cut anywhere, byte by byte and joined", async () => {
  await using server = new Server({
    host: HOST,
    port: 0,
    borrowPayloads: true,
  });
  const received: Uint8Array[] = [];
  let retained: Uint8Array | undefined;
  server.on("data", (_socket, { data }) => {
    received.push(new Uint8Array(data));
    retained ??= data;
  });
  await server.start();
  const frames = SIZES.map((size, n) =>
    encodeFrame({
      sign: SIGN_DATA,
      uuid: crypto.randomUUID(),
      payload: patterned(size, n + 7),
    })
  );
  const stream = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const frame of frames) {
    stream.set(frame, at);
    at += frame.length;
  }
  const socket = await RawSocket.connect(server.port);
  try {
    // Cuts of every kind: single bytes through the first header, then pieces
    // of growing odd sizes, so frames straddle reads in every position.
    let from = 0;
    for (; from < 60; from++) {
      await socket.write(stream.subarray(from, from + 1));
      if (from % 8 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    let piece = 1;
    while (from < stream.length) {
      const to = Math.min(stream.length, from + piece);
      await socket.write(stream.subarray(from, to));
      from = to;
      piece = piece * 3 + 1;
      await new Promise((r) => setTimeout(r, 1));
    }
    for (let i = 0; i < 500 && received.length < SIZES.length; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  } finally {
    await socket.close();
  }
  assert.equal(received.length, SIZES.length);
  received.forEach((payload, n) =>
    assertSameBytes(payload, patterned(SIZES[n], n + 7), `payload ${n}`)
  );
  if (canDetach) assert.equal(retained!.length, 0, "retained payload");
});

test("borrowPayloads + transfer echo: memory reused once written, bytes exact under pipelining", async () => {
  // The server answers each large payload with `transfer`; once written, that
  // memory goes back to its decoder for the next large payload. Many replies
  // in flight at once, of sizes above and below the memory given back, so
  // memory reused while still being written would show as wrong bytes.
  const maxBufferedBytes = 32 * 1024 * 1024; // all of them in flight at once
  await using server = new Server({
    host: HOST,
    port: 0,
    borrowPayloads: true,
    maxBufferedBytes,
  });
  let echoed = 0;
  server.on("data", (socket, message) => {
    socket.send(message, { transfer: true });
    echoed++;
  });
  await server.start();
  await using client = new Client({
    host: HOST,
    port: server.port,
    maxBufferedBytes,
  });
  await next(client, "connected");
  const sizes = [
    1024 * 1024,
    1024 * 1024,
    300 * 1024,
    1024 * 1024 + 5,
    64 * 1024,
    700 * 1024,
    2 * 1024 * 1024,
    1024 * 1024,
    260 * 1024,
    2 * 1024 * 1024,
    96 * 1024,
    1024 * 1024 + 5,
  ];
  for (let round = 0; round < 2; round++) {
    const replies = await Promise.all(
      sizes.map((size, n) =>
        client.request(patterned(size, n + 10 * round), { timeout: 15000 })
      ),
    );
    replies.forEach((reply, n) =>
      assertSameBytes(
        reply,
        patterned(sizes[n], n + 10 * round),
        `round ${round} reply ${n}`,
      )
    );
  }
  assert.equal(echoed, 2 * sizes.length);
});

test("borrowPayloads: a bad option value is refused by name", () => {
  assert.throws(
    () =>
      new Server({
        port: 0,
        borrowPayloads: "yes" as unknown as boolean,
      }),
    /borrowPayloads/,
  );
  assert.throws(
    () =>
      new Client({
        port: 1,
        reconnect: false,
        borrowPayloads: 1 as unknown as boolean,
      }),
    /borrowPayloads/,
  );
});
