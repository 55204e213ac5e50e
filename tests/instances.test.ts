// Several instances, each server in a process of its own (the runtime running
// the tests), and a client over them at load: request() loops and numbered
// send()s. Each server in turn is drained (SIGTERM: server.stop()) and
// restarted on its port, over several cycles; then the same behind a single
// address; then one of three is killed (SIGKILL). Figures are printed per
// runtime.

import assert from "node:assert/strict";
import { runtime, test } from "./_harness.ts";
import { HOST, sleep, until } from "./_helpers.ts";
import { type Child, runtimeExecutable, spawn } from "./_spawn.ts";
import { Client, ConnectionLostError } from "../mod.ts";

const MOD = new URL(
  import.meta.url.endsWith(".js") ? "../mod.js" : "../mod.ts",
  import.meta.url,
).href;

// The server process: echoes requests (after DELAY ms), keeps the numbers of
// the send()s it reads in order, and on SIGTERM drains, prints them, exits.
// With HOLD set, it never answers requests whose first byte is 2, and says
// HOLDING at the first: a process to kill with such a request in flight.
const SCRIPT = `
import { Server } from ${JSON.stringify(MOD)};
const env = globalThis.Deno ? Deno.env.toObject() : process.env;
const delay = Number(env.DELAY ?? 0);
const hold = env.HOLD === "1";
let holding = false;
const server = new Server({ host: "127.0.0.1", port: Number(env.PORT), gracePeriod: 5 });
const sends = [];
server.on("data", (socket, { uuid, data }) => {
  if (data[0] === 1) {
    sends.push(new DataView(data.buffer, data.byteOffset).getUint32(1));
    return;
  }
  if (hold && data[0] === 2) {
    if (!holding) console.log("HOLDING");
    holding = true;
    return;
  }
  if (delay === 0) socket.send({ uuid, data });
  else setTimeout(() => { if (!socket.closed) socket.send({ uuid, data }); }, delay);
});
await server.start();
console.log("LISTENING " + server.port);
const stop = async () => {
  await server.stop();
  const line = "STOPPED " + JSON.stringify(sends) + "\\n";
  if (globalThis.Deno) {
    await Deno.stdout.write(new TextEncoder().encode(line));
    Deno.exit(0);
  }
  process.stdout.write(line, () => process.exit(0));
};
if (globalThis.Deno) Deno.addSignalListener("SIGTERM", stop);
else process.on("SIGTERM", stop);
`;

interface Instance {
  child: Child;
  port: number;
}

async function startServer(
  port = 0,
  delay = 0,
  hold = false,
): Promise<Instance> {
  const args = runtime === "deno"
    ? ["eval", "--no-check", SCRIPT]
    : runtime === "bun"
    ? ["-e", SCRIPT]
    : ["--input-type=module", "-e", SCRIPT];
  const child = await spawn(runtimeExecutable(), args, {
    env: { PORT: String(port), DELAY: String(delay), HOLD: hold ? "1" : "" },
  });
  try {
    const line = await child.waitFor(/^LISTENING \d+$/, 10_000);
    return { child, port: Number(line.split(" ")[1]) };
  } catch (error) {
    await child.kill();
    throw error;
  }
}

/** Drains the server (SIGTERM), and returns the send() numbers it read. */
async function stopServer(instance: Instance): Promise<number[]> {
  try {
    instance.child.signal("SIGTERM");
    const line = await instance.child.waitFor(/^STOPPED /, 10_000);
    await instance.child.exited;
    return JSON.parse(line.slice("STOPPED ".length));
  } finally {
    await instance.child.kill();
  }
}

/** The load: request() loops and numbered send()s until `stop()`. */
function load(client: Client, loops = 4) {
  let running = true;
  const figures = {
    requests: 0,
    answered: 0,
    rejected: 0,
    sends: 0,
    refused: 0,
    errors: [] as unknown[],
  };
  const requestLoop = async () => {
    const payload = new Uint8Array([0, 1, 2, 3]);
    while (running) {
      figures.requests++;
      try {
        await client.request(payload, { timeout: 15_000 });
        figures.answered++;
      } catch (error) {
        figures.rejected++;
        figures.errors.push(error);
      }
    }
  };
  const sendLoop = async () => {
    const data = new Uint8Array(5);
    const view = new DataView(data.buffer);
    data[0] = 1;
    while (running) {
      for (let i = 0; i < 5; i++) {
        view.setUint32(1, figures.sends);
        try {
          client.send({ uuid: crypto.randomUUID(), data });
          figures.sends++;
        } catch (error) {
          figures.refused++;
          figures.errors.push(error);
        }
      }
      await sleep(1);
    }
  };
  const done = Promise.all([
    ...Array.from({ length: loops }, requestLoop),
    sendLoop(),
  ]);
  return {
    figures,
    async stop() {
      running = false;
      await done;
    },
  };
}

/** Every number below `count` exactly once overall, increasing per server. */
function checkSends(lists: number[][], count: number) {
  const seen = new Uint8Array(count);
  let delivered = 0;
  let duplicated = 0;
  let outOfOrder = 0;
  for (const list of lists) {
    for (let i = 0; i < list.length; i++) {
      if (i > 0 && list[i] <= list[i - 1]) outOfOrder++;
      if (seen[list[i]]++ === 0) delivered++;
      else duplicated++;
    }
  }
  if (count !== delivered) {
    const missing = [];
    for (let i = 0; i < count; i++) if (seen[i] === 0) missing.push(i);
    console.log(
      "DEBUG missing",
      missing,
      lists.map((l) => [l[0], l.at(-1), l.length]),
    );
  }
  return { delivered, lost: count - delivered, duplicated, outOfOrder };
}

test("3 server processes, each drained and restarted in turn (2 cycles) under load: nothing rejected, lost or duplicated; order kept per server", async () => {
  const instances: Instance[] = [];
  const lists: number[][] = [];
  let client: Client | undefined;
  try {
    for (let i = 0; i < 3; i++) instances.push(await startServer());
    client = new Client({
      servers: instances.map((instance) => `${HOST}:${instance.port}`),
      reconnect: () => 50,
    });
    client.on("exception", () => {}); // refused reconnects while one is down
    await until(() => client!.connected, 5000, "connected");
    const running = load(client);
    await sleep(200);
    for (let cycle = 0; cycle < 2; cycle++) {
      for (let i = 0; i < 3; i++) {
        lists.push(await stopServer(instances[i]));
        instances[i] = await startServer(instances[i].port);
        await sleep(150);
      }
    }
    await running.stop();
    await client.drained();
    for (const instance of instances.splice(0)) {
      lists.push(await stopServer(instance));
    }
    const { figures } = running;
    const sends = checkSends(lists, figures.sends);
    console.log(
      `instances[${runtime}] 3 servers, 6 drains: requests sent ${figures.requests}, answered ${figures.answered}, rejected ${figures.rejected}; send() sent ${figures.sends}, delivered ${sends.delivered}, lost ${sends.lost}, duplicated ${sends.duplicated}, out of order ${sends.outOfOrder}, refused ${figures.refused}`,
    );
    assert.deepEqual(figures.errors, []);
    assert.equal(figures.answered, figures.requests);
    assert.ok(figures.requests > 100, `${figures.requests} requests`);
    assert.deepEqual(sends, {
      delivered: figures.sends,
      lost: 0,
      duplicated: 0,
      outOfOrder: 0,
    });
  } finally {
    await client?.close();
    for (const instance of instances) await instance.child.kill();
  }
});

test("one server process behind a single address, drained and restarted 3 times under load: nothing rejected, lost or duplicated, in order", async () => {
  let instance: Instance | undefined = await startServer();
  const lists: number[][] = [];
  let client: Client | undefined;
  try {
    client = new Client({
      host: HOST,
      port: instance.port,
      reconnect: () => 50,
    });
    client.on("exception", () => {});
    await until(() => client!.connected, 5000, "connected");
    const running = load(client);
    await sleep(200);
    for (let restart = 0; restart < 3; restart++) {
      const port: number = instance.port;
      lists.push(await stopServer(instance));
      instance = undefined;
      instance = await startServer(port);
      await sleep(150);
    }
    await running.stop();
    await client.drained();
    lists.push(await stopServer(instance));
    instance = undefined;
    const { figures } = running;
    const sends = checkSends(lists, figures.sends);
    console.log(
      `instances[${runtime}] 1 address, 3 restarts: requests sent ${figures.requests}, answered ${figures.answered}, rejected ${figures.rejected}; send() sent ${figures.sends}, delivered ${sends.delivered}, lost ${sends.lost}, duplicated ${sends.duplicated}, out of order ${sends.outOfOrder}, refused ${figures.refused}`,
    );
    assert.deepEqual(figures.errors, []);
    assert.equal(figures.answered, figures.requests);
    assert.deepEqual(sends, {
      delivered: figures.sends,
      lost: 0,
      duplicated: 0,
      outOfOrder: 0,
    });
  } finally {
    await client?.close();
    await instance?.child.kill();
  }
});

test("kill -9 of one of 3 server processes: only requests written to it fail (ConnectionLostError, written), none made idempotent", async () => {
  const instances: Instance[] = [];
  let client: Client | undefined;
  try {
    // Replies come 50 ms late, so requests are in flight when it dies; and
    // the one killed holds the plain requests it gets (first byte 2), so one
    // surely is in flight on it then, whatever order round robin gave them.
    for (let i = 0; i < 3; i++) {
      instances.push(await startServer(0, 50, i === 0));
    }
    const names = instances.map((instance) => `${HOST}:${instance.port}`);
    // Round robin: each server gets its share of both kinds of request.
    client = new Client({
      servers: names,
      balance: "round-robin",
      reconnect: () => 50,
    });
    client.on("exception", () => {});
    const connected = new Set<string>();
    client.on("connected", (server) => connected.add(server));
    // All three, so that the one killed carries requests.
    await until(() => connected.size === 3, 5000, "3 connected");
    let running = true;
    const plain = { sent: 0, answered: 0, failures: [] as unknown[] };
    const idempotent = { sent: 0, answered: 0, failures: [] as unknown[] };
    const loop = async (figures: typeof plain, again: boolean) => {
      while (running) {
        figures.sent++;
        try {
          await client!.request(new Uint8Array([again ? 0 : 2]), {
            timeout: 10_000,
            idempotent: again,
          });
          figures.answered++;
        } catch (error) {
          figures.failures.push(error);
        }
      }
    };
    const loops = Promise.all([
      ...Array.from({ length: 6 }, () => loop(plain, false)),
      ...Array.from({ length: 6 }, () => loop(idempotent, true)),
    ]);
    await instances[0].child.waitFor(/^HOLDING$/, 5000);
    await instances[0].child.kill(); // SIGKILL
    await sleep(300); // the load goes on over the other two
    running = false;
    await loops;
    console.log(
      `instances[${runtime}] kill -9 of 1 of 3: plain requests sent ${plain.sent}, answered ${plain.answered}, rejected ${plain.failures.length}; idempotent sent ${idempotent.sent}, answered ${idempotent.answered}, rejected ${idempotent.failures.length}`,
    );
    assert.deepEqual(idempotent.failures, []);
    for (const error of plain.failures) {
      assert.ok(error instanceof ConnectionLostError, String(error));
      assert.equal(error.written, true);
      assert.equal(error.server, names[0]);
    }
    // Some were in flight on it, and at most the 6 plain loops' requests.
    assert.ok(
      plain.failures.length >= 1 && plain.failures.length <= 6,
      `${plain.failures.length}`,
    );
    assert.equal(plain.answered + plain.failures.length, plain.sent);
  } finally {
    await client?.close();
    for (const instance of instances.slice(1)) {
      await stopServer(instance).catch(() => {});
    }
  }
});
