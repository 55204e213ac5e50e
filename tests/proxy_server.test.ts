// Server with `proxyProtocol`: the header comes first, remoteAddr becomes the
// original client's, and a bad, late or untrusted header closes only that
// connection. Off, a PROXY header is refused like any other non-frame bytes.

import assert from "node:assert/strict";
import { test } from "./_harness.ts";
import { fromHex } from "./_hex.ts";
import {
  concatBytes,
  decoder,
  encoder,
  HOST,
  next,
  RawSocket,
  until,
} from "./_helpers.ts";
import {
  encodeFrame,
  ProtocolError,
  ProxyProtocolError,
  Server,
  type ServerOptions,
  type ServerSocket,
  SIGN_DATA,
  SIGN_PING,
} from "../mod.ts";

const UUID = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
const request = (text: string) =>
  encodeFrame({ sign: SIGN_DATA, uuid: UUID, payload: encoder.encode(text) });
const ascii = (text: string) => encoder.encode(text);
/** A v2 TCP4 header: 203.0.113.7:50000 -> 198.51.100.1:443. */
const V2_TCP4 = fromHex(
  "0d0a0d0a000d0a515549540a2111000c" + "cb007107c6336401" + "c350" + "01bb",
);
/** A v2 LOCAL header, as HAProxy's health checks send. */
const V2_LOCAL = fromHex("0d0a0d0a000d0a515549540a20000000");

/** An echo server with `proxyProtocol`, recording exceptions and sockets. */
async function proxiedServer(
  proxyProtocol: ServerOptions["proxyProtocol"] = true,
) {
  const server = new Server({ host: HOST, port: 0, proxyProtocol });
  const exceptions: unknown[] = [];
  const connected: ServerSocket[] = [];
  server.on("data", (socket, message) => socket.send(message));
  server.on("exception", (_socket, error) => exceptions.push(error));
  server.on("connected", (socket) => {
    connected.push(socket);
  });
  await server.start();
  return { server, exceptions, connected };
}

/** Waits for the echo of `request(text)` on a raw socket. */
async function echoed(socket: RawSocket, text: string): Promise<void> {
  const frame = request(text);
  await until(() => socket.receivedBytes >= frame.length, 3000, "the echo");
  const got = concatBytes(...socket.received);
  assert.equal(decoder.decode(got.subarray(45)), text);
}

test("proxyProtocol: a v1 header's source becomes remoteAddr before connected; the proxy is proxyAddr", async () => {
  const { server, exceptions, connected } = await proxiedServer();
  await using _ = server;
  const socket = await RawSocket.connect(server.port);
  try {
    await socket.write(ascii("PROXY TCP4 192.0.2.10 192.0.2.1 40000 7000\r\n"));
    await socket.write(request("hello"));
    await echoed(socket, "hello");
    assert.equal(connected.length, 1);
    const [peer] = connected;
    assert.deepEqual(peer.remoteAddr, { hostname: "192.0.2.10", port: 40000 });
    assert.equal(peer.proxyAddr?.hostname.replace(/^::ffff:/, ""), "127.0.0.1");
    assert.notEqual(peer.proxyAddr?.port, 40000);
    assert.equal(peer.proxyHeader?.version, 1);
    assert.deepEqual(exceptions, []);
  } finally {
    await socket.close();
  }
});

test("proxyProtocol: a v2 header and the first frame in one write, and a header split byte by byte", async () => {
  const { server, exceptions, connected } = await proxiedServer();
  await using _ = server;
  const together = await RawSocket.connect(server.port);
  const split = await RawSocket.connect(server.port);
  try {
    await together.write(concatBytes(V2_TCP4, request("one write")));
    for (let i = 0; i < V2_TCP4.length; i++) {
      await split.write(V2_TCP4.subarray(i, i + 1));
    }
    await split.write(request("split"));
    await echoed(together, "one write");
    await echoed(split, "split");
    assert.equal(connected.length, 2);
    for (const peer of connected) {
      assert.deepEqual(peer.remoteAddr, {
        hostname: "203.0.113.7",
        port: 50000,
      });
      assert.deepEqual(peer.proxyHeader?.destination, {
        hostname: "198.51.100.1",
        port: 443,
      });
    }
    assert.deepEqual(exceptions, []);
  } finally {
    await together.close();
    await split.close();
  }
});

test("proxyProtocol: a LOCAL header (a health check) keeps the connection's own address and its PING is echoed", async () => {
  const { server, exceptions, connected } = await proxiedServer();
  await using _ = server;
  const socket = await RawSocket.connect(server.port);
  try {
    const ping = encodeFrame({
      sign: SIGN_PING,
      uuid: UUID,
      payload: new Uint8Array(0),
    });
    await socket.write(concatBytes(V2_LOCAL, ping));
    await until(() => socket.receivedBytes >= ping.length, 3000, "the PONG");
    assert.deepEqual(concatBytes(...socket.received), ping);
    assert.equal(connected.length, 1);
    assert.equal(connected[0].proxyHeader?.command, "LOCAL");
    assert.deepEqual(connected[0].remoteAddr, connected[0].proxyAddr);
    assert.deepEqual(exceptions, []);
  } finally {
    await socket.close();
  }
});

test("proxyProtocol: a bad header closes only its connection, with a ProxyProtocolError", async () => {
  const { server, exceptions, connected } = await proxiedServer();
  await using _ = server;
  const good = await RawSocket.connect(server.port);
  const bads = [
    request("a frame, no header"),
    ascii("PROXY TCP4 192.0.2.300 192.0.2.1 1 2\r\n"),
    ascii("PROXY UNKNOWN " + "f".repeat(100)),
    fromHex("0d0a0d0a000d0a515549540a2111000b" + "00".repeat(11)),
  ];
  const reasons = ["signature", "address", "tooLong", "length"];
  try {
    await good.write(ascii("PROXY TCP6 2001:db8::7 2001:db8::1 1234 80\r\n"));
    for (const [i, bytes] of bads.entries()) {
      const bad = await RawSocket.connect(server.port);
      await bad.write(bytes);
      await bad.ended;
      await bad.close();
      await until(() => exceptions.length === i + 1, 3000, "the exception");
      const error = exceptions[i];
      assert.ok(error instanceof ProxyProtocolError, String(error));
      assert.equal(error.reason, reasons[i]);
    }
    await good.write(request("still served"));
    await echoed(good, "still served");
    assert.equal(connected.length, 1); // the bad ones were never announced
    assert.equal(connected[0].remoteAddr.hostname, "2001:db8::7");
    assert.equal(server.connections.size, 1);
  } finally {
    await good.close();
  }
});

test("proxyProtocol: a header not whole within proxyProtocol.timeout closes the connection; so does silence", async () => {
  const { server, exceptions } = await proxiedServer({ timeout: 0.2 });
  await using _ = server;
  const partial = await RawSocket.connect(server.port);
  const silent = await RawSocket.connect(server.port);
  const started = performance.now();
  await partial.write(ascii("PROXY TCP4 192.0.2.10"));
  await partial.ended;
  await silent.ended;
  const took = performance.now() - started;
  await partial.close();
  await silent.close();
  assert.ok(took >= 150, `closed after ${took} ms`);
  await until(() => exceptions.length === 2, 3000, "two exceptions");
  for (const error of exceptions) {
    assert.ok(error instanceof ProxyProtocolError);
    assert.equal(error.reason, "timeout");
  }
  assert.deepEqual(
    exceptions.map((e) => (e as ProxyProtocolError).offset).sort(),
    [0, 21],
  );
});

test("proxyProtocol: a connection that ends inside its header is reported truncated", async () => {
  const { server, exceptions } = await proxiedServer();
  await using _ = server;
  const socket = await RawSocket.connect(server.port);
  await socket.write(V2_TCP4.subarray(0, 20));
  await until(() => server.connections.size === 1, 3000, "the connection");
  await socket.close();
  await until(() => exceptions.length === 1, 3000, "the exception");
  assert.ok(exceptions[0] instanceof ProxyProtocolError);
  assert.equal(exceptions[0].reason, "truncated");
});

test("proxyProtocol.trusted: a peer outside it is closed unread; one inside is served", async () => {
  const outside = await proxiedServer({ trusted: ["10.0.0.0/8", "fd00::/8"] });
  const inside = await proxiedServer({ trusted: ["10.0.0.0/8", "127.0.0.1"] });
  await using _a = outside.server;
  await using _b = inside.server;
  const refused = await RawSocket.connect(outside.server.port);
  const served = await RawSocket.connect(inside.server.port);
  try {
    await refused.ended;
    await until(() => outside.exceptions.length === 1, 3000, "the exception");
    const error = outside.exceptions[0];
    assert.ok(error instanceof ProxyProtocolError);
    assert.equal(error.reason, "untrusted");
    assert.match(error.message, /127\.0\.0\.1/);
    assert.equal(outside.connected.length, 0);

    await served.write(concatBytes(V2_TCP4, request("trusted")));
    await echoed(served, "trusted");
    assert.equal(inside.connected[0].remoteAddr.hostname, "203.0.113.7");
    assert.deepEqual(inside.exceptions, []);
  } finally {
    await refused.close();
    await served.close();
  }
});

test("without proxyProtocol a PROXY header is a protocol error like any non-frame bytes", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  const exceptions: unknown[] = [];
  server.on("exception", (_socket, error) => exceptions.push(error));
  await server.start();
  for (
    const header of [ascii("PROXY TCP4 192.0.2.10 192.0.2.1 1 2\r\n"), V2_TCP4]
  ) {
    const socket = await RawSocket.connect(server.port);
    const closed = next(server, "closed");
    await socket.write(concatBytes(header, request("never read")));
    await closed;
    await socket.close();
  }
  assert.equal(exceptions.length, 2);
  for (const error of exceptions) {
    assert.ok(error instanceof ProtocolError);
    assert.ok(!(error instanceof ProxyProtocolError));
  }
});

test("proxyProtocol options are checked, naming the option", () => {
  const make =
    (proxyProtocol: unknown, extra: Partial<ServerOptions> = {}) => () =>
      new Server({
        port: 0,
        proxyProtocol: proxyProtocol as ServerOptions["proxyProtocol"],
        ...extra,
      });
  assert.throws(make("yes"), /proxyProtocol/);
  assert.throws(make({ trusted: "127.0.0.1" }), /proxyProtocol\.trusted/);
  assert.throws(make({ trusted: ["localhost"] }), /"localhost"/);
  assert.throws(make({ trusted: ["10.0.0.0/33"] }), TypeError);
  assert.throws(make({ timeout: 0 }), RangeError);
  assert.throws(make({ timeout: Infinity }), /proxyProtocol\.timeout/);
  assert.throws(make(true, { tls: { cert: "x", key: "y" } }), /tls/);
  new Server({ port: 0, proxyProtocol: false });
  new Server({ port: 0, proxyProtocol: { trusted: [] } });
});
