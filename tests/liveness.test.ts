import assert from "node:assert/strict";
import { test } from "./_harness.ts";
import { encoder, HOST, next, RawSocket, sleep, until } from "./_helpers.ts";
import {
  Client,
  ConnectionLostError,
  decodeFrame,
  encodeFrame,
  Server,
  SIGN_DATA,
  SIGN_PING,
  TimeoutError,
} from "../mod.ts";

test("heartbeat keeps an idle connection alive well past timeout", async () => {
  await using server = new Server({
    host: HOST,
    port: 0,
    heartbeat: 0.05,
    timeout: 0.2,
  });
  const serverExceptions: unknown[] = [];
  server.on("exception", (_socket, error) => serverExceptions.push(error));
  await server.start();
  await using client = new Client({
    host: HOST,
    port: server.port,
    heartbeat: 0.05,
    timeout: 0.2,
  });
  let closes = 0;
  client.on("closed", () => closes++);
  await next(client, "connected");
  await sleep(800); // four timeouts long, and no application traffic at all
  assert.equal(closes, 0);
  assert.equal(client.connected, true);
  assert.equal(server.connections.size, 1);
  assert.deepEqual(serverExceptions, []);
  const reply = await client.request(encoder.encode("still here"), {
    timeout: 1000,
  }).catch((e) => e);
  // Nobody answers requests on this server: a timeout proves the request
  // went out on a live connection rather than failing as closed.
  assert.ok(reply instanceof TimeoutError);
});

test("server echoes every PING unchanged and pings a quiet client", async () => {
  await using server = new Server({ host: HOST, port: 0, heartbeat: 0.05 });
  await server.start();
  const raw = await RawSocket.connect(server.port);
  try {
    const ping = encodeFrame({
      sign: SIGN_PING,
      uuid: crypto.randomUUID(),
      payload: encoder.encode("any payload comes back"),
    });
    await raw.write(ping);
    await until(() => raw.receivedBytes >= ping.length, 2000, "the echo");
    const first = decodeFrame(raw.received[0].subarray(0, ping.length));
    assert.deepEqual(encodeFrame(first), ping);
    // Then, with nothing sent by the server for a heartbeat, a PING of its own.
    const before = raw.receivedBytes;
    await until(() => raw.receivedBytes >= before + 45, 2000, "a server PING");
  } finally {
    await raw.close();
  }
});

test("client never answers a PING from the server", async () => {
  const pingsReceived: number[] = [];
  // A server that pings every 20 ms and would see any answer as data.
  await using server = new Server({ host: HOST, port: 0, heartbeat: 0.02 });
  server.on("data", () => pingsReceived.push(1));
  await server.start();
  await using client = new Client({ host: HOST, port: server.port });
  await next(client, "connected");
  await sleep(150);
  assert.deepEqual(pingsReceived, []);
});

test("a silent peer is dropped after timeout by the server", async () => {
  await using server = new Server({ host: HOST, port: 0, timeout: 0.15 });
  const exceptions: unknown[] = [];
  server.on("exception", (_socket, error) => exceptions.push(error));
  await server.start();
  const raw = await RawSocket.connect(server.port);
  const started = performance.now();
  await next(server, "closed", 3000);
  const took = performance.now() - started;
  assert.ok(took >= 140, `closed after ${took} ms`);
  assert.ok(exceptions[0] instanceof TimeoutError);
  await raw.ended;
  await raw.close();
});

test("a silent server is dropped after timeout by the client", async () => {
  // A raw listener that accepts and never writes a byte.
  await using silent = new Server({ host: HOST, port: 0, heartbeat: Infinity });
  await silent.start();
  await using client = new Client({
    host: HOST,
    port: silent.port,
    timeout: 0.15,
    heartbeat: Infinity,
    reconnect: false,
  });
  const exceptions: unknown[] = [];
  client.on("exception", (error) => exceptions.push(error));
  await next(client, "connected");
  const started = performance.now();
  await next(client, "closed", 3000);
  assert.ok(performance.now() - started >= 140);
  assert.ok(exceptions[0] instanceof TimeoutError);
});

test("client reconnects after a server restart and delivers what was sent meanwhile, in order", async () => {
  const received: string[] = [];
  const first = new Server({ host: HOST, port: 0 });
  await first.start();
  const port = first.port;
  await using client = new Client({ host: HOST, port });
  client.on("exception", () => {}); // refused connects while the server is down
  await next(client, "connected");
  const closed = next(client, "closed");
  await first.stop();
  await closed;
  for (let i = 0; i < 20; i++) {
    client.send({ uuid: crypto.randomUUID(), data: encoder.encode(`m${i}`) });
  }
  assert.ok(client.bufferedAmount > 0);
  await using second = new Server({ host: HOST, port });
  second.on(
    "data",
    (_socket, { data }) => received.push(new TextDecoder().decode(data)),
  );
  await second.start();
  await next(client, "connected", 8000);
  await until(() => received.length === 20, 3000, "20 queued messages");
  assert.deepEqual(received, Array.from({ length: 20 }, (_, i) => `m${i}`));
  assert.equal(client.bufferedAmount, 0);
});

test("a request in flight when the connection drops rejects at once, not at its timeout", async () => {
  // stop() drains: it waits for the reply up to gracePeriod, then cuts.
  const server = new Server({ host: HOST, port: 0, gracePeriod: 0.2 });
  server.on("data", () => {}); // never answers
  await server.start();
  await using client = new Client({
    host: HOST,
    port: server.port,
    reconnect: false,
  });
  await next(client, "connected");
  const started = performance.now();
  const request = client.request(encoder.encode("x"), { timeout: 10_000 });
  // Handled from the start: it may reject while the server is stopping.
  const rejected = assert.rejects(
    request,
    // Written (handed to the system) before the server went: it may have run.
    (error) => error instanceof ConnectionLostError && error.written,
  );
  await sleep(20);
  await server.stop();
  await rejected;
  assert.ok(performance.now() - started < 5000);
});

test("reconnect: false stays closed; reconnect delays follow the function given", async () => {
  const delays: number[] = [];
  const client = new Client({
    host: HOST,
    port: 1,
    reconnect: (attempt) => {
      delays.push(attempt);
      return 10;
    },
  });
  const failures: unknown[] = [];
  client.on("exception", (error) => failures.push(error));
  await until(() => delays.length >= 3, 3000, "three attempts");
  await client.close();
  assert.deepEqual(delays.slice(0, 3), [1, 2, 3]);
  assert.ok(failures.length >= 3);

  const once = new Client({ host: HOST, port: 1, reconnect: false });
  const errors: unknown[] = [];
  once.on("exception", (error) => errors.push(error));
  await until(() => errors.length === 1, 3000, "one failure");
  await sleep(300);
  assert.equal(errors.length, 1);
  await once.close();
});

test("a reconnect function that returns NaN or throws falls back to the default delay", async () => {
  for (
    const reconnect of [() => NaN, () => -5, () => {
      throw new Error("bad backoff");
    }]
  ) {
    let attempts = 0;
    const client = new Client({
      host: HOST,
      port: 1,
      reconnect: () => {
        attempts++;
        return reconnect();
      },
    });
    const errors: unknown[] = [];
    client.on("exception", (error) => errors.push(error));
    // The default waits 200 ms before the first retry; NaN read as 0 ms
    // would have made dozens of attempts by now.
    await sleep(150);
    await client.close();
    assert.ok(attempts <= 2, `${attempts} attempts in 150 ms`);
    if (attempts > 0 && String(reconnect).includes("throw")) {
      assert.ok(errors.some((e) => (e as Error).message === "bad backoff"));
    }
  }
});

test("stop() and close() leave no timer or socket behind with traffic in flight", async () => {
  const server = new Server({
    host: HOST,
    port: 0,
    heartbeat: 0.01,
    timeout: 5,
  });
  server.on("data", (socket, message) => socket.send(message));
  await server.start();
  const clients = Array.from(
    { length: 5 },
    () => new Client({ host: HOST, port: server.port, heartbeat: 0.01 }),
  );
  await Promise.all(clients.map((client) => next(client, "connected")));
  for (const client of clients) {
    for (let i = 0; i < 50; i++) {
      client.send({ uuid: crypto.randomUUID(), data: new Uint8Array(100) });
    }
    client.request(new Uint8Array(1), { timeout: 60_000 }).catch(() => {});
  }
  await server.stop();
  await Promise.all(clients.map((client) => client.close()));
  // Deno's op and resource sanitizers fail this test if anything is left.
  assert.equal(server.connections.size, 0);
});

test("a frame from the client's side of the wire: the server decodes a DATA frame written raw", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  await server.start();
  const raw = await RawSocket.connect(server.port);
  try {
    const uuid = crypto.randomUUID();
    const data = next<[unknown, { uuid: string; data: Uint8Array }]>(
      server,
      "data",
    );
    const bytes = encodeFrame({
      sign: SIGN_DATA,
      uuid,
      payload: encoder.encode("hi"),
    });
    for (const byte of bytes) await raw.write(Uint8Array.of(byte));
    const [, message] = await data;
    assert.equal(message.uuid, uuid);
    assert.equal(new TextDecoder().decode(message.data), "hi");
  } finally {
    await raw.close();
  }
});
