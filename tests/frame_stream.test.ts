// frameStream over real sockets: on Deno straight over a Deno.Conn (its
// read/write), everywhere over node:net's Duplex.toWeb streams. Frames of
// every size arrive exact, a framework Client talks to a frameStream server,
// malformed input errors the readable and closes the connection, and an
// invalid frame written errors the writable before a byte of it is sent.
// Over a connection of its own making, an echo's replies to a read leave in
// one write, a single reply before the connection is read again.

import assert from "node:assert/strict";
import * as net from "node:net";
import { Duplex } from "node:stream";
import { runtime, test } from "./_harness.ts";
import {
  assertSameBytes,
  concatBytes,
  HOST,
  next,
  patterned,
  until,
} from "./_helpers.ts";
import {
  type ByteConnection,
  type ByteStreams,
  Client,
  encodeFrame,
  type Frame,
  frameStream,
  ProtocolError,
  SIGN_DATA,
} from "../mod.ts";

const uuid = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";

interface Ends {
  ends: ByteConnection | ByteStreams;
  close(): void;
}

interface Listening {
  port: number;
  accepted: Promise<Ends>;
  close(): Promise<void>;
}

/** A listener whose first connection comes as the runtime's best ends. */
function listen(): Promise<Listening> {
  if (runtime === "deno") {
    const listener = Deno.listen({ hostname: HOST, port: 0 });
    const accepted = listener.accept().then((conn) => ({
      ends: conn,
      close: () => closeQuietly(conn),
    }));
    return Promise.resolve({
      port: listener.addr.port,
      accepted,
      close: async () => {
        listener.close();
        await accepted.catch(() => {});
      },
    });
  }
  return new Promise((resolve) => {
    let accept!: (ends: Ends) => void;
    const accepted = new Promise<Ends>((resolve) => accept = resolve);
    const server = net.createServer((socket) => {
      socket.setNoDelay(true);
      accept({ ends: Duplex.toWeb(socket), close: () => socket.destroy() });
    });
    server.listen(0, HOST, () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        accepted,
        close: () => new Promise((done) => server.close(() => done())),
      }));
  });
}

async function connect(port: number): Promise<Ends> {
  if (runtime === "deno") {
    const conn = await Deno.connect({ hostname: HOST, port });
    return { ends: conn, close: () => closeQuietly(conn) };
  }
  const socket = net.connect(port, HOST);
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return { ends: Duplex.toWeb(socket), close: () => socket.destroy() };
}

function closeQuietly(conn: { close(): void }) {
  try {
    conn.close();
  } catch { /* closed already */ }
}

const SIZES = [0, 1, 64, 16 * 1024, 64 * 1024, 256 * 1024 + 3, 1 << 20];

test("frameStream: an echo of frames of every size, byte for byte", async () => {
  const listening = await listen();
  const serving = listening.accepted.then(async (server) => {
    const { readable, writable } = frameStream(server.ends);
    await readable.pipeTo(writable);
    server.close();
  });
  const client = await connect(listening.port);
  const { readable, writable } = frameStream(client.ends);
  const writer = writable.getWriter();
  const reader = readable.getReader();
  const sent: Frame[] = [];
  for (let round = 0; round < 3; round++) {
    for (const [n, size] of SIZES.entries()) {
      const frame: Frame = {
        sign: SIGN_DATA,
        uuid: crypto.randomUUID(),
        payload: patterned(size, n + round),
      };
      sent.push(frame);
      await writer.write(frame);
    }
  }
  for (const frame of sent) {
    const { value, done } = await reader.read();
    assert.equal(done, false);
    assert.equal(value!.uuid, frame.uuid);
    assertSameBytes(value!.payload, frame.payload, `${frame.payload.length} B`);
  }
  await writer.close();
  await serving;
  assert.equal((await reader.read()).done, true, "the server's end followed");
  client.close();
  await listening.close();
});

test("frameStream: a framework Client's requests answered by a frameStream server", async () => {
  const listening = await listen();
  const serving = listening.accepted.then(async (server) => {
    const { readable, writable } = frameStream(server.ends);
    await readable.pipeTo(writable).catch(() => {});
    server.close();
  });
  const client = new Client({ host: HOST, port: listening.port });
  await next(client, "connected");
  const replies = await Promise.all(
    [3, 70_000, 5].map((size) => client.request(patterned(size, size))),
  );
  replies.forEach((reply, i) =>
    assertSameBytes(reply, patterned([3, 70_000, 5][i], [3, 70_000, 5][i]))
  );
  await client.close();
  await serving;
  await listening.close();
});

test("frameStream: bytes that are not a frame error the readable and close the connection", async () => {
  const listening = await listen();
  const socket = net.connect(listening.port, HOST);
  const ended = new Promise<void>((resolve) => socket.once("close", resolve));
  socket.on("error", () => {}); // a reset instead of an end is fine too
  socket.resume();
  const server = await listening.accepted;
  const { readable } = frameStream(server.ends);
  const garbage = encodeFrame({ sign: SIGN_DATA, uuid, payload: patterned(9) });
  garbage[0] = 0x42; // no such sign
  socket.write(garbage);
  await assert.rejects(readable.getReader().read(), ProtocolError);
  await ended; // the server closed its end
  server.close();
  await listening.close();
});

test("frameStream: an invalid frame errors the writable before a byte is sent", async () => {
  const listening = await listen();
  const client = await connect(listening.port);
  const server = await listening.accepted;
  const { writable } = frameStream(client.ends);
  const writer = writable.getWriter();
  await assert.rejects(
    writer.write({ sign: SIGN_DATA, uuid: "short", payload: new Uint8Array() }),
    TypeError,
  );
  client.close();
  // Nothing arrived before the close: the server reads the end at once.
  const received = frameStream(server.ends).readable.getReader();
  const { done } = await received.read().catch(() => ({ done: true }));
  assert.equal(done, true);
  server.close();
  await listening.close();
});

test("frameStream: on a connection, an echo's replies to a read leave in one write, the first before the next read", async () => {
  const frames = [0, 1, 2, 3].map((n) =>
    encodeFrame({ sign: SIGN_DATA, uuid, payload: patterned(10, n) })
  );
  // The peer's bytes, read by read: one frame, then three at once.
  const reads = [frames[0], concatBytes(...frames.slice(1))];
  const calls: string[] = [];
  const written: Uint8Array[] = [];
  let end!: () => void;
  const conn: ByteConnection = {
    read(buffer) {
      calls.push("read");
      const bytes = reads.shift();
      if (bytes === undefined) {
        return new Promise((resolve) => end = () => resolve(null));
      }
      buffer.set(bytes);
      return Promise.resolve(bytes.length);
    },
    write(bytes) {
      calls.push("write");
      written.push(bytes.slice());
      return Promise.resolve(bytes.length);
    },
    close() {},
  };
  const { readable, writable } = frameStream(conn);
  const echoing = readable.pipeTo(writable);
  const echoed = () => written.reduce((n, bytes) => n + bytes.length, 0);
  await until(() => echoed() === 4 * frames[0].length, 5000, "the echo");
  // The reply went out before the connection was read again.
  assert.deepEqual(calls.slice(0, 3), ["read", "write", "read"]);
  assertSameBytes(written[0], frames[0]);
  assertSameBytes(written[1], concatBytes(...frames.slice(1)), "in one write");
  end();
  await echoing;
});
