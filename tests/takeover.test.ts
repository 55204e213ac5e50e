// A restart without a herd: 300 connections on one server; a second server
// on the same port (reusePort) takes them over as the first stops. stop()
// spreads its going-away notices (at most 100 a second) and each client
// returns after a short random delay, so the new server's accepts come as a
// stream: its busiest 100 ms holds at most 3 times the mean. No request is
// lost meanwhile. Skipped, saying so, where reusePort cannot work (Node.js
// before 22.12).

import assert from "node:assert/strict";
import { runtime, test } from "./_harness.ts";
import { HOST, reusePortProblem, sleep, until } from "./_helpers.ts";
import { Client, Server } from "../mod.ts";
import { DRAIN_NOTICES_PER_SECOND } from "../server.ts";

const CONNECTIONS = 300;
const BUCKET_MS = 100;

function echo(port: number, accepts?: number[]) {
  const server = new Server({ host: HOST, port, reusePort: true });
  server.on("data", (socket, message) => socket.send(message));
  server.on("exception", () => {});
  if (accepts) server.on("connected", () => accepts.push(performance.now()));
  return server;
}

const reusePort = await reusePortProblem();

test(
  "takeover: 300 connections move to a new server in a stream, not a herd; nothing lost",
  async () => {
    const old = echo(0);
    await old.start();
    const accepts: number[] = [];
    const next = echo(old.port, accepts);
    const client = new Client({
      host: HOST,
      port: old.port,
      connectionsPerServer: CONNECTIONS,
    });
    client.on("exception", () => {});
    let running = true;
    const failures: unknown[] = [];
    let answered = 0;
    try {
      await until(
        () => client.stats().connectionsOpen === CONNECTIONS,
        10_000,
        "every connection",
      );
      // Served a while, so each is replaced soon when sent away.
      await sleep(3100);
      const loops = Array.from({ length: 4 }, async () => {
        while (running) {
          try {
            await client.request(new Uint8Array(8), { timeout: 8000 });
            answered++;
          } catch (error) {
            failures.push(error);
          }
        }
      });
      await next.start();
      const stopped = performance.now();
      await old.stop();
      await until(
        () => accepts.length >= CONNECTIONS,
        10_000,
        "every connection at the new server",
      );
      running = false;
      await Promise.all(loops);
      assert.deepEqual(failures, []);
      // The accept profile over the spread.
      const first = accepts[0];
      const spread = accepts[accepts.length - 1] - first;
      const buckets = new Array(Math.ceil((spread + 1) / BUCKET_MS)).fill(0);
      for (const at of accepts) buckets[Math.floor((at - first) / BUCKET_MS)]++;
      // The mean over the spread stop() is to make (or more, if it took
      // longer): a herd is all of them in one bucket.
      const intended = (CONNECTIONS - 1) * 1000 / DRAIN_NOTICES_PER_SECOND;
      const mean = accepts.length /
        Math.ceil(Math.max(spread + 1, intended) / BUCKET_MS);
      const busiest = Math.max(...buckets);
      console.log(
        `takeover[${runtime}]: ${accepts.length} accepts over ${
          spread.toFixed(0)
        } ms (stop() took ${(performance.now() - stopped).toFixed(0)} ms); ` +
          `busiest ${BUCKET_MS} ms: ${busiest}, mean ${
            mean.toFixed(1)
          }; ${answered} requests, 0 lost`,
      );
      assert.ok(
        busiest <= 3 * mean,
        `busiest ${BUCKET_MS} ms had ${busiest} accepts, mean ${
          mean.toFixed(1)
        }`,
      );
      assert.ok(answered > 100, `${answered} answered`);
    } finally {
      running = false;
      await client.close();
      await old.stop();
      await next.stop();
    }
  },
  { skip: reusePort },
);
