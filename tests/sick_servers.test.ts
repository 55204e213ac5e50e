// Instances that fail, as a service team meets them: a hung server beside a
// healthy one, a message that kills every server it reaches, a server that
// sends every connection away, a slower server, a server that fails every
// request, and failures that must say why. Each costs no request it need
// not, and retries stay within their budget.

import assert from "node:assert/strict";
import { test } from "./_harness.ts";
import { freePort, HOST, sleep, until } from "./_helpers.ts";
import { silentServer } from "./_silent.ts";
import {
  Client,
  ConnectionLostError,
  NetworkError,
  Server,
  TimeoutError,
} from "../mod.ts";

/** An echo server on 127.0.0.1 that answers after `delay()` ms. */
async function echoServer(delay: () => number = () => 0) {
  const server = new Server({ host: HOST, port: 0 });
  let requests = 0;
  server.on("data", (socket, message) => {
    requests++;
    const ms = delay();
    if (ms === 0) socket.send(message);
    else setTimeout(() => !socket.closed && socket.send(message), ms);
  });
  server.on("exception", () => {});
  await server.start();
  return {
    server,
    name: `${HOST}:${server.port}`,
    get requests() {
      return requests;
    },
  };
}

/** `loops` request loops for `ms`; every failure is kept. */
async function load(
  client: Client,
  { loops = 4, ms = 2000, timeout = 3000 } = {},
) {
  const failures: unknown[] = [];
  let answered = 0;
  const until = performance.now() + ms;
  await Promise.all(Array.from({ length: loops }, async () => {
    while (performance.now() < until) {
      try {
        await client.request(new Uint8Array(8), { timeout });
        answered++;
      } catch (error) {
        failures.push(error);
      }
    }
  }));
  return { failures, answered };
}

test("a hung server (accepts, never reads) beside a healthy one costs no request: ready means answered", async () => {
  const healthy = await echoServer();
  const hung = await silentServer();
  const hungName = `${HOST}:${hung.port}`;
  const client = new Client({
    servers: [healthy.name, hungName],
    connectTimeout: 0.5, // and so the hello's answer is awaited 0.5 s
  });
  const errors: Array<[unknown, string | undefined]> = [];
  const connected: string[] = [];
  client.on("exception", (error, server) => errors.push([error, server]));
  client.on("connected", (server) => connected.push(server));
  try {
    const { failures, answered } = await load(client, { ms: 2000 });
    assert.deepEqual(failures, []);
    assert.ok(answered > 50, `${answered} answered`);
    assert.ok(!connected.includes(hungName), "the hung server is connected");
    const hungErrors = errors.filter(([, server]) => server === hungName);
    assert.ok(hungErrors.length >= 1);
    const [first] = hungErrors[0];
    assert.ok(first instanceof TimeoutError, String(first));
    assert.match(first.message, /answered nothing within \d+ ms/);
    assert.match(first.message, /protocol: 2/);
    // Only hellos reached it, one per attempt, and the attempts back off.
    const attempts = hung.peers.length;
    assert.ok(attempts >= 1 && attempts <= 3, `${attempts} attempts`);
    assert.equal(
      client.stats().servers.find((s) => s.server === hungName)
        ?.connectFailures,
      hungErrors.length,
    );
  } finally {
    await client.close();
    await healthy.server.stop();
    await hung.close();
  }
});

test("a server that sends every connection away is reconnected to with a growing backoff, not every 200 ms", async () => {
  // Every connection is told to go away 20 ms after it opens.
  const server = new Server({
    host: HOST,
    port: 0,
    maxConnectionAge: 0.02,
  });
  server.on("data", (socket, message) => socket.send(message));
  await server.start();
  let connections = 0;
  server.on("connected", () => connections++);
  const client = new Client({ host: HOST, port: server.port });
  client.on("exception", () => {});
  try {
    await sleep(3000);
    // 200 ms each time would be about 14; doubling from 200 ms: 5 or 6.
    assert.ok(connections <= 7, `${connections} connections in 3 s`);
    assert.ok(connections >= 3, `${connections} connections in 3 s`);
    // And it is still served.
    const reply = await client.request(new Uint8Array([1]), { timeout: 8000 });
    assert.deepEqual(Array.from(reply), [1]);
  } finally {
    await client.close();
    await server.stop();
  }
});

/**
 * Servers that drop the connection as soon as they read a DATA frame, as a
 * process that crashes on that message would; `runs` counts the frames read.
 */
async function killers(count: number) {
  const runs = { count: 0 };
  const servers = await Promise.all(
    Array.from({ length: count }, async () => {
      const server = new Server({ host: HOST, port: 0 });
      server.on("data", (socket) => {
        runs.count++;
        socket.close();
      });
      server.on("exception", () => {});
      await server.start();
      return server;
    }),
  );
  return {
    runs,
    names: servers.map((server) => `${HOST}:${server.port}`),
    stop: () => Promise.all(servers.map((server) => server.stop())),
  };
}

test("with reconnect off, a request that nothing can carry rejects at once with the connection's error", async () => {
  const port = await freePort();
  const client = new Client({ host: HOST, port, reconnect: false });
  client.on("exception", () => {});
  try {
    const started = performance.now();
    // Made while the one attempt is under way: it waits for it, then fails.
    const error = await client.request(new Uint8Array(1), { timeout: 10_000 })
      .then(() => assert.fail("answered"), (error) => error);
    assert.ok(error instanceof NetworkError, String(error));
    assert.equal(error.code, "ECONNREFUSED");
    const ms = performance.now() - started;
    assert.ok(ms < 5000, `rejected after ${ms} ms`);
    // Made after: at once, the same reason.
    await assert.rejects(
      client.request(new Uint8Array(1), { timeout: 10_000 }),
      (later: unknown) =>
        later instanceof NetworkError && later.code === "ECONNREFUSED",
    );
    // A server added later takes requests again.
    const server = new Server({ host: HOST, port: 0 });
    server.on("data", (socket, message) => socket.send(message));
    await server.start();
    try {
      client.setServers([`${HOST}:${server.port}`]);
      const reply = await client.request(new Uint8Array([5]), {
        timeout: 5000,
      });
      assert.deepEqual(Array.from(reply), [5]);
    } finally {
      await client.close();
      await server.stop();
    }
  } finally {
    await client.close();
  }
});

test("a queued request that times out says why nothing took it: its cause is the last connection error", async () => {
  const port = await freePort();
  const client = new Client({ host: HOST, port });
  client.on("exception", () => {});
  try {
    const error = await client.request(new Uint8Array(1), { timeout: 600 })
      .then(() => assert.fail("answered"), (error) => error);
    assert.ok(error instanceof TimeoutError, String(error));
    assert.ok(error.cause instanceof NetworkError, String(error.cause));
    assert.equal((error.cause as NetworkError).code, "ECONNREFUSED");
  } finally {
    await client.close();
  }
});

test("an idempotent request that kills every server it reaches runs at most maxAttempts (3) times", async () => {
  const fleet = await killers(3);
  const client = new Client({ servers: fleet.names });
  client.on("exception", () => {});
  try {
    await until(() => client.stats().servers.every((s) => s.connected));
    const error = await client.request(new Uint8Array(4), {
      idempotent: true,
      timeout: 5000,
    }).then(() => assert.fail("answered"), (error) => error);
    assert.ok(error instanceof ConnectionLostError, String(error));
    assert.equal(error.written, true);
    assert.match(error.message, /attempt 3 of 3/);
    assert.equal(fleet.runs.count, 3);
  } finally {
    await client.close();
    await fleet.stop();
  }
});

test("retries stop while connections keep being lost: 20 idempotent requests, one after another, to killing servers are written far fewer than 60 times", async () => {
  const fleet = await killers(3);
  const client = new Client({ servers: fleet.names, reconnect: () => 20 });
  client.on("exception", () => {});
  try {
    await until(() => client.stats().servers.every((s) => s.connected));
    for (let i = 0; i < 20; i++) {
      await assert.rejects(
        client.request(new Uint8Array(4), { idempotent: true, timeout: 5000 }),
        ConnectionLostError,
      );
    }
    // The first request is written 3 times (maxAttempts); the ten tokens
    // (one per lost connection) then allow one more retry, and the rest are
    // written once each: 3 + 2 + 18.
    assert.equal(fleet.runs.count, 23);
  } finally {
    await client.close();
    await fleet.stop();
  }
});

test("outliers: one of four servers that stalls 200 ms on every request is ejected and ends with at most 5% of the requests (round robin, which alone would give it a quarter)", async () => {
  const servers = await Promise.all([
    echoServer(() => 200),
    echoServer(),
    echoServer(),
    echoServer(),
  ]);
  const client = new Client({
    servers: servers.map((s) => s.name),
    balance: "round-robin",
  });
  client.on("exception", () => {});
  try {
    await until(() => client.stats().servers.every((s) => s.connected));
    const { failures, answered } = await load(client, { ms: 3000 });
    assert.deepEqual(failures, []);
    const total = servers.reduce((sum, s) => sum + s.requests, 0);
    const share = servers[0].requests / total;
    assert.ok(
      share <= 0.05,
      `the slow server took ${servers[0].requests} of ${total}`,
    );
    const slow = client.stats().servers.find((s) =>
      s.server === servers[0].name
    )!;
    assert.equal(slow.ejected, true);
    assert.equal(slow.ejections, 1);
    assert.ok(answered >= total - 4);
  } finally {
    await client.close();
    await Promise.all(servers.map((s) => s.server.stop()));
  }
});

test("outliers: a server that fails every request is ejected after 5 in a row, and takes requests again once healed", async () => {
  let sick = true;
  const server = new Server({ host: HOST, port: 0 });
  let answeredThere = 0;
  server.on("data", (socket, message) => {
    if (sick) socket.close();
    else {
      answeredThere++;
      socket.send(message);
    }
  });
  server.on("exception", () => {});
  await server.start();
  const sickName = `${HOST}:${server.port}`;
  const healthy = await Promise.all([echoServer(), echoServer()]);
  const client = new Client({
    servers: [sickName, ...healthy.map((s) => s.name)],
    reconnect: () => 20,
    outlierDetection: { baseEjectionTime: 0.5 },
  });
  client.on("exception", () => {});
  try {
    await until(() => client.stats().servers.every((s) => s.connected));
    const first = await load(client, { ms: 1000 });
    // The requests it killed before it was ejected (5 in a row, and any
    // written with them), then none.
    assert.ok(
      first.failures.length >= 5 && first.failures.length <= 10,
      `${first.failures.length} failed`,
    );
    const entry = () =>
      client.stats().servers.find((s) => s.server === sickName)!;
    assert.ok(entry().ejections >= 1);
    sick = false;
    // Back after its ejection time (0.5 s, or 1 s the second time).
    const second = await load(client, { ms: 2500 });
    assert.deepEqual(second.failures, []);
    assert.ok(answeredThere > 0, "the healed server took no request");
    assert.equal(entry().ejected, false);
  } finally {
    await client.close();
    await server.stop();
    await Promise.all(healthy.map((s) => s.server.stop()));
  }
});

test("least-pending: a server that answers in 20 ms gets far fewer requests than one that answers at once (round robin would split them evenly)", async () => {
  const slow = await echoServer(() => 20);
  const fast = await echoServer();
  const client = new Client({
    servers: [slow.name, fast.name],
    outlierDetection: false,
  });
  client.on("exception", () => {});
  try {
    await until(() => client.stats().servers.every((s) => s.connected));
    const { failures } = await load(client, { ms: 1500 });
    assert.deepEqual(failures, []);
    assert.ok(
      slow.requests * 4 < fast.requests,
      `slow ${slow.requests}, fast ${fast.requests}`,
    );
  } finally {
    await client.close();
    await slow.server.stop();
    await fast.server.stop();
  }
});
