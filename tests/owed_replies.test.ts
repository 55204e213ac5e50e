// The 3.x pattern across graceful restarts: the client send()s, and matches
// each reply by uuid in its `data` listener; the servers answer 0-5 ms late.
// A drained connection must stay open until those replies are in: every
// reply arrives, once. One server restarted in place, and a list whose
// servers restart in turn.

import assert from "node:assert/strict";
import { test } from "./_harness.ts";
import { HOST, sleep, until } from "./_helpers.ts";
import { Client, Server } from "../mod.ts";

/** A server that answers every message 0-5 ms later, as a 3.x handler might. */
async function lateEcho(port: number) {
  const server = new Server({ host: HOST, port });
  server.on("data", (socket, message) => {
    const delay = Math.floor(Math.random() * 6);
    setTimeout(() => {
      if (!socket.closed) socket.send(message);
    }, delay);
  });
  server.on("exception", () => {});
  await server.start();
  return server;
}

/** Sends steadily from 4 loops until stopped; counts replies per uuid. */
function traffic(client: Client) {
  const sent = new Set<string>();
  const replies = new Map<string, number>();
  client.on(
    "data",
    ({ uuid }) => replies.set(uuid, (replies.get(uuid) ?? 0) + 1),
  );
  let running = true;
  const loops = Array.from({ length: 4 }, async () => {
    while (running) {
      const uuid = crypto.randomUUID();
      client.send({ uuid, data: new Uint8Array(16) });
      sent.add(uuid);
      await sleep(2);
    }
  });
  return {
    sent,
    replies,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

async function restartAll(
  servers: Server[],
  times: number,
): Promise<number> {
  let restarts = 0;
  for (let round = 0; round < times; round++) {
    for (let i = 0; i < servers.length; i++) {
      const port = servers[i].port;
      await sleep(150);
      await servers[i].stop();
      servers[i] = await lateEcho(port);
      restarts++;
    }
  }
  return restarts;
}

async function checkEveryReply(
  client: Client,
  servers: Server[],
  restarts: number,
) {
  const load = traffic(client);
  try {
    await until(() => load.replies.size > 20, 5000, "the first replies");
    assert.equal(
      await restartAll(servers, restarts),
      servers.length * restarts,
    );
    await sleep(100);
  } finally {
    await load.stop();
  }
  await until(
    () => load.replies.size === load.sent.size,
    5000,
    "every reply",
  ).catch(() => {});
  const missing = Array.from(load.sent).filter((uuid) =>
    !load.replies.has(uuid)
  );
  const twice = Array.from(load.replies.values()).filter((n) => n > 1).length;
  assert.equal(
    missing.length,
    0,
    `${missing.length} of ${load.sent.size} replies never arrived`,
  );
  assert.equal(twice, 0, `${twice} replies arrived twice`);
  assert.ok(load.sent.size > 200, `${load.sent.size} sent`);
}

test("3.x pattern, one server restarted gracefully 4 times: every reply to a send() arrives, once", async () => {
  const servers = [await lateEcho(0)];
  const client = new Client({ host: HOST, port: servers[0].port });
  client.on("exception", () => {});
  try {
    await until(() => client.connected, 5000, "connected");
    await checkEveryReply(client, servers, 4);
  } finally {
    await client.close();
    await Promise.all(servers.map((server) => server.stop()));
  }
});

test("3.x pattern, a list of two servers restarted gracefully in turn, twice each: every reply arrives, once", async () => {
  const servers = [await lateEcho(0), await lateEcho(0)];
  const client = new Client({
    servers: servers.map((server) => `${HOST}:${server.port}`),
  });
  client.on("exception", () => {});
  try {
    await until(
      () => client.stats().servers.every((s) => s.connected),
      5000,
      "connected",
    );
    await checkEveryReply(client, servers, 2);
  } finally {
    await client.close();
    await Promise.all(servers.map((server) => server.stop()));
  }
});
