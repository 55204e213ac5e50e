// Protocol 2 interoperability with the real Node.js @qtk/tcp-framework 2.0.10
// package, in both directions: its Client against our Server and our Client
// against its Server. The 2.x side runs in a Node.js child process
// (tests/interop/v2_peer.cjs) that reports what it sees, line by line.

import assert from "node:assert/strict";
import { test } from "./_harness.ts";
import { decoder, encoder, HOST, next, until } from "./_helpers.ts";
import { type Child, spawn } from "./_spawn.ts";
import { Client, type Frame, FrameDecoder, Server, SIGN_PING } from "../mod.ts";
import { runtimeTransport, type Transport } from "../transport/mod.ts";

const PEER = decodeURIComponent(
  new URL("./interop/v2_peer.cjs", import.meta.url).pathname,
);
/** The 2.x peer's 1 s clock runs every TICK ms: PINGs every 20 ticks. */
const TICK_MS = 25;

function peer(...args: string[]): Promise<Child> {
  return spawn("node", [PEER, ...args]);
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
}

/** A 2.x uuid: 32 hex digits, no dashes. */
function uuid2(): string {
  return crypto.randomUUID().replaceAll("-", "");
}

/** Words after the first on the child's lines starting with `label`. */
function field(child: Child, label: string): string[][] {
  return child.lines
    .filter((line) => line.startsWith(label + " "))
    .map((line) => line.split(" ").slice(1));
}

const payloads: Uint8Array[] = [
  encoder.encode("echo"),
  new Uint8Array(0),
  Uint8Array.from({ length: 256 }, (_, i) => i),
  Uint8Array.from({ length: 300_000 }, (_, i) => (i * 31) & 0xff),
];

test("protocol 2: the 2.x Client's requests round trip through our Server", async () => {
  await using server = new Server({ host: HOST, port: 0, protocol: 2 });
  const received: string[] = [];
  server.on("data", (socket, { uuid, data }) => {
    received.push(uuid);
    socket.send({ uuid, data });
  });
  await server.start();
  const child = await peer("client", String(server.port));
  try {
    await child.waitFor(/^CONNECTED$/);
    const uuids = payloads.map(() => uuid2());
    for (const [i, data] of payloads.entries()) {
      await child.write(`SEND ${uuids[i]} ${toBase64(data)}\n`);
    }
    await child.waitFor(() => field(child, "DATA").length === payloads.length);
    const replies = field(child, "DATA");
    assert.deepEqual(replies.map(([uuid]) => uuid), uuids);
    for (const [i, [, base64 = ""]] of replies.entries()) {
      assert.deepEqual(fromBase64(base64), payloads[i]);
    }
    assert.deepEqual(received, uuids);
    assert.deepEqual(field(child, "EXCEPTION"), []);
  } finally {
    await child.kill();
  }
});

test("protocol 2: our Server echoes the 2.x Client's heartbeat PINGs", async () => {
  // No server heartbeat: only the echoes keep the 2.x client from timing
  // out (30 of its ticks after the last byte it received).
  await using server = new Server({
    host: HOST,
    port: 0,
    protocol: 2,
    heartbeat: Infinity,
  });
  await server.start();
  const child = await peer(
    "client",
    String(server.port),
    "--tick-ms",
    String(TICK_MS),
  );
  try {
    await child.waitFor(/^CONNECTED$/);
    const echoed = () => {
      const sent = new Set(field(child, "PING-SENT").map(([uuid]) => uuid));
      return field(child, "PING-RECEIVED").filter(([uuid]) => sent.has(uuid));
    };
    // Three heartbeats span two of the client's timeouts.
    await child.waitFor(() => echoed().length >= 3, 10_000);
    for (const [uuid] of echoed()) assert.match(uuid, /^[0-9a-f]{32}$/);
    assert.deepEqual(field(child, "CLOSED"), []);
    assert.deepEqual(field(child, "EXCEPTION"), []);
  } finally {
    await child.kill();
  }
});

test("protocol 2: the 2.x Client ignores our Server's PINGs and keeps working", async () => {
  await using server = new Server({
    host: HOST,
    port: 0,
    protocol: 2,
    heartbeat: 0.05,
  });
  server.on("data", (socket, message) => socket.send(message));
  await server.start();
  const child = await peer("client", String(server.port));
  try {
    await child.waitFor(/^CONNECTED$/);
    await child.waitFor(() => field(child, "PING-RECEIVED").length >= 3);
    // A client never answers a PING: nothing went out in reply.
    assert.deepEqual(field(child, "PING-SENT"), []);
    const uuid = uuid2();
    await child.write(`SEND ${uuid} ${toBase64(encoder.encode("after"))}\n`);
    const reply = await child.waitFor((line) => line.startsWith("DATA "));
    assert.equal(reply, `DATA ${uuid} ${toBase64(encoder.encode("after"))}`);
    assert.deepEqual(field(child, "CLOSED"), []);
  } finally {
    await child.kill();
  }
});

test("protocol 2: our Client's requests round trip through the 2.x Server", async () => {
  const child = await peer("server");
  try {
    const port = Number((await child.waitFor(/^LISTENING \d+$/)).split(" ")[1]);
    await using client = new Client({
      host: HOST,
      port,
      protocol: 2,
      reconnect: false,
    });
    await next(client, "connected");
    for (const data of payloads) {
      assert.deepEqual(
        new Uint8Array(await client.request(data, { timeout: 5000 })),
        data,
      );
    }
    // send() with our own 32-character uuid: the echo carries it back.
    const uuid = uuid2();
    const echoed = next<[{ uuid: string; data: Uint8Array }]>(client, "data");
    client.send({ uuid, data: encoder.encode("mine") });
    const [message] = await echoed;
    assert.equal(message.uuid, uuid);
    assert.deepEqual(new Uint8Array(message.data), encoder.encode("mine"));
    await child.waitFor((line) =>
      line === `DATA ${uuid} ${toBase64(encoder.encode("mine"))}`
    );
    assert.equal(field(child, "DATA").length, payloads.length + 1);
    // A protocol 3 uuid would shift every later 2.x frame: refused up front.
    assert.throws(
      () => client.send({ uuid: crypto.randomUUID(), data: new Uint8Array() }),
      TypeError,
    );
    assert.deepEqual(field(child, "EXCEPTION"), []);
  } finally {
    await child.kill();
  }
});

test("protocol 2: the 2.x Server's echo of our Client's PING keeps it alive", async () => {
  const child = await peer("server");
  try {
    const port = Number((await child.waitFor(/^LISTENING \d+$/)).split(" ")[1]);
    // Watch the bytes both ways: our Client never surfaces PINGs.
    const sent = new Set<string>();
    const echoes: string[] = [];
    const transport = tap(runtimeTransport(), (frame) => {
      if (frame.sign === SIGN_PING) sent.add(frame.uuid);
    }, (frame) => {
      if (frame.sign === SIGN_PING) echoes.push(frame.uuid);
    });
    // The 2.x server never pings: without the echoes this client would drop
    // the connection after 0.3 s of silence.
    await using client = new Client({
      host: HOST,
      port,
      protocol: 2,
      heartbeat: 0.05,
      timeout: 0.3,
      reconnect: false,
      transport,
    });
    const trouble: unknown[] = [];
    client.on("exception", (error) => trouble.push(error));
    client.on("closed", () => trouble.push("closed"));
    await next(client, "connected");
    // Twelve echoes span two of our timeouts.
    await until(() => echoes.length >= 12, 10_000, "twelve PING echoes");
    for (const uuid of echoes) {
      assert.ok(sent.has(uuid), `echo ${uuid} answers a PING we sent`);
    }
    // The first PING is the control message asking whether the server
    // speaks control messages: the 2.x server echoes it unchanged, as it does
    // every heartbeat (which are random uuids).
    assert.equal(echoes[0], "~qtk-ctl~hello-v1~~~~~~~~~~~~~~~");
    for (const uuid of echoes.slice(1)) {
      assert.match(uuid, /^[0-9a-f]{32}$/);
    }
    assert.deepEqual(trouble, []);
    assert.equal(client.connected, true);
    // And the 2.x server saw those very PINGs arrive.
    for (const uuid of echoes.slice(0, 5)) {
      await child.waitFor((line) => line === `PING-RECEIVED ${uuid}`);
    }
    const reply = await client.request(encoder.encode("still here"), {
      timeout: 5000,
    });
    assert.equal(decoder.decode(reply), "still here");
  } finally {
    await child.kill();
  }
});

/** Wraps a transport's outgoing connections, decoding protocol 2 frames both ways. */
function tap(
  inner: Transport,
  onSent: (frame: Frame) => void,
  onReceived: (frame: Frame) => void,
): Transport {
  return {
    listen: (...args) => inner.listen(...args),
    connect(address, accept, options) {
      const out = new FrameDecoder({ protocol: 2 });
      const into = new FrameDecoder({ protocol: 2 });
      return inner.connect(address, (connection) => {
        const handler = accept({
          get remoteAddr() {
            return connection.remoteAddr;
          },
          write(bytes) {
            out.push(bytes.slice(), onSent);
            return connection.write(bytes);
          },
          close: () => connection.close(),
        });
        return {
          received(chunk) {
            into.push(chunk.slice(), onReceived);
            handler.received(chunk);
          },
          ended: (error) => handler.ended(error),
        };
      }, options);
    },
  };
}

// Drain and server lists with 2.x peers, which ignore control messages: the
// 3.0.1 package (the layout of protocol 3) is not on the npm registry, and the
// 2.x one handles PINGs as 3.0.1 does (its server echoes every PING, its
// client reads past every PING), so it stands in for an old peer.

test("protocol 2: the 2.x Client against a draining server is closed once idle, reconnects to the restarted one and keeps working", async () => {
  let server = new Server({ host: HOST, port: 0, protocol: 2, gracePeriod: 8 });
  server.on("data", (socket, message) => socket.send(message));
  await server.start();
  const port = server.port;
  const child = await peer("client", String(port));
  try {
    await child.waitFor(/^CONNECTED$/);
    const first = uuid2();
    await child.write(`SEND ${first} ${toBase64(encoder.encode("one"))}\n`);
    await child.waitFor((line) => line.startsWith(`DATA ${first} `));
    const began = performance.now();
    await server.stop();
    const took = performance.now() - began;
    await child.waitFor(/^CLOSED$/);
    // Idle: closed after a moment, not at the 8 s grace period.
    assert.ok(took < 3000, `stop() took ${took} ms`);
    server = new Server({ host: HOST, port, protocol: 2 });
    server.on("data", (socket, message) => socket.send(message));
    await server.start();
    // The 2.x client reconnects by itself 200 ms after a close.
    await child.waitFor(
      () => child.lines.filter((line) => line === "CONNECTED").length === 2,
      5000,
    );
    const second = uuid2();
    await child.write(`SEND ${second} ${toBase64(encoder.encode("two"))}\n`);
    await child.waitFor((line) => line.startsWith(`DATA ${second} `));
    // The drain notice reached it as a PING, which it ignored.
    assert.ok(
      child.lines.includes("PING-RECEIVED ~qtk-ctl~going-away~~~~~~~~~~~~~"),
    );
    assert.deepEqual(field(child, "EXCEPTION"), []);
  } finally {
    await child.kill();
    await server.stop();
  }
});

test("protocol 2: the 2.x Server in our Client's server list beside ours, which is drained: every request answered", async () => {
  const child = await peer("server");
  const ours = new Server({ host: HOST, port: 0, protocol: 2 });
  ours.on("data", (socket, message) => socket.send(message));
  await ours.start();
  let client: Client | undefined;
  try {
    const port = Number((await child.waitFor(/^LISTENING \d+$/)).split(" ")[1]);
    client = new Client({
      servers: [`${HOST}:${port}`, `${HOST}:${ours.port}`],
      protocol: 2,
      balance: "round-robin",
      reconnect: () => 50,
    });
    client.on("exception", () => {});
    const connected = new Set<string>();
    client.on("connected", (server) => connected.add(server));
    await until(() => connected.size === 2, 5000, "both connected");
    let answered = 0;
    const failures: unknown[] = [];
    const batch = () =>
      Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          client!.request(new Uint8Array([i]), { timeout: 5000 }).then(
            () =>
              void answered++,
            (error) => void failures.push(error),
          )),
      );
    await batch();
    const stopping = ours.stop();
    await batch();
    await stopping;
    await batch();
    assert.deepEqual(failures, []);
    assert.equal(answered, 150);
    // The 2.x server saw our hello as a PING and echoed it.
    assert.ok(
      child.lines.includes("PING-RECEIVED ~qtk-ctl~hello-v1~~~~~~~~~~~~~~~"),
    );
  } finally {
    await client?.close();
    await child.kill();
    await ours.stop();
  }
});
