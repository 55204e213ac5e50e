// Slow readers: a server sending to a client that stops reading, a client
// sending to a server that stops reading. What waits to be written stays
// within maxBufferedBytes (plus, at most, the one frame an empty buffer always
// takes); past it send refuses with BufferFullError, drained() waits for room,
// and nothing else grows.

import assert from "node:assert/strict";
import { runtime, test } from "./_harness.ts";
import { HOST, next, sleep, until } from "./_helpers.ts";
import {
  memory,
  silentClient,
  type SilentPeer,
  silentServer,
} from "./_silent.ts";
import { encodeFrame, SIGN_DATA } from "../codec.ts";
import { controlFrame } from "../_control.ts";
import {
  BufferFullError,
  Client,
  NetworkError,
  Server,
  type ServerSocket,
} from "../mod.ts";
import { DEFAULT_MAX_BUFFERED_BYTES } from "../server.ts";

const MiB = 1024 * 1024;

/** Sends `size`-byte messages until one is refused; returns bytes accepted. */
function fill(
  send: (data: Uint8Array) => void,
  size: number,
  max: number,
): { accepted: number; refused: BufferFullError | undefined } {
  let accepted = 0;
  for (let i = 0; i < max; i++) {
    try {
      send(new Uint8Array(size));
      accepted += size;
    } catch (error) {
      if (error instanceof BufferFullError) return { accepted, refused: error };
      throw error;
    }
  }
  return { accepted, refused: undefined };
}

/**
 * Sends 16 KiB messages until the runtime stops taking bytes (the kernel's
 * buffers are full) and a send is refused: bounded to 2,000 rounds.
 */
async function fillUp(
  send: (data: Uint8Array) => void,
  buffered: () => number,
  limit: number,
): Promise<{ accepted: number; refused: BufferFullError | undefined }> {
  let accepted = 0;
  let refused: BufferFullError | undefined;
  let stuck = 0;
  for (let round = 0; round < 2000 && stuck < 5; round++) {
    const result = fill(send, 16 * 1024, 1000);
    accepted += result.accepted;
    refused = result.refused ?? refused;
    assert.ok(buffered() <= limit);
    const before = buffered();
    await sleep(5);
    stuck = buffered() === before && before > 0 ? stuck + 1 : 0;
  }
  return { accepted, refused };
}

test("server to a client that stops reading: send refuses past maxBufferedBytes, drained() waits for room", async () => {
  const limit = 256 * 1024;
  await using server = new Server({
    host: HOST,
    port: 0,
    maxBufferedBytes: limit,
  });
  // None while the peer only stops reading; its close at the end may cut a
  // write (EPIPE), which is fine.
  const exceptions: unknown[] = [];
  server.on("exception", (_socket, error) => exceptions.push(error));
  await server.start();
  const connected = next<[ServerSocket]>(server, "connected");
  const peer = await silentClient(server.port);
  try {
    const [socket] = await connected;
    const uuid = crypto.randomUUID();
    const send = (data: Uint8Array) => socket.send({ uuid, data });
    // Fill the kernel's buffers, then ours: keep sending until the runtime
    // stops taking bytes, with our buffer at its limit.
    const { accepted, refused } = await fillUp(
      send,
      () => socket.bufferedAmount,
      limit,
    );
    assert.ok(refused, "a send must be refused once the peer stops reading");
    assert.equal(refused.limit, limit);
    assert.ok(refused.buffered + refused.frameSize > limit);
    assert.equal(refused.unit, "bytes");
    assert.equal(refused.option, "maxBufferedBytes");
    assert.ok(socket.bufferedAmount <= limit);
    // drained() waits while nobody reads...
    let drained = false;
    const draining = socket.drained().then(() => (drained = true));
    await sleep(100);
    assert.equal(drained, false);
    assert.throws(() => send(new Uint8Array(16 * 1024)), BufferFullError);
    // ...and resolves once the peer reads again; every accepted byte arrives.
    peer.resume();
    await draining;
    assert.equal(socket.bufferedAmount, 0);
    const frames = accepted / (16 * 1024);
    await until(
      () => peer.received === accepted + 45 * frames,
      5000,
      "every accepted byte at the peer",
    );
    send(new Uint8Array(16)); // room again
    await socket.drained();
    assert.deepEqual(exceptions, []);
  } finally {
    await peer.close();
  }
});

test("client to a server that stops reading: send and request refuse past maxBufferedBytes, drained() waits for room", async () => {
  const limit = 256 * 1024;
  // It answers the hello, then reads nothing.
  const silent = await silentServer(
    encodeFrame(controlFrame("hello-ack", 3)),
  );
  const client = new Client({
    host: HOST,
    port: silent.port,
    maxBufferedBytes: limit,
    reconnect: false,
  });
  try {
    await next(client, "connected");
    const uuid = crypto.randomUUID();
    const { refused } = await fillUp(
      (data) => client.send({ uuid, data }),
      () => client.bufferedAmount,
      limit,
    );
    assert.ok(refused, "a send must be refused once the server stops reading");
    const request = await client.request(new Uint8Array(32 * 1024), {
      timeout: 1000,
    }).catch((error) => error);
    assert.ok(request instanceof BufferFullError, String(request));
    let drained = false;
    const draining = client.drained().then(() => (drained = true));
    await sleep(100);
    assert.equal(drained, false);
    await until(() => silent.peers.length === 1, 2000, "the accepted socket");
    silent.peers[0].resume();
    await draining;
    assert.equal(client.bufferedAmount, 0);
  } finally {
    await client.close();
    await silent.close();
  }
});

test("memory stays bounded while a server keeps sending to a peer that never reads (default limit)", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  // None while the peer does not read; when it closes with megabytes unsent
  // to it, the reset is an exception (bytes were owed), a NetworkError.
  const exceptions: unknown[] = [];
  server.on("exception", (_socket, error) => exceptions.push(error));
  await server.start();
  const connected = next<[ServerSocket]>(server, "connected");
  const peer = await silentClient(server.port);
  try {
    const [socket] = await connected;
    const uuid = crypto.randomUUID();
    const before = memory();
    let peakUsed = before.used;
    let peakRss = before.rss;
    let peakBuffered = 0;
    let accepted = 0;
    let refused = 0;
    const SIZE = MiB;
    // 1,000 sends of a fresh 1 MiB payload: 1 GiB offered to a peer that
    // takes nothing. Bounded in count (and, with short sleeps, in time).
    for (let i = 0; i < 1000; i++) {
      try {
        socket.send({ uuid, data: new Uint8Array(SIZE) });
        accepted++;
      } catch (error) {
        if (!(error instanceof BufferFullError)) throw error;
        refused++;
      }
      peakBuffered = Math.max(peakBuffered, socket.bufferedAmount);
      assert.ok(socket.bufferedAmount <= DEFAULT_MAX_BUFFERED_BYTES);
      if (i % 50 === 49) {
        await sleep(1); // let writes (that cannot complete) progress
        const now = memory();
        peakUsed = Math.max(peakUsed, now.used);
        peakRss = Math.max(peakRss, now.rss);
      }
    }
    console.log(
      `memory[${runtime}] non-reading peer, maxBufferedBytes ${
        DEFAULT_MAX_BUFFERED_BYTES / MiB
      } MiB: offered ${1000} MiB, accepted ${accepted} MiB, refused ${refused}; peak bufferedAmount ${
        (peakBuffered / MiB).toFixed(2)
      } MiB; heap+external growth ${
        ((peakUsed - before.used) / MiB).toFixed(1)
      } MiB, RSS growth ${((peakRss - before.rss) / MiB).toFixed(1)} MiB`,
    );
    assert.ok(refused > 900, `only ${refused} of 1000 sends refused`);
    // What the framework holds is the limit; the rest went to the kernel.
    assert.ok(accepted * SIZE <= DEFAULT_MAX_BUFFERED_BYTES + 64 * MiB);
    assert.equal(exceptions.length, 0, String(exceptions));
  } finally {
    await peer.close();
  }
  for (const error of exceptions) assert.ok(error instanceof NetworkError);
});

// Under Deno the server reads a connection again only once its answers to the
// last read are written, so a client that floods requests without reading the
// answers stops being read: nothing is refused and nothing piles up in the
// server. (Bun and Node.js push reads to the server; there the
// maxBufferedBytes tests above are what bounds it.)
if (runtime === "deno") {
  test("a client that sends without reading answers stops being read; once it reads, every request is answered", async () => {
    await using server = new Server({ host: HOST, port: 0 });
    let answered = 0;
    let refused = 0;
    let peakBuffered = 0;
    server.on("data", (socket, message) => {
      try {
        server.send(socket, message);
        answered++;
      } catch {
        refused++;
      }
      peakBuffered = Math.max(peakBuffered, socket.bufferedAmount);
    });
    await server.start();
    const peer = await silentClient(server.port) as SilentPeer & {
      conn: Deno.Conn;
    };
    const other = new Client({ host: HOST, port: server.port });
    try {
      const REQUESTS = 2000;
      const SIZE = 16 * 1024;
      const frame = encodeFrame({
        sign: SIGN_DATA,
        uuid: crypto.randomUUID(),
        payload: new Uint8Array(SIZE),
      });
      // 32 MiB of requests: more than the kernel's buffers hold both ways.
      let sent = 0;
      const writing = (async () => {
        for (; sent < REQUESTS; sent++) {
          for (let at = 0; at < frame.length;) {
            at += await peer.conn.write(frame.subarray(at));
          }
        }
      })().catch(() => {});
      await until(() => answered > 0, 5000, "the first answers");
      await sleep(300);
      const stalled = answered;
      await sleep(200);
      assert.equal(answered, stalled, "the server stopped reading the peer");
      assert.ok(sent < REQUESTS, "the peer's writes are held back too");
      assert.equal(refused, 0);
      // At most the answers to one read wait in the server (reads are up to
      // 256 KiB), not the 8 MiB maxBufferedBytes allows.
      assert.ok(peakBuffered <= 512 * 1024, `peak buffered ${peakBuffered}`);
      // Other connections are served meanwhile.
      const reply = await other.request(new Uint8Array([7]), {
        timeout: 2000,
      });
      assert.deepEqual([...reply], [7]);
      // Once the peer reads, everything flows: every request answered.
      peer.resume();
      await writing;
      await until(
        () => peer.received === REQUESTS * frame.length,
        10_000,
        "every answer at the peer",
      );
      assert.equal(answered, REQUESTS + 1); // and the other client's one
      assert.equal(refused, 0);
    } finally {
      await other.close();
      await peer.close();
    }
  });
}

if (runtime === "deno") {
  test("while the server waits to write, a client that reads slowly but steadily stays connected past timeout", async () => {
    // timeout 0.5 s; the client sends its requests at once, then only reads:
    // 24 MiB of answers (more than the kernel's buffers hold, within
    // maxBufferedBytes) at about 12 MB/s, so for about two seconds. The 1,104
    // bytes of requests also outgrow the server's first 1 KiB read, which ends
    // inside a header: that header's clock must not run while reads wait.
    await using server = new Server({
      host: HOST,
      port: 0,
      timeout: 0.5,
      heartbeat: Infinity, // no PINGs: only the reads may keep it alive
      maxBufferedBytes: 32 * 1024 * 1024,
    });
    const ANSWER = 1024 * 1024;
    server.on("data", (socket, { uuid }) => {
      socket.send({ uuid, data: new Uint8Array(ANSWER) });
    });
    await server.start();
    const conn = await Deno.connect({ hostname: HOST, port: server.port });
    try {
      const REQUESTS = 24;
      const requests = new Uint8Array(REQUESTS * 46);
      for (let i = 0; i < REQUESTS; i++) {
        requests.set(
          encodeFrame({
            sign: SIGN_DATA,
            uuid: crypto.randomUUID(),
            payload: new Uint8Array(1),
          }),
          i * 46,
        );
      }
      await conn.write(requests);
      const expected = REQUESTS * (45 + ANSWER);
      const buffer = new Uint8Array(256 * 1024);
      let received = 0;
      const started = performance.now();
      while (received < expected && performance.now() - started < 10_000) {
        const count = await conn.read(buffer);
        if (count === null) break;
        received += count;
        await sleep(20);
      }
      const seconds = (performance.now() - started) / 1000;
      assert.equal(received, expected, "every answer: no drop while writing");
      assert.ok(seconds > 1, `reading took ${seconds} s, past timeout`);
      // (Once everything is written the client is silent, and is dropped
      // after timeout like any silent peer.)
    } finally {
      conn.close();
    }
  });
}
