// A peer that resets its connection (TCP RST) while nothing is owed either
// way, as a load balancer's health check does (HAProxy connects, PINGs, reads
// the echo and resets, to spare itself TIME_WAIT), ends with `closed` alone and
// is counted in stats().quietResets, on every runtime; a reset that cuts a
// frame, or leaves bytes the server still had to write, stays an `exception`.
//
// The peer is a Node.js child process (tests/fixtures/reset_client.cjs:
// node:net's resetAndDestroy(), SO_LINGER 0) under all three runtimes: Deno's
// sockets cannot reset, and one peer for all three means they see the same
// thing.

import assert from "node:assert/strict";
import { runtime, test } from "./_harness.ts";
import { HOST, next, until } from "./_helpers.ts";
import { type Child, spawn } from "./_spawn.ts";
import { NetworkError, Server, type ServerSocket } from "../mod.ts";

const RESET_CLIENT = decodeURIComponent(
  new URL("./fixtures/reset_client.cjs", import.meta.url).pathname,
);

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const ascii = (text: string) => new TextEncoder().encode(text);

/** A PING frame, protocol 3, as HAProxy's check in examples/haproxy.cfg sends. */
const PING = new Uint8Array([
  0x01,
  ...ascii("00000000-0000-4000-8000-00000000beef"),
  ...new Uint8Array(8), // length 0 as a float64
]);

/** A DATA frame of one byte. */
const DATA = new Uint8Array([
  0x11,
  ...ascii("11111111-1111-4111-8111-111111111111"),
  0x3f,
  0xf0,
  0,
  0,
  0,
  0,
  0,
  0, // 1.0, big-endian float64
  0x2a,
]);

/** A server that records its `exception` and `closed` events, in order. */
async function recordingServer(): Promise<
  { server: Server; events: string[] }
> {
  const server = new Server({ host: HOST, port: 0 });
  const events: string[] = [];
  server.on("exception", (_socket, error) => {
    const code = error instanceof NetworkError ? ` ${error.code}` : "";
    events.push(`exception${code}`);
  });
  server.on("closed", () => events.push("closed"));
  await server.start();
  return { server, events };
}

/** Connects the resetting client to `port`; resolves once `server` announced it. */
async function connectPeer(
  server: Server,
): Promise<{ peer: Child; socket: ServerSocket }> {
  const connected = next<[ServerSocket]>(server, "connected", 10_000);
  const peer = await spawn("node", [RESET_CLIENT, String(server.port)]);
  try {
    await peer.waitFor(/^CONNECTED$/, 10_000);
    const [socket] = await connected;
    return { peer, socket };
  } catch (error) {
    connected.catch(() => {});
    await peer.kill();
    throw error;
  }
}

/** Resets the connection and waits for the server's `closed`. */
async function reset(server: Server, peer: Child): Promise<void> {
  const closed = next(server, "closed", 10_000);
  await peer.write("reset\n");
  await closed;
  await peer.waitFor(/^CLOSED$/);
}

async function finish(peer: Child): Promise<void> {
  await peer.closeStdin();
  await peer.kill();
}

test("quiet reset: a peer that PINGs, reads the echo and resets, or resets having sent nothing, ends with closed alone, counted", async () => {
  const { server, events } = await recordingServer();
  try {
    // HAProxy's tcp-check: connect, PING, the echo back, reset.
    const checked = await connectPeer(server);
    try {
      await checked.peer.write(`write ${hex(PING)}\nwait ${PING.length}\n`);
      await checked.peer.waitFor(new RegExp(`^RECEIVED ${PING.length}$`));
      // The echo is the runtime's: nothing is owed when the reset comes.
      await until(
        () => checked.socket.bufferedAmount === 0,
        5000,
        "the echo to be written",
      );
      await reset(server, checked.peer);
    } finally {
      await finish(checked.peer);
    }
    assert.deepEqual(events, ["closed"], `${runtime}: the PING, then reset`);
    assert.equal(server.stats().quietResets, 1);

    // A plain TCP check: connect, reset.
    const connectOnly = await connectPeer(server);
    try {
      await reset(server, connectOnly.peer);
    } finally {
      await finish(connectOnly.peer);
    }
    assert.deepEqual(
      events,
      ["closed", "closed"],
      `${runtime}: connect, reset`,
    );
    const stats = server.stats();
    assert.equal(stats.quietResets, 2);
    assert.equal(stats.pingsIn, 1);
    assert.equal(stats.connectionsOpen, 0);
  } finally {
    await server.stop();
  }
});

test("quiet reset: a peer that resets in the middle of a frame is an exception (ECONNRESET), not counted", async () => {
  const { server, events } = await recordingServer();
  try {
    const { peer } = await connectPeer(server);
    try {
      const half = PING.subarray(0, 20);
      await peer.write(`write ${hex(half)}\n`);
      await until(
        () => server.stats().bytesIn === half.length,
        10_000,
        "the server to read the half frame",
      );
      await reset(server, peer);
    } finally {
      await finish(peer);
    }
    assert.deepEqual(events, ["exception ECONNRESET", "closed"], runtime);
    assert.equal(server.stats().quietResets, 0);
  } finally {
    await server.stop();
  }
});

test("quiet reset: a peer that resets while the server still has bytes to write to it is an exception, not counted", async () => {
  const { server, events } = await recordingServer();
  // More than loopback's socket buffers hold (a few MiB each way), so part
  // of the reply stays in the server's write buffer while the peer reads
  // nothing.
  const reply = new Uint8Array(32 * 1024 * 1024);
  server.on("data", (socket, { uuid }) => socket.send({ uuid, data: reply }));
  try {
    const { peer, socket } = await connectPeer(server);
    try {
      await peer.write(`pause\nwrite ${hex(DATA)}\n`);
      await until(
        () => server.stats().messagesIn === 1 && socket.bufferedAmount > 0,
        10_000,
        "the reply to be stuck in the server's write buffer",
      );
      await reset(server, peer);
    } finally {
      await finish(peer);
    }
    assert.equal(events.length, 2, `${runtime}: ${events}`);
    assert.match(events[0], /^exception/, `${runtime}: ${events}`);
    assert.equal(events[1], "closed");
    assert.equal(server.stats().quietResets, 0);
  } finally {
    await server.stop();
  }
});
