import assert from "node:assert/strict";
import { test } from "./_harness.ts";
import {
  assertSameBytes,
  decoder,
  encoder,
  HOST,
  next,
  patterned,
  sleep,
} from "./_helpers.ts";
import {
  BufferFullError,
  Client,
  ClosedError,
  Server,
  type ServerSocket,
  TimeoutError,
} from "../mod.ts";

/** The Node.js package's demo server: `echo` at once, `delayed_echo` later. */
async function demoServer(delayMs = 100): Promise<Server> {
  const server = new Server({ host: HOST, port: 0 });
  server.on("data", (socket, { uuid, data }) => {
    if (decoder.decode(data) === "delayed_echo") {
      setTimeout(() => {
        if (!socket.closed) server.send(socket, { uuid, data });
      }, delayMs);
    } else {
      server.send(socket, { uuid, data });
    }
  });
  await server.start();
  return server;
}

test("demo: echo and delayed_echo come back with their uuid", async () => {
  await using server = await demoServer();
  await using client = new Client({ host: HOST, port: server.port });
  const replies = new Map<string, string>();
  client.on(
    "data",
    ({ uuid, data }) => replies.set(uuid, decoder.decode(data)),
  );
  const echo = crypto.randomUUID();
  const delayed = crypto.randomUUID();
  client.send({ uuid: delayed, data: encoder.encode("delayed_echo") });
  client.send({ uuid: echo, data: encoder.encode("echo") });
  const [first] = await next<[{ uuid: string }]>(client, "data");
  // The delayed answer was asked first but comes second: correlation is by uuid.
  assert.equal(first.uuid, echo);
  await next(client, "data");
  assert.deepEqual(
    Object.fromEntries(replies),
    { [echo]: "echo", [delayed]: "delayed_echo" },
  );
});

test("events: both sides see them in order", async () => {
  const seen: string[] = [];
  const server = new Server({ host: HOST, port: 0 });
  server.on("started", () => seen.push("server started"));
  server.on("connected", () => seen.push("server connected"));
  server.on("data", (socket, message) => {
    seen.push("server data");
    socket.send(message);
  });
  server.on("closed", () => seen.push("server closed"));
  server.on("stopped", () => seen.push("server stopped"));
  await server.start();
  const client = new Client({
    host: HOST,
    port: server.port,
    reconnect: false,
  });
  client.on("connected", () => seen.push("client connected"));
  client.on("data", () => seen.push("client data"));
  client.on("closed", () => seen.push("client closed"));
  await Promise.all([next(client, "connected"), next(server, "connected")]);
  client.send({ uuid: crypto.randomUUID(), data: encoder.encode("x") });
  await next(client, "data");
  const serverClosed = next(server, "closed");
  await client.close();
  await serverClosed;
  await server.stop();
  // Each side's events come in order; across sides, only causality is fixed.
  const server_ = seen.filter((event) => event.startsWith("server"));
  const client_ = seen.filter((event) => event.startsWith("client"));
  assert.deepEqual(server_, [
    "server started",
    "server connected",
    "server data",
    "server closed",
    "server stopped",
  ]);
  assert.deepEqual(client_, [
    "client connected",
    "client data",
    "client closed",
  ]);
  assert.ok(seen.indexOf("server data") < seen.indexOf("client data"));
  assert.ok(seen.indexOf("client closed") < seen.indexOf("server closed"));
});

test("events: addEventListener gets a CustomEvent with named detail", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  server.addEventListener("data", (event) => {
    const { socket, uuid, data } = event.detail;
    socket.send({ uuid, data });
  });
  await server.start();
  await using client = new Client({ host: HOST, port: server.port });
  const received = new Promise<CustomEvent>((resolve) =>
    client.addEventListener("data", resolve, { once: true })
  );
  const uuid = crypto.randomUUID();
  client.send({ uuid, data: encoder.encode("detail") });
  const event = await received;
  assert.equal(event.detail.uuid, uuid);
  assert.equal(decoder.decode(event.detail.data), "detail");
});

test("events: a throwing listener is reported as exception, the server goes on", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  let calls = 0;
  server.on("data", (socket, message) => {
    calls++;
    if (calls === 1) throw new Error("listener bug");
    socket.send(message);
  });
  server.addEventListener("data", () => {
    if (calls === 1) return Promise.reject(new Error("async listener bug"));
  });
  const exceptions: unknown[] = [];
  server.on("exception", (socket, error) => exceptions.push([socket, error]));
  await server.start();
  await using client = new Client({ host: HOST, port: server.port });
  client.send({ uuid: crypto.randomUUID(), data: encoder.encode("1") });
  const reply = await client.request(encoder.encode("2"), { timeout: 2000 });
  assert.equal(decoder.decode(reply), "2");
  assert.equal(exceptions.length, 2);
  const messages = exceptions.map((e) =>
    ((e as unknown[])[1] as Error).message
  );
  assert.deepEqual(messages.sort(), ["async listener bug", "listener bug"]);
  for (const [socket] of exceptions as unknown[][]) assert.ok(socket);
});

test("request: resolves with the reply, which is not also emitted as data", async () => {
  await using server = await demoServer(50);
  await using client = new Client({ host: HOST, port: server.port });
  let dataEvents = 0;
  client.on("data", () => dataEvents++);
  const [a, b] = await Promise.all([
    client.request(encoder.encode("delayed_echo"), { timeout: 2000 }),
    client.request(encoder.encode("echo"), { timeout: 2000 }),
  ]);
  assert.equal(decoder.decode(a), "delayed_echo");
  assert.equal(decoder.decode(b), "echo");
  assert.equal(dataEvents, 0);
});

test("request: times out, aborts, and rejects on close with typed errors", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  server.on("data", () => {}); // never answers
  await server.start();
  const client = new Client({ host: HOST, port: server.port });
  await next(client, "connected");

  const started = performance.now();
  await assert.rejects(
    client.request(encoder.encode("x"), { timeout: 50 }),
    (error) => error instanceof TimeoutError && error.timeout === 50,
  );
  assert.ok(performance.now() - started >= 45);

  const controller = new AbortController();
  const aborted = client.request(encoder.encode("x"), {
    signal: controller.signal,
  });
  controller.abort(new Error("caller gave up"));
  await assert.rejects(aborted, /caller gave up/);
  await assert.rejects(
    client.request(encoder.encode("x"), { signal: AbortSignal.abort() }),
    (error) => (error as Error).name === "AbortError",
  );

  const pending = assert.rejects(
    client.request(encoder.encode("x"), { timeout: 5000 }),
    ClosedError,
  );
  await client.close();
  await pending;
  await assert.rejects(client.request(encoder.encode("x")), ClosedError);
});

test("request: a reply from the server's side arriving after timeout goes to data", async () => {
  let answer: (() => void) | undefined;
  await using server = new Server({ host: HOST, port: 0 });
  server.on("data", (socket, message) => answer = () => socket.send(message));
  await server.start();
  await using client = new Client({ host: HOST, port: server.port });
  // Connected first: a request that times out while still queued is never
  // sent at all.
  await next(client, "connected");
  await assert.rejects(
    client.request(encoder.encode("late"), { timeout: 30 }),
    TimeoutError,
  );
  const late = next<[{ data: Uint8Array }]>(client, "data");
  answer!();
  assert.equal(decoder.decode((await late)[0].data), "late");
});

test("bad arguments throw before anything is written", async () => {
  let received = 0;
  await using server = new Server({ host: HOST, port: 0 });
  server.on("data", () => received++);
  await server.start();
  await using client = new Client({ host: HOST, port: server.port });
  await next(client, "connected");
  const data = encoder.encode("x");
  const badUuids = ["", "short", crypto.randomUUID() + "x", "é".repeat(36), 7];
  for (const uuid of badUuids) {
    assert.throws(
      () => client.send({ uuid: uuid as string, data }),
      TypeError,
      `uuid ${uuid}`,
    );
  }
  assert.throws(
    () =>
      client.send({
        uuid: crypto.randomUUID(),
        data: "text" as unknown as Uint8Array,
      }),
    TypeError,
  );
  assert.throws(() => client.send(null as never), TypeError);
  await assert.rejects(client.request("x" as never), TypeError);
  // A good message afterwards arrives alone, so nothing bad was written.
  const reply = next(server, "data");
  client.send({ uuid: crypto.randomUUID(), data });
  await reply;
  await sleep(20);
  assert.equal(received, 1);
  assert.equal(client.bufferedAmount, 0);
});

test("a bad uuid in the middle of a batch writes nothing of it", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  server.on("data", (socket, { uuid, data }) => {
    socket.send({ uuid, data }); // queued: the batch now holds one frame
    for (const bad of ["é".repeat(36), "\u0100".repeat(36)]) {
      assert.throws(() => socket.send({ uuid: bad, data }), TypeError);
    }
    socket.send({ uuid, data: encoder.encode("second") });
  });
  await server.start();
  await using client = new Client({ host: HOST, port: server.port });
  const replies: string[] = [];
  client.on("data", ({ data }) => replies.push(decoder.decode(data)));
  await next(client, "connected");
  client.send({ uuid: crypto.randomUUID(), data: encoder.encode("first") });
  while (replies.length < 2) await sleep(5);
  await sleep(20);
  assert.deepEqual(replies, ["first", "second"]);
});

test("bad options throw TypeError or RangeError naming the option", () => {
  const cases: Array<[Record<string, unknown>, string, typeof Error]> = [
    [{}, "port", TypeError],
    [{ port: 70000 }, "port", RangeError],
    [{ port: 1.5 }, "port", TypeError],
    [{ port: 1, host: "" }, "host", TypeError],
    [{ port: 1, heartbeat: 0 }, "heartbeat", RangeError],
    [{ port: 1, heartbeat: "20" }, "heartbeat", TypeError],
    [{ port: 1, timeout: -1 }, "timeout", RangeError],
    [{ port: 1, maxFrameSize: 0 }, "maxFrameSize", RangeError],
    [{ port: 1, maxBufferedBytes: 1.5 }, "maxBufferedBytes", RangeError],
    [{ port: 1, protocol: 4 }, "protocol", RangeError],
  ];
  for (const [options, name, type] of cases) {
    for (
      const make of [(o: never) => new Server(o), (o: never) => new Client(o)]
    ) {
      assert.throws(
        () => make(options as never),
        (error) =>
          error instanceof type && (error as Error).message.includes(name),
        JSON.stringify(options),
      );
    }
  }
  assert.throws(
    () => new Server({ port: 0, maxConnections: 0 }),
    /maxConnections/,
  );
  assert.throws(
    () => new Client({ port: 1, reconnect: "yes" as never }),
    /reconnect/,
  );
  assert.throws(() => new Server(null as never), TypeError);
});

test("server: start rejects when the port is taken, stop is idempotent", async () => {
  await using first = new Server({ host: HOST, port: 0 });
  await first.start();
  const second = new Server({ host: HOST, port: first.port });
  await assert.rejects(second.start(), (error) =>
    error instanceof Error &&
    error.message.includes(`${HOST}:${first.port}`));
  await second.stop();
  await assert.rejects(first.start(), /already started/);
  await Promise.all([first.stop(), first.stop()]);
  assert.equal(first.listening, false);
});

test("send after close is refused with ClosedError", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  let serverSocket: ServerSocket | undefined;
  server.on("connected", (socket) => serverSocket = socket);
  await server.start();
  const client = new Client({ host: HOST, port: server.port });
  await next(server, "connected");
  const closed = next(server, "closed");
  await client.close();
  assert.throws(
    () => client.send({ uuid: crypto.randomUUID(), data: new Uint8Array() }),
    ClosedError,
  );
  await closed;
  assert.throws(
    () =>
      serverSocket!.send({ uuid: crypto.randomUUID(), data: new Uint8Array() }),
    ClosedError,
  );
});

test("client: the disconnected queue is bounded and refuses with BufferFullError", async () => {
  const client = new Client({
    host: HOST,
    port: 1, // nothing listens; the client keeps queueing
    reconnect: false,
    maxQueuedMessages: 3,
    maxBufferedBytes: 1000,
  });
  client.on("exception", () => {});
  const uuid = crypto.randomUUID();
  for (let i = 0; i < 3; i++) client.send({ uuid, data: new Uint8Array(10) });
  assert.throws(
    () => client.send({ uuid, data: new Uint8Array(10) }),
    (error) => error instanceof BufferFullError && error.limit === 3,
  );
  assert.throws(
    () => client.send({ uuid, data: new Uint8Array(10) }),
    (error) =>
      error instanceof BufferFullError && error.unit === "messages" &&
      error.option === "maxQueuedMessages" && error.buffered === 3 &&
      error.frameSize === 55,
  );
  assert.equal(client.bufferedAmount, 3 * 55);
  await client.close();

  const bytes = new Client({
    host: HOST,
    port: 1,
    reconnect: false,
    maxBufferedBytes: 200,
  });
  bytes.on("exception", () => {});
  bytes.send({ uuid, data: new Uint8Array(100) });
  assert.throws(
    () => bytes.send({ uuid, data: new Uint8Array(100) }),
    (error) => error instanceof BufferFullError && error.limit === 200,
  );
  assert.throws(
    () => bytes.send({ uuid, data: new Uint8Array(100) }),
    (error) =>
      error instanceof BufferFullError && error.unit === "bytes" &&
      error.option === "maxBufferedBytes" && error.buffered === 145,
  );
  await bytes.close();
});

test("load: 100 clients x 100 requests all answered with the right payload", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  server.on("data", (socket, message) => socket.send(message));
  await server.start();
  const clients = Array.from(
    { length: 100 },
    () => new Client({ host: HOST, port: server.port }),
  );
  try {
    let answered = 0;
    await Promise.all(clients.map(async (client, c) => {
      const replies = await Promise.all(
        Array.from(
          { length: 100 },
          (_, r) =>
            client.request(encoder.encode(`${c}:${r}`), { timeout: 15000 }),
        ),
      );
      replies.forEach((reply, r) => {
        assert.equal(decoder.decode(reply), `${c}:${r}`);
        answered++;
      });
    }));
    assert.equal(answered, 10_000);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
});

test("large payloads, pipelined with small ones, come back byte for byte", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  server.on("data", (socket, message) => socket.send(message));
  await server.start();
  await using client = new Client({ host: HOST, port: server.port });
  // Sizes around the decoder's 64 KiB own-memory threshold and the 256 KiB
  // write buffer, each byte set by its position and its payload's index.
  const sizes = [3 * 1024 * 1024 + 5, 17, 65535, 65536, 256 * 1024 + 45, 0];
  const payloads = sizes.map((size, n) => patterned(size, n));
  const replies = await Promise.all(
    payloads.map((payload) => client.request(payload, { timeout: 15000 })),
  );
  replies.forEach((reply, n) =>
    assertSameBytes(reply, payloads[n], `payload ${n}`)
  );
});

test("send copies what it has not written: payloads reused at once arrive as sent", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  server.on("data", (socket, message) => {
    socket.send(message);
    message.data.fill(0); // the server reuses its payload at once
  });
  await server.start();
  await using client = new Client({ host: HOST, port: server.port });
  await next(client, "connected");
  // Large enough for the runtime not to take them whole in one write, and
  // back to back, so some go out behind the rest of another.
  const sizes = [4 * 1024 * 1024 + 3, 300 * 1024, 2 * 1024 * 1024, 17];
  const replies = sizes.map((size, n) => {
    const payload = patterned(size, n);
    const reply = client.request(payload, { timeout: 15000 });
    payload.fill(0xff); // and so does the client
    return reply;
  });
  const received = await Promise.all(replies);
  received.forEach((reply, n) =>
    assertSameBytes(reply, patterned(sizes[n], n), `payload ${n}`)
  );
});

test("send while disconnected copies the payload: reused at once, it still arrives as sent", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  const received: Uint8Array[] = [];
  server.on("data", (socket, message) => {
    received.push(message.data);
    socket.send(message);
  });
  await server.start();
  await using client = new Client({ host: HOST, port: server.port });
  // Not connected yet: all of these are queued, and the caller reuses its
  // buffers at once. The small ones span several of the queue's slabs.
  const large = patterned(70_000, 7);
  client.send({ uuid: crypto.randomUUID(), data: large });
  large.fill(0xff);
  const small = new Uint8Array(33);
  const smallCount = 3000;
  for (let n = 0; n < smallCount; n++) {
    small.set(patterned(33, n));
    client.send({ uuid: crypto.randomUUID(), data: small });
  }
  small.fill(0);
  const last = patterned(17, 8);
  const reply = client.request(last);
  last.fill(0);
  assertSameBytes(await reply, patterned(17, 8), "request");
  assert.equal(received.length, smallCount + 2);
  assertSameBytes(received[0], patterned(70_000, 7), "large payload");
  for (let n = 0; n < smallCount; n++) {
    assertSameBytes(received[n + 1], patterned(33, n), `small payload ${n}`);
  }
});
