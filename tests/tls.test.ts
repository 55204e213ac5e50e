// TLS through each runtime's own TLS stack, with the TEST-ONLY certificates in
// tests/fixtures (see make-test-only-certs.sh): a CA, and a server certificate
// it signed for localhost and 127.0.0.1.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "./_harness.ts";
import {
  assertSameBytes,
  decoder,
  encoder,
  HOST,
  next,
  patterned,
  RawSocket,
  until,
} from "./_helpers.ts";
import {
  Client,
  ProtocolError,
  Server,
  type ServerSocket,
  TimeoutError,
  TlsError,
} from "../mod.ts";
import {
  runtimeTransport,
  type TransportConnection,
} from "../transport/mod.ts";

function fixture(name: string): string {
  return readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8");
}

const cert = fixture("test-only-server.pem");
const key = fixture("test-only-server-key.pem");
const ca = fixture("test-only-ca.pem");
const otherCa = fixture("test-only-other-ca.pem");

/** A TLS echo server that records its exceptions. */
async function tlsEchoServer(): Promise<
  { server: Server; exceptions: unknown[] }
> {
  const server = new Server({ host: HOST, port: 0, tls: { cert, key } });
  const exceptions: unknown[] = [];
  server.on("exception", (_socket, error) => exceptions.push(error));
  server.on("data", (socket, message) => server.send(socket, message));
  await server.start();
  return { server, exceptions };
}

/** Proves `server` still serves: a TLS request round trip. */
async function assertServesTls(server: Server): Promise<void> {
  await using client = new Client({
    host: HOST,
    port: server.port,
    tls: { ca },
    reconnect: false,
  });
  const reply = await client.request(encoder.encode("still serving"), {
    timeout: 5000,
  });
  assert.equal(decoder.decode(reply), "still serving");
}

test("tls: echo over TLS, request() and data events", async () => {
  const { server, exceptions } = await tlsEchoServer();
  await using _ = server;
  const connected = next<[ServerSocket]>(server, "connected");
  await using client = new Client({
    host: HOST,
    port: server.port,
    tls: { ca },
  });
  await next(client, "connected");
  const [socket] = await connected;
  assert.equal(socket.remoteAddr.hostname, HOST);

  const reply = await client.request(encoder.encode("echo"), { timeout: 5000 });
  assert.equal(decoder.decode(reply), "echo");

  // Large enough to be read into its own buffer, patterned so that a byte
  // out of place shows.
  const uuid = crypto.randomUUID();
  const payload = patterned(1024 * 1024 + 3);
  const data = next<[{ uuid: string; data: Uint8Array }]>(client, "data");
  client.send({ uuid, data: payload });
  const [message] = await data;
  assert.equal(message.uuid, uuid);
  assertSameBytes(message.data, payload);
  assert.deepEqual(exceptions, []);
});

test("tls: serverName, and a list of CAs", async () => {
  const { server, exceptions } = await tlsEchoServer();
  await using _ = server;
  for (
    const options of [
      { host: HOST, tls: { ca: [otherCa, ca], serverName: "localhost" } },
      { host: HOST, tls: { ca, serverName: "127.0.0.1" } },
    ]
  ) {
    await using client = new Client({
      ...options,
      port: server.port,
      reconnect: false,
    });
    const reply = await client.request(encoder.encode("named"), {
      timeout: 5000,
    });
    assert.equal(decoder.decode(reply), "named");
  }
  assert.deepEqual(exceptions, []);
});

test("tls: a plaintext client against a TLS server fails cleanly; the server keeps serving", async () => {
  const { server, exceptions } = await tlsEchoServer();
  await using _ = server;
  // Its handshake never succeeds: an exception alone, no connected or closed.
  const announced: string[] = [];
  server.on("connected", () => announced.push("connected"));
  server.on("closed", () => announced.push("closed"));
  await using plain = new Client({
    host: HOST,
    port: server.port,
    reconnect: false,
  });
  // The connection never gets the server's answer to its hello, so it never
  // counts as connected: the request waits in the queue and is never written
  // to a server that cannot read it. This client does not reconnect, so once
  // the attempt failed the request rejects with its error, not its timeout.
  const failed = next<[unknown]>(plain, "exception");
  let connected = false;
  plain.on("connected", () => connected = true);
  const reply = await plain.request(encoder.encode("hello?"), { timeout: 8000 })
    .catch((error) => error);
  const [error] = await failed;
  assert.ok(error instanceof Error, `got ${error}`);
  assert.equal(reply, error);
  // Deno's and Bun's TLS answer with an alert, which the client names;
  // Node.js's closes the connection without a word.
  if (error instanceof ProtocolError) {
    assert.match(error.message, /a TLS alert: the peer speaks TLS/);
  }
  assert.equal(connected, false);
  await until(() => exceptions.length > 0, 5000, "the server's exception");
  assert.ok(exceptions[0] instanceof TlsError, `got ${exceptions[0]}`);
  assert.equal(exceptions[0].code, "NOT_TLS");
  await until(() => server.connections.size === 0, 5000, "no connections");
  assert.deepEqual(announced, []);
  assert.equal(server.stats().tlsFailures, 1);
  await assertServesTls(server);
});

test("tls: a TLS client against a plaintext server fails cleanly; the server keeps serving", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  const exceptions: unknown[] = [];
  server.on("exception", (_socket, error) => exceptions.push(error));
  server.on("data", (socket, message) => server.send(socket, message));
  await server.start();

  await using client = new Client({
    host: HOST,
    port: server.port,
    tls: { ca },
    reconnect: false,
  });
  let connected = false;
  client.on("connected", () => connected = true);
  const [error] = await next<[unknown]>(client, "exception");
  assert.ok(error instanceof TlsError, `got ${error}`);
  assert.equal(error.code, "HANDSHAKE_FAILED");
  assert.equal(connected, false);
  assert.equal(client.connected, false);
  // The server saw a TLS ClientHello where a frame should be, and says so.
  await until(() => exceptions.length > 0, 5000, "the server's exception");
  assert.match(
    String(exceptions[0]),
    /a TLS handshake: the peer speaks TLS, this side does not/,
  );
  await until(() => server.connections.size === 0, 5000, "no connections");

  await using plain = new Client({
    host: HOST,
    port: server.port,
    reconnect: false,
  });
  const reply = await plain.request(encoder.encode("plain"), { timeout: 5000 });
  assert.equal(decoder.decode(reply), "plain");
});

test("tls: the client refuses a certificate from an untrusted CA or for another name", async () => {
  const { server } = await tlsEchoServer();
  await using _ = server;
  for (
    const tls of [{ ca: otherCa }, { ca, serverName: "example.com" }]
  ) {
    await using client = new Client({
      host: HOST,
      port: server.port,
      tls,
      reconnect: false,
    });
    let connected = false;
    client.on("connected", () => connected = true);
    const [error] = await next<[unknown]>(client, "exception");
    assert.ok(error instanceof TlsError, `got ${error}`);
    assert.equal(error.code, tls.serverName ? "NAME_MISMATCH" : "UNTRUSTED");
    assert.equal(connected, false);
  }
  await until(() => server.connections.size === 0, 5000, "no connections");
  await assertServesTls(server);
});

test("tls: a handshake that never completes times out, and close() does not wait for it", async () => {
  // A listener that accepts and then says nothing at all.
  const open = new Set<TransportConnection>();
  const listener = await runtimeTransport().listen(
    { hostname: HOST, port: 0 },
    (connection) => {
      open.add(connection);
      return { received() {}, ended: () => open.delete(connection) };
    },
  );
  try {
    const client = new Client({
      host: HOST,
      port: listener.addr.port,
      tls: { ca },
      timeout: 0.2,
      reconnect: false,
    });
    const [error] = await next<[unknown]>(client, "exception");
    assert.ok(error instanceof TimeoutError, `got ${error}`);
    await client.close();

    const stuck = new Client({
      host: HOST,
      port: listener.addr.port,
      tls: { ca },
      reconnect: false,
    });
    await until(() => open.size > 0, 5000, "the connection");
    await stuck.close(); // would hang if it waited for the handshake
  } finally {
    await listener.close();
    for (const connection of open) connection.close();
    await until(() => open.size === 0, 5000, "raw connections to close");
  }
});

test("tls: a certificate or key the runtime cannot read is a TypeError at once, the same on every runtime", () => {
  // Deno's node:tls reads them only at the first handshake: they are read
  // up front, with node:crypto, everywhere.
  const bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  const badKey =
    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
  const cases: Array<[object, RegExp]> = [
    [
      { cert: bad, key },
      /Invalid tls\.cert: certificate 1 of 1 cannot be read/,
    ],
    [{ cert, key: badKey }, /Invalid tls\.key: it cannot be read/],
    [{ cert: ca, key }, /Invalid tls\.key: it is not the private key/],
    [{ cert, key: "-----BEGIN PRIVATE KEY-----\n" }, /Invalid tls\.key/],
  ];
  for (const [tls, message] of cases) {
    assert.throws(
      () => new Server({ host: HOST, port: 0, tls: tls as never }),
      (error: unknown) => {
        assert.ok(error instanceof TypeError, `got ${error}`);
        assert.match(error.message, message);
        return true;
      },
    );
  }
  assert.throws(
    () => new Client({ port: 1, reconnect: false, tls: { ca: bad } }),
    /Invalid tls\.ca: certificate 1 of 1 cannot be read/,
  );
});

test("tls: invalid options throw a TypeError naming the option", () => {
  const cases: Array<[() => unknown, RegExp]> = [
    [() => new Server({ port: 0, tls: "yes" as never }), /Invalid tls /],
    [() => new Server({ port: 0, tls: { cert, key: "" } }), /tls\.key/],
    [() => new Server({ port: 0, tls: { key } as never }), /tls\.cert/],
    [
      () => new Client({ port: 1, reconnect: false, tls: { ca: "x" } }),
      /tls\.ca/,
    ],
    [
      () => new Client({ port: 1, reconnect: false, tls: { ca: [] } }),
      /tls\.ca/,
    ],
    [
      () =>
        new Client({
          port: 1,
          reconnect: false,
          tls: { ca: [ca, 1] } as never,
        }),
      /tls\.ca\[1\]/,
    ],
    [
      () => new Client({ port: 1, reconnect: false, tls: { serverName: "" } }),
      /tls\.serverName/,
    ],
    [() => new Client({ port: 1, reconnect: false, tls: 1 as never }), /tls/],
    [
      () => new Server({ port: 0, tls: { cert, key, ca: otherCa } }),
      /tls\.ca: a server uses it only with requestCert: true/,
    ],
    [
      () => new Server({ port: 0, tls: { cert, key, requestCert: true } }),
      /requestCert needs tls\.ca/,
    ],
    [
      () =>
        new Server({
          port: 0,
          tls: { cert, key, ca, requestCert: "yes" as never },
        }),
      /tls\.requestCert/,
    ],
    [
      () => new Client({ port: 1, reconnect: false, tls: { cert, key: "" } }),
      /tls\.key/,
    ],
    [
      () => new Client({ port: 1, reconnect: false, tls: { key } }),
      /key without cert/,
    ],
  ];
  for (const [make, message] of cases) {
    assert.throws(make, (error: unknown) => {
      assert.ok(error instanceof TypeError, `got ${error}`);
      assert.match((error as Error).message, message);
      return true;
    });
  }
});

test("tls: stop() drains a TLS connection too: requests in flight and send()s written before the notice all arrive", async () => {
  const server = new Server({ host: HOST, port: 0, tls: { cert, key } });
  const received: number[] = [];
  server.on("data", (socket, { uuid, data }) => {
    received.push(data[1]);
    if (data[0] === 0) {
      setTimeout(() => !socket.closed && socket.send({ uuid, data }), 100);
    }
  });
  await server.start();
  const client = new Client({ host: HOST, port: server.port, tls: { ca } });
  client.on("exception", () => {}); // refused reconnects after the stop
  try {
    await next(client, "connected");
    const replies = Array.from(
      { length: 20 },
      (_, i) => client.request(new Uint8Array([0, i]), { timeout: 5000 }),
    );
    for (let i = 20; i < 40; i++) {
      client.send({ uuid: crypto.randomUUID(), data: new Uint8Array([1, i]) });
    }
    await server.stop();
    assert.equal((await Promise.all(replies)).length, 20);
    assert.deepEqual(received, Array.from({ length: 40 }, (_, i) => i));
  } finally {
    await client.close();
  }
});

test("tls: a handshake that never starts is closed at timeout, an exception alone", async () => {
  await using server = new Server({
    host: HOST,
    port: 0,
    timeout: 0.2,
    tls: { cert, key },
  });
  const exceptions: unknown[] = [];
  const announced: string[] = [];
  server.on("exception", (_socket, error) => exceptions.push(error));
  server.on("connected", () => announced.push("connected"));
  server.on("closed", () => announced.push("closed"));
  await server.start();
  const peer = await RawSocket.connect(server.port); // and says nothing
  const started = performance.now();
  await peer.ended;
  assert.ok(performance.now() - started < 2000);
  await peer.close();
  assert.equal(exceptions.length, 1);
  assert.ok(exceptions[0] instanceof TimeoutError, `got ${exceptions[0]}`);
  assert.match(String(exceptions[0]), /TLS handshake not done within 200 ms/);
  assert.deepEqual(announced, []);
  assert.equal(server.stats().timeouts, 1);
});

test("tls: socket.peerCertificate is undefined without TLS, and when no client certificate is asked for", async () => {
  for (const tls of [undefined, { cert, key }]) {
    await using server = new Server({ host: HOST, port: 0, tls });
    await server.start();
    const connected = next<[ServerSocket]>(server, "connected");
    await using client = new Client({
      host: HOST,
      port: server.port,
      reconnect: false,
      ...(tls ? { tls: { ca } } : {}),
    });
    const [, certificate] = await next<[string, unknown]>(client, "connected");
    const [socket] = await connected;
    assert.equal(socket.peerCertificate, undefined);
    assert.equal(certificate === undefined, tls === undefined);
  }
});

test("tls: stop() closes a connection still in its handshake at once, without an exception", async () => {
  const server = new Server({
    host: HOST,
    port: 0,
    gracePeriod: 5,
    tls: { cert, key },
  });
  const exceptions: unknown[] = [];
  server.on("exception", (_socket, error) => exceptions.push(error));
  await server.start();
  const peer = await RawSocket.connect(server.port); // and says nothing
  await until(() => server.connections.size === 1, 5000, "the connection");
  const started = performance.now();
  await server.stop();
  const took = performance.now() - started;
  assert.ok(took < 1000, `stop() took ${took} ms`);
  await peer.ended;
  await peer.close();
  assert.deepEqual(exceptions, []);
});

test("tls: a peer that connects and leaves without a byte (a port check) is no exception", async () => {
  const { server, exceptions } = await tlsEchoServer();
  await using _ = server;
  for (let i = 0; i < 3; i++) {
    const peer = await RawSocket.connect(server.port);
    await until(() => server.connections.size === 1, 5000, "the connection");
    await peer.close();
    await until(() => server.connections.size === 0, 5000, "its close");
  }
  assert.deepEqual(exceptions, []);
  assert.equal(server.stats().tlsFailures, 0);
  await assertServesTls(server);
});
