// A client over several servers: options, balancing, events naming the
// server, a server down holding up nobody, and failover when a connection is
// lost (ConnectionLostError with `written`, idempotent requests sent again).

import assert from "node:assert/strict";
import { test } from "./_harness.ts";
import { HOST, next, sleep, until } from "./_helpers.ts";
import {
  Client,
  ConnectionLostError,
  encodeFrame,
  FrameDecoder,
  Server,
  SIGN_DATA,
} from "../mod.ts";
import {
  runtimeTransport,
  type Transport,
  type TransportConnection,
} from "../transport/mod.ts";

async function echoServers(count: number, seen: string[][] = []) {
  const servers: Server[] = [];
  for (let i = 0; i < count; i++) {
    const server = new Server({ host: HOST, port: 0 });
    seen[i] = [];
    server.on("data", (socket, message) => {
      seen[i].push(message.uuid);
      socket.send(message);
    });
    await server.start();
    servers.push(server);
  }
  return servers;
}

test("servers: options are checked; host/port and servers together is a TypeError", async () => {
  assert.throws(
    () => new Client({ host: HOST, port: 1, servers: ["127.0.0.1:1"] }),
    /either host and port/,
  );
  assert.throws(() => new Client({ servers: [] }), /Invalid servers/);
  assert.throws(() => new Client({ servers: ["nocolon"] }), /servers\[0\]/);
  assert.throws(() => new Client({ servers: ["h:99999"] }), RangeError);
  assert.throws(
    () => new Client({ servers: [{ host: "", port: 1 }] }),
    /servers\[0\]\.host/,
  );
  assert.throws(
    () => new Client({ servers: ["a:1"], balance: "random" as never }),
    /Invalid balance "random"/,
  );
  assert.throws(
    () => new Client({ servers: ["a:1"], connectionsPerServer: 0 }),
    /connectionsPerServer/,
  );
  const client = new Client({
    servers: ["127.0.0.1:1", { host: "::1", port: 2 }, "[::1]:3"],
    shuffle: false,
    reconnect: false,
  });
  client.on("exception", () => {});
  assert.deepEqual(client.servers, ["127.0.0.1:1", "[::1]:2", "[::1]:3"]);
  assert.equal(client.host, "127.0.0.1");
  assert.equal(client.port, 1);
  await client.close();
});

test("servers: requests spread over every server (least pending, round robin); events name the server", async () => {
  for (const balance of ["least-pending", "round-robin"] as const) {
    const seen: string[][] = [];
    const servers = await echoServers(3, seen);
    const names = servers.map((s) => `${HOST}:${s.port}`);
    const client = new Client({ servers: names, balance });
    const connected = new Set<string>();
    const details = new Set<string>();
    client.on("connected", (server) => connected.add(server));
    client.addEventListener(
      "connected",
      (event) => details.add(event.detail.server),
    );
    try {
      await until(() => connected.size === 3, 5000, "3 connections");
      assert.deepEqual([...connected].sort(), [...names].sort());
      assert.deepEqual([...details].sort(), [...names].sort());
      const replies = await Promise.all(
        Array.from(
          { length: 300 },
          (_, i) => client.request(new Uint8Array([i & 0xff])),
        ),
      );
      assert.equal(replies.length, 300);
      const counts = seen.map((uuids) => uuids.length);
      if (balance === "round-robin") assert.deepEqual(counts, [100, 100, 100]);
      else for (const count of counts) assert.ok(count >= 50, `${counts}`);
    } finally {
      await client.close();
      for (const server of servers) await server.stop();
    }
  }
});

test("servers: one down holds up none of the others; its failures name it", async () => {
  const [server] = await echoServers(1);
  // A port nothing listens on: take one and free it.
  const probe = new Server({ host: HOST, port: 0 });
  await probe.start();
  const deadPort = probe.port;
  await probe.stop();
  const dead = `${HOST}:${deadPort}`;
  const client = new Client({
    servers: [dead, `${HOST}:${server.port}`],
    reconnect: () => 20,
  });
  const failedOn = new Set<string | undefined>();
  client.on("exception", (_error, name) => failedOn.add(name));
  try {
    await next(client, "connected");
    for (let i = 0; i < 50; i++) {
      await client.request(new Uint8Array([i]), { timeout: 2000 });
    }
    await until(() => failedOn.has(dead), 3000, "a failure on the dead one");
    assert.deepEqual([...failedOn], [dead]);
  } finally {
    await client.close();
    await server.stop();
  }
});

/**
 * A server that reads requests and never answers them, so they stay in flight;
 * `cut()` ends every connection at once, as a dead process would.
 */
async function blackHole() {
  const open = new Set<TransportConnection>();
  let requests = 0;
  const listener = await runtimeTransport().listen(
    { hostname: HOST, port: 0 },
    (connection) => {
      open.add(connection);
      const decoder = new FrameDecoder();
      return {
        received: (chunk) =>
          decoder.push(chunk, (frame) => {
            if (frame.sign === SIGN_DATA) requests++;
            // PINGs echoed, as any server does.
            else void connection.write(encodeFrame(frame))?.catch(() => {});
          }),
        ended: () => open.delete(connection),
      };
    },
  );
  return {
    port: listener.addr.port,
    get requests() {
      return requests;
    },
    cut() {
      for (const connection of open) connection.close();
    },
    async close() {
      await listener.close();
      for (const connection of open) connection.close();
      await until(() => open.size === 0, 2000, "black hole closed");
    },
  };
}

test("failover: requests written to a lost server reject with written: true; idempotent ones are answered by another", async () => {
  const [good] = await echoServers(1);
  const hole = await blackHole();
  const holeName = `${HOST}:${hole.port}`;
  const client = new Client({
    servers: [holeName, `${HOST}:${good.port}`],
    balance: "round-robin",
    reconnect: () => 50,
  });
  client.on("exception", () => {});
  const connected = new Set<string>();
  client.on("connected", (server) => connected.add(server));
  try {
    await until(() => connected.size === 2, 5000, "both connected");
    const plain = Array.from(
      { length: 20 },
      (_, i) =>
        client.request(new Uint8Array([i]), { timeout: 5000 }).then(
          () => "answered",
          (error) => error,
        ),
    );
    const idempotent = Array.from(
      { length: 20 },
      (_, i) =>
        client.request(new Uint8Array([i]), { timeout: 5000, idempotent: true })
          .then(() => "answered", (error) => error),
    );
    await until(() => hole.requests === 20, 3000, "20 requests at the hole");
    hole.cut();
    const outcomes = await Promise.all(plain);
    const lost = outcomes.filter((o) => o !== "answered");
    assert.equal(lost.length, 10);
    for (const error of lost) {
      assert.ok(error instanceof ConnectionLostError, String(error));
      assert.equal(error.written, true);
      assert.equal(error.server, holeName);
    }
    assert.deepEqual(await Promise.all(idempotent), Array(20).fill("answered"));
  } finally {
    await client.close();
    await hole.close();
    await good.stop();
  }
});

/**
 * The runtime's transport, except that on connections to `port` every write
 * after the first (the hello) is held forever: what is sent after it stays in
 * the connection's write buffer, never handed to the system.
 */
function holdingTransport(port: number): Transport {
  const base = runtimeTransport();
  const hold = (connection: TransportConnection): TransportConnection => {
    let writes = 0;
    return {
      get remoteAddr() {
        return connection.remoteAddr;
      },
      write: (bytes) =>
        writes++ === 0 ? connection.write(bytes) : new Promise(() => {}),
      close: () => connection.close(),
    };
  };
  return {
    listen: (address, accept, options) => base.listen(address, accept, options),
    connect: (address, accept, options) =>
      base.connect(
        address,
        address.port === port
          ? (connection) => accept(hold(connection))
          : accept,
        options,
      ),
  };
}

test("failover: requests still in the write buffer of a lost connection go to another server; those handed over reject with written: true", async () => {
  const [good] = await echoServers(1);
  const hole = await blackHole();
  const holeName = `${HOST}:${hole.port}`;
  const client = new Client({
    servers: [holeName, `${HOST}:${good.port}`],
    balance: "round-robin",
    reconnect: () => 50,
    transport: holdingTransport(hole.port),
  });
  client.on("exception", () => {});
  const connected = new Set<string>();
  client.on("connected", (server) => connected.add(server));
  try {
    await until(() => connected.size === 2, 5000, "both connected");
    const outcome = (request: Promise<Uint8Array>) =>
      request.then(() => "answered", (error) => error);
    // The first batch is handed to the (held) write; the second waits behind
    // it in the write buffer.
    const handed = Array.from(
      { length: 10 },
      (_, i) => outcome(client.request(new Uint8Array([i]), { timeout: 5000 })),
    );
    await sleep(20);
    const buffered = Array.from(
      { length: 10 },
      (_, i) => outcome(client.request(new Uint8Array([i]), { timeout: 5000 })),
    );
    await sleep(20);
    hole.cut();
    const first = await Promise.all(handed);
    assert.equal(first.filter((o) => o === "answered").length, 5);
    for (const error of first.filter((o) => o !== "answered")) {
      assert.ok(error instanceof ConnectionLostError, String(error));
      assert.equal(error.written, true);
    }
    assert.deepEqual(await Promise.all(buffered), Array(10).fill("answered"));
    assert.equal(hole.requests, 0);
  } finally {
    await client.close();
    await hole.close();
    await good.stop();
  }
});

test("servers: a 3.x-like server (echoes every PING, as 3.0.1 does) in the list beside one of ours, which is drained: every request answered", async () => {
  // What a 3.x server does on the wire: every PING back unchanged, and here
  // every request answered with its own payload.
  const open = new Set<TransportConnection>();
  const old = await runtimeTransport().listen(
    { hostname: HOST, port: 0 },
    (connection) => {
      open.add(connection);
      const decoder = new FrameDecoder();
      return {
        received: (chunk) =>
          decoder.push(
            chunk,
            (frame) =>
              void connection.write(encodeFrame(frame))?.catch(() => {}),
          ),
        ended: () => open.delete(connection),
      };
    },
  );
  const [ours] = await echoServers(1);
  const client = new Client({
    servers: [`${HOST}:${old.addr.port}`, `${HOST}:${ours.port}`],
    balance: "round-robin",
    reconnect: () => 50,
  });
  client.on("exception", () => {});
  const connected = new Set<string>();
  client.on("connected", (server) => connected.add(server));
  try {
    await until(() => connected.size === 2, 5000, "both connected");
    let answered = 0;
    const failures: unknown[] = [];
    const batch = () =>
      Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          client.request(new Uint8Array([i]), { timeout: 5000 }).then(
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
  } finally {
    await client.close();
    await ours.stop();
    await old.close();
    for (const connection of open) connection.close();
    await until(() => open.size === 0, 2000, "closed");
  }
});

test("a connection closed before the server answers its hello loses nothing: nothing but the hello was written on it", async () => {
  // Its first 3 connections are closed 30 ms after they open, unread (as the
  // system resets those in the backlog of a listener that closes, or a load
  // balancer with no backend closes them); later ones are served as a 3.x
  // server would (every frame echoed).
  const open = new Set<TransportConnection>();
  const received: number[] = [];
  let accepted = 0;
  const listener = await runtimeTransport().listen(
    { hostname: HOST, port: 0 },
    (connection) => {
      open.add(connection);
      const serve = ++accepted > 3;
      const timer = serve
        ? undefined
        : setTimeout(() => connection.close(), 30);
      const decoder = new FrameDecoder();
      return {
        received: (chunk) => {
          if (!serve) return;
          decoder.push(chunk, (frame) => {
            if (frame.sign === SIGN_DATA && frame.payload[0] === 1) {
              received.push(frame.payload[1]);
            } else void connection.write(encodeFrame(frame))?.catch(() => {});
          });
        },
        ended: () => {
          clearTimeout(timer);
          open.delete(connection);
        },
      };
    },
  );
  const client = new Client({
    host: HOST,
    port: listener.addr.port,
    reconnect: () => 10,
  });
  const failures: unknown[] = [];
  client.on("exception", (error) => failures.push(error));
  try {
    const requests = Array.from(
      { length: 20 },
      (_, i) => client.request(new Uint8Array([0, i]), { timeout: 5000 }),
    );
    for (let i = 0; i < 100; i++) {
      client.send({ uuid: crypto.randomUUID(), data: new Uint8Array([1, i]) });
    }
    assert.equal((await Promise.all(requests)).length, 20);
    await until(() => received.length === 100, 3000, "100 messages");
    assert.deepEqual(received, Array.from({ length: 100 }, (_, i) => i));
    // Each closed connection was reported as a failed attempt.
    assert.equal(failures.length, 3);
  } finally {
    await client.close();
    await listener.close();
    for (const connection of open) connection.close();
    await until(() => open.size === 0, 2000, "closed");
  }
});

test("failover: send()s still in the write buffer of a lost connection go to another server, once", async () => {
  const seen: string[][] = [];
  const [good] = await echoServers(1, seen);
  const hole = await blackHole();
  const client = new Client({
    servers: [`${HOST}:${hole.port}`, `${HOST}:${good.port}`],
    balance: "round-robin",
    reconnect: () => 50,
    transport: holdingTransport(hole.port),
  });
  client.on("exception", () => {});
  const connected = new Set<string>();
  client.on("connected", (server) => connected.add(server));
  const send = () => {
    const uuid = crypto.randomUUID();
    client.send({ uuid, data: new Uint8Array([1]) });
    return uuid;
  };
  try {
    await until(() => connected.size === 2, 5000, "both connected");
    // Half of the first batch is handed to the hole's (held) write: lost with
    // it. The second batch waits behind it in the write buffer.
    const handed = Array.from({ length: 10 }, send);
    await sleep(20);
    const buffered = Array.from({ length: 10 }, send);
    await sleep(20);
    hole.cut();
    await until(() => seen[0].length >= 15, 3000, "15 at the good server");
    await sleep(50);
    const arrived = new Set(seen[0]);
    assert.equal(seen[0].length, arrived.size, "none twice");
    assert.equal(handed.filter((uuid) => arrived.has(uuid)).length, 5);
    assert.ok(buffered.every((uuid) => arrived.has(uuid)));
    assert.equal(hole.requests, 0);
  } finally {
    await client.close();
    await hole.close();
    await good.stop();
  }
});
