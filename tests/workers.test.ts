// serveWorkers: N processes of a server module on one port (reusePort), a
// dead worker restarted, stop() draining them all. Real child processes of
// the runtime running the tests (tests/fixtures/echo_worker.mjs).

import assert from "node:assert/strict";
import { runtime, test } from "./_harness.ts";
import { HOST, sleep, until } from "./_helpers.ts";
import { Client, Server } from "../mod.ts";
import { restartDelay, serveWorkers } from "../workers.ts";
import { runtimeExecutable, spawn } from "./_spawn.ts";

const WORKER = decodeURIComponent(
  new URL("./fixtures/echo_worker.mjs", import.meta.url).pathname,
);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Why reusePort cannot work here, or undefined: from a server's start(). */
async function reusePortProblem(): Promise<string | undefined> {
  const probe = new Server({ host: HOST, port: 0, reusePort: true });
  try {
    await probe.start();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  } finally {
    await probe.stop();
  }
}

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const probe = new Server({ host: HOST, port: 0 });
  await probe.start();
  const port = probe.port;
  await probe.stop();
  return port;
}

interface Reply {
  pid: number;
  worker: string;
}

/** Opens a fresh client and asks who answers; undefined if none does yet. */
async function whoAnswers(port: number): Promise<Reply | undefined> {
  const client = new Client({ host: HOST, port, reconnect: false });
  try {
    const reply = await client.request(encoder.encode("who"), {
      timeout: 1000,
    });
    return JSON.parse(decoder.decode(reply));
  } catch {
    return undefined;
  } finally {
    await client.close();
  }
}

test("serveWorkers: two workers share a port, a killed one is restarted, stop() drains both", async () => {
  const problem = await reusePortProblem();
  if (problem) {
    console.log(`workers[${runtime}] skipped: ${problem}`);
    return;
  }
  const port = await freePort();
  const exits: Array<[number, number | null, string | null]> = [];
  let clean = false;
  const workers = serveWorkers(WORKER, {
    workers: 2,
    args: [String(port), "--reuse-port"],
    handleSignals: false,
    output: "ignore",
    restartDelay: () => 50,
    onExit: (worker, code, signal) => exits.push([worker, code, signal]),
  });
  try {
    await until(() => workers.pids.length === 2, 5000, "two workers");
    const seen = new Map<number, string>();
    // Until both answer: a worker still starting (slow on a loaded machine)
    // is not listening yet, and the other takes every connection.
    for (let i = 0; i < 1000 && seen.size < 2; i++) {
      const reply = await whoAnswers(port);
      if (reply) seen.set(reply.pid, reply.worker);
      await sleep(10);
    }
    assert.deepEqual([...seen.keys()].sort(), [...workers.pids].sort());
    assert.deepEqual([...seen.values()].sort(), ["0", "1"]);

    // A worker that dies is started again.
    const victim = workers.pids[0];
    process().kill(victim, "SIGKILL");
    await until(
      () => workers.restarts === 1 && workers.pids.length === 2,
      10_000,
      "the restart",
    );
    assert.ok(!workers.pids.includes(victim));
    assert.deepEqual(exits, [[0, null, "SIGKILL"]]);
    const answered = new Set<number>();
    for (let i = 0; i < 1000 && answered.size < 2; i++) {
      const reply = await whoAnswers(port);
      if (reply) answered.add(reply.pid);
      await sleep(10);
    }
    assert.deepEqual([...answered].sort(), [...workers.pids].sort());
  } finally {
    // Whatever failed above, no worker may outlive the test.
    clean = await workers.stop();
  }
  assert.equal(clean, true, `exits: ${JSON.stringify(exits)}`);
  assert.equal(workers.pids.length, 0);
  assert.deepEqual(exits.slice(1).map(([, code]) => code), [0, 0]);
  assert.equal(await whoAnswers(port), undefined);
});

test("restartDelay: 100 ms doubling to 10 s, with jitter", () => {
  for (let i = 0; i < 50; i++) {
    const first = restartDelay(1);
    assert.ok(first >= 80 && first <= 120, String(first));
    const later = restartDelay(30);
    assert.ok(later >= 8000 && later <= 12000, String(later));
  }
});

test("serveWorkers: options are checked, naming the option", () => {
  assert.throws(() => serveWorkers(WORKER, { workers: 0 }), /workers/);
  assert.throws(() => serveWorkers(WORKER, { stopTimeout: -1 }), /stopTimeout/);
  assert.throws(() => serveWorkers(""), /module/);
});

function process(): { kill(pid: number, signal: string): void } {
  return (globalThis as unknown as {
    process: { kill(pid: number, signal: string): void };
  }).process ?? {
    kill: (pid: number, signal: string) =>
      Deno.kill(pid, signal as Deno.Signal),
  };
}

test("tcp-framework serve --workers 2: both listen on the port, SIGTERM drains them and exits 0", async () => {
  const problem = await reusePortProblem();
  if (problem) {
    console.log(`workers[${runtime}] CLI skipped: ${problem}`);
    return;
  }
  const cli = decodeURIComponent(
    new URL(
      import.meta.url.endsWith(".js") ? "../cli/main.js" : "../cli/main.ts",
      import.meta.url,
    ).pathname,
  );
  const port = await freePort();
  const args = ["serve", "--workers", "2", "-p", String(port), "-q"];
  const child = await spawn(
    runtimeExecutable(),
    runtime === "deno"
      ? [
        "run",
        "--allow-net",
        "--allow-read",
        "--allow-run",
        "--allow-env",
        cli,
        ...args,
      ]
      : [cli, ...args],
  );
  try {
    await until(
      () =>
        child.lines.filter((line) => line.startsWith("listening on")).length ===
          2,
      10_000,
      "two workers listening",
    );
    const client = new Client({ host: HOST, port });
    try {
      const reply = await client.request(encoder.encode("echo"), {
        timeout: 2000,
      });
      assert.equal(decoder.decode(reply), "echo");
    } finally {
      await client.close();
    }
    child.signal("SIGTERM");
    assert.equal(await child.exited, 0, child.stderr());
    assert.match(child.stderr(), /started 2 workers/);
    assert.match(child.stderr(), /all workers drained and stopped/);
  } finally {
    await child.kill();
  }
  assert.equal(await whoAnswers(port), undefined);
});
