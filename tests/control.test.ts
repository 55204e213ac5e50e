// Control messages on reserved PING uuids: the golden vectors of PROTOCOL.md,
// and what our Server answers to each.

import assert from "node:assert/strict";
import { test } from "./_harness.ts";
import { HOST, RawSocket, until } from "./_helpers.ts";
import { fromHex, toHex } from "./_hex.ts";
import {
  Client,
  decodeFrame,
  encodeFrame,
  type Frame,
  FrameDecoder,
  type ProtocolVersion,
  Server,
  SIGN_DATA,
  SIGN_PING,
  TimeoutError,
} from "../mod.ts";
import { controlFrame, type ControlKind, controlKind } from "../_control.ts";
import { runtimeTransport } from "../transport/mod.ts";

// Copied from PROTOCOL.md, not computed: a change of the wire shows here.
const VECTORS: Record<ProtocolVersion, Record<ControlKind, string>> = {
  3: {
    "hello":
      "017e71746b2d63746c7e68656c6c6f2d76317e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e0000000000000000",
    "hello-ack":
      "017e71746b2d63746c7e68656c6c6f2d61636b2d76317e7e7e7e7e7e7e7e7e7e7e7e7e7e7e0000000000000000",
    "going-away":
      "017e71746b2d63746c7e676f696e672d617761797e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e0000000000000000",
    "done-writing":
      "017e71746b2d63746c7e646f6e652d77726974696e677e7e7e7e7e7e7e7e7e7e7e7e7e7e7e0000000000000000",
  },
  2: {
    "hello":
      "017e71746b2d63746c7e68656c6c6f2d76317e7e7e7e7e7e7e7e7e7e7e7e7e7e7e00000000",
    "hello-ack":
      "017e71746b2d63746c7e68656c6c6f2d61636b2d76317e7e7e7e7e7e7e7e7e7e7e00000000",
    "going-away":
      "017e71746b2d63746c7e676f696e672d617761797e7e7e7e7e7e7e7e7e7e7e7e7e00000000",
    "done-writing":
      "017e71746b2d63746c7e646f6e652d77726974696e677e7e7e7e7e7e7e7e7e7e7e00000000",
  },
};

const KINDS = Object.keys(VECTORS[3]) as ControlKind[];

test("control messages: golden vectors for protocols 3 and 2, both ways", () => {
  for (const protocol of [3, 2] as const) {
    for (const kind of KINDS) {
      const hex = VECTORS[protocol][kind];
      assert.equal(
        toHex(encodeFrame(controlFrame(kind, protocol), protocol)),
        hex,
      );
      const frame = decodeFrame(fromHex(hex), { protocol });
      assert.equal(frame.sign, SIGN_PING);
      assert.equal(frame.payload.length, 0);
      assert.equal(controlKind(frame.uuid, protocol), kind);
      // Never one of the other protocol's, never a UUID generator's.
      assert.equal(controlKind(frame.uuid, protocol === 3 ? 2 : 3), undefined);
      assert.doesNotMatch(frame.uuid, /^[0-9a-fA-F-]*$/);
    }
  }
  for (let i = 0; i < 1000; i++) {
    const uuid = crypto.randomUUID();
    assert.equal(controlKind(uuid, 3), undefined);
    assert.equal(controlKind(uuid.replaceAll("-", ""), 2), undefined);
  }
});

async function pings(
  protocol: ProtocolVersion,
  sent: Frame[],
): Promise<Frame[]> {
  await using server = new Server({ host: HOST, port: 0, protocol });
  await server.start();
  const peer = await RawSocket.connect(server.port);
  try {
    for (const frame of sent) await peer.write(encodeFrame(frame, protocol));
    const uuidLength = protocol === 3 ? 36 : 32;
    const marker = {
      sign: SIGN_PING,
      uuid: "f".repeat(uuidLength),
      payload: new Uint8Array(0),
    } as Frame;
    await peer.write(encodeFrame(marker, protocol));
    const received: Frame[] = [];
    await until(
      () => {
        received.length = 0;
        const decoder = new FrameDecoder({ protocol });
        for (const chunk of peer.received) {
          decoder.push(chunk, (f) => received.push({ ...f }));
        }
        return received.some((f) => f.uuid === marker.uuid);
      },
      3000,
      "the marker's echo",
    );
    return received.slice(0, -1);
  } finally {
    await peer.close();
  }
}

test("server: answers hello with hello-ack, echoes unknown reserved uuids, stays silent on the rest", async () => {
  for (const protocol of [3, 2] as const) {
    const length = protocol === 3 ? 36 : 32;
    const unknown = "~qtk-ctl~hello-v9".padEnd(length, "~");
    const answers = await pings(protocol, [
      controlFrame("hello", protocol),
      controlFrame("done-writing", protocol),
      controlFrame("going-away", protocol),
      controlFrame("hello-ack", protocol),
      { sign: SIGN_PING, uuid: unknown, payload: new Uint8Array([1, 2]) },
    ]);
    assert.deepEqual(answers.map((f) => f.uuid), [
      controlFrame("hello-ack", protocol).uuid,
      unknown,
    ]);
    assert.deepEqual(Array.from(answers[1].payload), [1, 2]);
  }
});

/** The frames `peer` has received so far. */
function framesOf(peer: RawSocket, protocol: ProtocolVersion = 3): Frame[] {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder({ protocol });
  for (const chunk of peer.received) decoder.push(chunk, (f) => frames.push(f));
  return frames;
}

test("server: done-writing from a client that was not told to go away earns it no exemption from timeout", async () => {
  // A peer that said hello and then done-writing, while the server was not
  // draining, used to be spared the silence timeout for good.
  await using server = new Server({ host: HOST, port: 0, timeout: 0.2 });
  const exceptions: unknown[] = [];
  server.on("exception", (_socket, error) => exceptions.push(error));
  await server.start();
  for (const tail of [new Uint8Array(0), new Uint8Array([0x11, 0x36, 0x62])]) {
    exceptions.length = 0;
    const peer = await RawSocket.connect(server.port);
    try {
      await peer.write(encodeFrame(controlFrame("hello", 3), 3));
      await peer.write(encodeFrame(controlFrame("done-writing", 3), 3));
      // Then silence, or the first bytes of a header that never completes.
      if (tail.length > 0) await peer.write(tail);
      const started = performance.now();
      await until(() => peer.isEnded, 3000, "the server to close the peer");
      assert.ok(performance.now() - started < 2000);
      assert.equal(exceptions.length, 1);
      assert.ok(exceptions[0] instanceof TimeoutError, `got ${exceptions[0]}`);
      assert.match(
        (exceptions[0] as Error).message,
        tail.length > 0 ? /header incomplete/ : /silent/,
      );
      assert.deepEqual(
        framesOf(peer).filter((f) => controlKind(f.uuid, 3) !== undefined)
          .map((f) => controlKind(f.uuid, 3)),
        ["hello-ack"],
      );
    } finally {
      await peer.close();
    }
  }
  const stats = server.stats();
  assert.equal(stats.controlIgnored, 2);
  assert.equal(stats.timeouts, 2);
});

test("server: hello only as the first frame; going-away and hello-ack from a client are ignored and counted", async () => {
  await using server = new Server({ host: HOST, port: 0, heartbeat: Infinity });
  await server.start();
  const peer = await RawSocket.connect(server.port);
  try {
    const marker: Frame = {
      sign: SIGN_PING,
      uuid: crypto.randomUUID(),
      payload: new Uint8Array(0),
    };
    for (
      const frame of [
        marker,
        controlFrame("hello", 3),
        controlFrame("going-away", 3),
        controlFrame("hello-ack", 3),
        { ...marker, uuid: crypto.randomUUID() },
      ]
    ) await peer.write(encodeFrame(frame, 3));
    await until(
      () => framesOf(peer).filter((f) => !controlKind(f.uuid, 3)).length >= 2,
      3000,
      "both echoes",
    );
    // The two plain PINGs echoed, no hello-ack: this hello was not first.
    assert.deepEqual(
      framesOf(peer).map((f) => controlKind(f.uuid, 3) ?? "ping"),
      ["ping", "ping"],
    );
    assert.equal(server.stats().controlIgnored, 3);
    const [socket] = server.connections;
    assert.equal(socket.stats().controlIgnored, 3);
  } finally {
    await peer.close();
  }
});

test("server: a draining client that said done-writing is spared the silence timeout, not an unfinished header", async () => {
  await using server = new Server({
    host: HOST,
    port: 0,
    timeout: 0.2,
    gracePeriod: 5,
  });
  const exceptions: unknown[] = [];
  server.on("exception", (_socket, error) => exceptions.push(error));
  server.on("data", () => {}); // never answers: the drain waits
  await server.start();
  for (const tail of [new Uint8Array(0), new Uint8Array([0x11, 0x36])]) {
    exceptions.length = 0;
    const peer = await RawSocket.connect(server.port);
    const data: Frame = {
      sign: SIGN_DATA,
      uuid: crypto.randomUUID(),
      payload: new Uint8Array(1),
    };
    await peer.write(encodeFrame(controlFrame("hello", 3), 3));
    await peer.write(encodeFrame(data, 3));
    await until(() => server.connections.size === 1, 3000, "the connection");
    const stopping = server.stop();
    await until(
      () => framesOf(peer).some((f) => controlKind(f.uuid, 3) === "going-away"),
      3000,
      "going-away",
    );
    await peer.write(encodeFrame(controlFrame("done-writing", 3), 3));
    if (tail.length > 0) await peer.write(tail);
    const started = performance.now();
    if (tail.length === 0) {
      // Silent, owed a reply: kept past its timeout (the drain's deadline
      // bounds it), then the test ends it.
      await new Promise((resolve) => setTimeout(resolve, 600));
      assert.equal(peer.isEnded, false);
      assert.deepEqual(exceptions, []);
      await peer.close();
    } else {
      await until(() => peer.isEnded, 3000, "the server to close the peer");
      assert.ok(performance.now() - started < 2000);
      assert.match(String(exceptions[0]), /header incomplete/);
      await peer.close();
    }
    await stopping;
    await server.start();
  }
  assert.equal(server.stats().controlIgnored, 0);
});

test("client: hello-ack only before the connection is answered; a server's done-writing or hello is ignored and counted", async () => {
  // A raw server that answers the hello, then sends what a client may not
  // take as news.
  const open = new Set<{ close(): void }>();
  const listener = await runtimeTransport().listen(
    { hostname: HOST, port: 0 },
    (connection) => {
      open.add(connection);
      let answered = false;
      return {
        received() {
          if (answered) return;
          answered = true;
          const frames = ["hello-ack", "hello-ack", "done-writing", "hello"]
            .map((kind) =>
              encodeFrame(controlFrame(kind as ControlKind, 3), 3)
            );
          connection.write(frames.reduce((all, frame) => {
            const joined = new Uint8Array(all.length + frame.length);
            joined.set(all);
            joined.set(frame, all.length);
            return joined;
          }));
        },
        ended: () => open.delete(connection),
      };
    },
  );
  try {
    await using client = new Client({
      host: HOST,
      port: listener.addr.port,
      reconnect: false,
    });
    await until(() => client.connected, 3000, "the client to connect");
    await until(
      () => client.stats().controlIgnored === 3,
      3000,
      "three ignored",
    );
    assert.equal(client.connected, true);
  } finally {
    await listener.close();
    for (const connection of open) connection.close();
    await until(() => open.size === 0, 3000, "raw connections to close");
  }
});
