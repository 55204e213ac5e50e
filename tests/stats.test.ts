import assert from "node:assert/strict";
import { test } from "./_harness.ts";
import { freePort, HOST, next, RawSocket, until } from "./_helpers.ts";
import { BufferFullError, Client, Server, TimeoutError } from "../mod.ts";

test("stats: messages and bytes each way, per connection and per server", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  server.on("data", (socket, message) => socket.send(message));
  await server.start();
  const client = new Client({ host: HOST, port: server.port });
  for (let i = 0; i < 10; i++) await client.request(new Uint8Array(100));
  for (let i = 0; i < 5; i++) {
    client.send({ uuid: crypto.randomUUID(), data: new Uint8Array(20) });
  }
  await until(() => client.stats().messagesIn === 15, 5000, "5 echoes");
  // Control messages (PING frames) may go each way too: counted apart.
  const bytes = 10 * (45 + 100) + 5 * (45 + 20);
  const [socket] = server.connections;
  const perSocket = socket.stats();
  assert.equal(perSocket.messagesIn, 15);
  assert.equal(perSocket.bytesIn, bytes + 45 * perSocket.pingsIn);
  assert.equal(perSocket.messagesOut, 15);
  assert.equal(perSocket.bytesOut, bytes + 45 * perSocket.pingsOut);
  assert.ok(perSocket.openedAt <= performance.now());
  const served = server.stats();
  assert.equal(served.connectionsOpen, 1);
  assert.equal(served.connectionsTotal, 1);
  assert.equal(served.messagesIn, 15);
  assert.equal(served.bytesOut, bytes + 45 * served.pingsOut);
  const sent = client.stats();
  assert.equal(sent.connectionsOpen, 1);
  assert.equal(sent.connectionsTotal, 1);
  assert.equal(sent.messagesOut, 15);
  assert.equal(sent.bytesOut, bytes + 45 * sent.pingsOut);
  assert.equal(sent.bytesIn, bytes + 45 * sent.pingsIn);
  assert.equal(sent.pendingRequests, 0);
  assert.equal(sent.servers.length, 1);
  assert.equal(sent.servers[0].connected, true);
  assert.equal(sent.servers[0].messagesIn, 15);
  await client.close();
  await until(() => server.stats().connectionsOpen === 0, 5000, "close");
  // A closed connection's traffic stays in the sums.
  const after = server.stats();
  assert.equal(after.messagesIn, 15);
  assert.equal(after.bytesIn, bytes + 45 * after.pingsIn);
  assert.equal(client.stats().messagesIn, 15);
  assert.equal(client.stats().connectionsOpen, 0);
});

test("stats: PINGs are counted apart from messages", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  await server.start();
  await using client = new Client({
    host: HOST,
    port: server.port,
    heartbeat: 0.03,
    timeout: 5,
  });
  await until(() => client.stats().pingsIn >= 2, 5000, "two PING echoes");
  const sent = client.stats();
  assert.ok(sent.pingsOut >= 2);
  assert.equal(sent.messagesOut, 0);
  assert.equal(sent.messagesIn, 0);
  assert.equal(sent.bytesIn, sent.pingsIn * 45);
  const served = server.stats();
  assert.ok(served.pingsIn >= 2 && served.pingsOut >= 2);
  assert.equal(served.messagesIn, 0);
});

test("stats: refusals, timeouts and protocol errors", async () => {
  await using server = new Server({
    host: HOST,
    port: 0,
    maxConnections: 1,
    timeout: 0.2,
    heartbeat: 0.1,
  });
  const exceptions: unknown[] = [];
  server.on("exception", (_socket, error) => exceptions.push(error));
  await server.start();
  // A silent peer, then one past maxConnections.
  const silent = await RawSocket.connect(server.port);
  await until(() => server.connections.size === 1, 5000, "first connection");
  const extra = await RawSocket.connect(server.port);
  await extra.ended;
  await silent.ended;
  assert.equal(server.stats().connectionsRefused, 1);
  assert.equal(server.stats().timeouts, 1);
  // A peer that sends bytes that are not a frame.
  const garbage = await RawSocket.connect(server.port);
  await garbage.write(new Uint8Array(45).fill(0x7f));
  await garbage.ended;
  const stats = server.stats();
  assert.equal(stats.protocolErrors, 1);
  assert.equal(stats.connectionsTotal, 3);
  assert.equal(stats.connectionsOpen, 0);
  assert.equal(exceptions.length, 3);
});

test("stats: a client's queue, refusals, request timeouts, connect failures and reconnects", async () => {
  const port = await freePort();
  const client = new Client({
    host: HOST,
    port,
    maxQueuedMessages: 2,
    reconnect: () => 10,
  });
  client.on("exception", () => {});
  client.send({ uuid: crypto.randomUUID(), data: new Uint8Array(5) });
  const late = client.request(new Uint8Array(7), { timeout: 20 });
  assert.throws(
    () => client.send({ uuid: crypto.randomUUID(), data: new Uint8Array(1) }),
    BufferFullError,
  );
  let stats = client.stats();
  assert.equal(stats.queuedMessages, 2);
  assert.equal(stats.queuedBytes, 45 + 5 + 45 + 7);
  assert.equal(stats.pendingRequests, 1);
  assert.equal(stats.bufferFull, 1);
  await assert.rejects(late, TimeoutError);
  await until(() => client.stats().reconnects >= 2, 5000, "two reconnects");
  await next(client, "exception");
  await client.close();
  stats = client.stats();
  assert.equal(stats.requestTimeouts, 1);
  assert.equal(stats.pendingRequests, 0);
  assert.ok(stats.connectFailures >= 3, `${stats.connectFailures} failures`);
  assert.equal(stats.connectionsTotal, 0);
  assert.equal(stats.servers[0].connected, false);
});

test("stats: a client over several servers has an entry per server", async () => {
  const servers = await Promise.all([0, 1].map(async () => {
    const server = new Server({ host: HOST, port: 0 });
    server.on("data", (socket, message) => socket.send(message));
    await server.start();
    return server;
  }));
  const down = await freePort();
  const client = new Client({
    servers: [...servers.map((s) => `${HOST}:${s.port}`), `${HOST}:${down}`],
    shuffle: false,
    balance: "round-robin",
    reconnect: false,
  });
  client.on("exception", () => {});
  try {
    // Connected: open, and the server answered the hello (only then do
    // messages go to it).
    await until(
      () => client.stats().servers.filter((s) => s.connected).length === 2,
      5000,
      "two connections",
    );
    for (let i = 0; i < 10; i++) await client.request(new Uint8Array(8));
    const stats = client.stats();
    assert.deepEqual(
      stats.servers.map((s) => [s.port, s.connected, s.connectionsOpen]),
      [
        [servers[0].port, true, 1],
        [servers[1].port, true, 1],
        [down, false, 0],
      ],
    );
    assert.equal(stats.servers[2].connectFailures, 1);
    assert.equal(stats.servers[2].server, `${HOST}:${down}`);
    // Round robin: five each, and each server saw its own.
    assert.deepEqual(stats.servers.map((s) => s.messagesOut), [5, 5, 0]);
    assert.deepEqual(
      servers.map((server) => server.stats().messagesIn),
      [5, 5],
    );
    assert.equal(stats.messagesOut, 10);
    assert.equal(stats.messagesIn, 10);
    assert.equal(stats.connectionsOpen, 2);
    assert.equal(stats.connectFailures, 1);
  } finally {
    await client.close();
    await Promise.all(servers.map((server) => server.stop()));
  }
});
