// serveWorkers: N processes of a server module on one port (reusePort), a
// dead worker restarted, stop() draining them all. Real child processes of
// the runtime running the tests (tests/fixtures/echo_worker.mjs).

import assert from "node:assert/strict";
import { runtime, test } from "./_harness.ts";
import { freePort, HOST, reusePortProblem, sleep, until } from "./_helpers.ts";
import { Client, ClosedError, NetworkError, Server } from "../mod.ts";
import {
  DEFAULT_MAX_FAILURES,
  restartDelay,
  serveWorkers,
  type Workers,
  WorkersUnavailableError,
} from "../workers.ts";
import { type Child, exitWithin, runtimeExecutable, spawn } from "./_spawn.ts";

const WORKER = decodeURIComponent(
  new URL("./fixtures/echo_worker.mjs", import.meta.url).pathname,
);
const LAUNCHER = decodeURIComponent(
  new URL("./fixtures/workers_launcher.mjs", import.meta.url).pathname,
);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Why the workers cannot share a port here, or undefined where they can. */
const reusePort = await reusePortProblem();
/** The skip of a test of workers refused: where they can share a port. */
const sharing = "the workers of this runtime can share a port here";

interface Reply {
  pid: number;
  worker: string;
}

/** Opens a fresh client and asks who answers; undefined if none does yet. */
async function whoAnswers(port: number): Promise<Reply | undefined> {
  const client = new Client({ host: HOST, port, reconnect: false });
  // No worker listening yet, or a worker killed: a refused connect or a lost
  // connection is expected, and nothing else.
  const heard: unknown[] = [];
  client.on("exception", (error) => heard.push(error));
  try {
    const reply = await client.request(encoder.encode("who"), {
      timeout: 1000,
    });
    return JSON.parse(decoder.decode(reply));
  } catch {
    return undefined;
  } finally {
    await client.close();
    for (const error of heard) {
      assert.ok(
        error instanceof NetworkError || error instanceof ClosedError,
        String(error),
      );
    }
  }
}

test(
  "serveWorkers: two workers share a port, a killed one is restarted, stop() drains both",
  async () => {
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
  },
  { skip: reusePort },
);

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

const CLI = decodeURIComponent(
  new URL(
    import.meta.url.endsWith(".js") ? "../cli/main.js" : "../cli/main.ts",
    import.meta.url,
  ).pathname,
);

/**
 * The flags of `deno task cli` (deno.json), before its module: what a user
 * of the task from a checkout runs the tool with.
 */
async function denoTaskFlags(): Promise<string[]> {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  ) as { tasks: { cli: string } };
  const words = config.tasks.cli.split(/\s+/);
  assert.deepEqual(words.slice(0, 2), ["deno", "run"]);
  assert.equal(words.at(-1), "cli/main.ts");
  return words.slice(2, -1);
}

/** Runs the tool (under Deno with `deno task cli`'s flags, or `flags`). */
async function cli(args: string[], flags?: string[]): Promise<Child> {
  return await spawn(
    runtimeExecutable(),
    runtime === "deno"
      ? ["run", ...(flags ?? await denoTaskFlags()), CLI, ...args]
      : [CLI, ...args],
  );
}

test(
  "tcp-framework serve --workers 2 (under Deno, with deno task cli's flags): both listen on the port, SIGTERM drains them and exits 0",
  async () => {
    const port = await freePort();
    const child = await cli([
      "serve",
      "--workers",
      "2",
      "-p",
      String(port),
      "-q",
    ]);
    try {
      await until(
        () =>
          child.lines.filter((line) => line.startsWith("listening on"))
            .length ===
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
  },
  { skip: reusePort },
);

/**
 * serveWorkers() where its workers cannot work: a refusal, thrown before a
 * worker is started (or, on the old code, the workers it started, stopped).
 */
function refusal(options: Parameters<typeof serveWorkers>[1]): unknown {
  let workers: Workers | undefined;
  const exits: unknown[] = [];
  try {
    workers = serveWorkers(WORKER, {
      workers: 2,
      args: ["0", "--reuse-port"],
      handleSignals: false,
      output: "ignore",
      onExit: (...exit) => exits.push(exit),
      ...options,
    });
  } catch (error) {
    assert.deepEqual(exits, [], "no worker was started");
    return error;
  }
  // Started anyway: none may outlive the test.
  const started = workers.pids.length;
  return workers.stop().then(() => {
    throw new Error(
      `serveWorkers started ${started} workers where they cannot work`,
    );
  });
}

test(
  "serveWorkers where the workers cannot share a port (Node.js before 22.12, Deno workers without --unstable-net): throws WorkersUnavailableError, starting nothing",
  async () => {
    let checked = 0;
    if (runtime === "node" && reusePort !== undefined) {
      const error = await refusal({});
      assert.ok(error instanceof WorkersUnavailableError, String(error));
      assert.equal(error.kind, "runtime");
      assert.match(error.message, /Node\.js 22\.12 or later/);
      checked++;
    }
    if (runtime === "deno") {
      const error = await refusal({
        runtimeArgs: ["run", "--allow-net", "--allow-read", "--allow-env"],
      });
      assert.ok(error instanceof WorkersUnavailableError, String(error));
      assert.equal(error.kind, "flag");
      assert.match(error.message, /--unstable-net/);
      checked++;
    }
    assert.ok(checked > 0, "neither case applies: the test should be skipped");
  },
  {
    skip: runtime === "deno" || (runtime === "node" && reusePort !== undefined)
      ? undefined
      : sharing,
  },
);

test(
  "serveWorkers in a Deno launcher without --allow-run: throws WorkersUnavailableError saying so, starting nothing",
  async () => {
    // Without --allow-run (nor --allow-env, which the workers have of their own).
    const child = await spawn(runtimeExecutable(), [
      "run",
      "--allow-net",
      "--allow-read",
      LAUNCHER,
    ]);
    try {
      await child.closeStdin();
      const line = await child.waitFor(/^(started|refused)/, 10_000);
      assert.match(
        line,
        /^refused WorkersUnavailableError permission: .*--allow-run/,
      );
      assert.equal(await child.exited, 0, child.stderr());
    } finally {
      await child.kill();
    }
  },
  {
    skip: runtime === "deno"
      ? undefined
      : "a check of Deno's --allow-run (Deno only)",
  },
);

test("serveWorkers: a worker that keeps dying is restarted with backoff, then given up after maxFailures deaths in a row", async () => {
  const exits = new Map<number, number>();
  const gaveUp: Array<[number, number]> = [];
  const delays: number[] = [];
  // A worker that dies as soon as it starts: sh, whatever the runtime.
  const workers = serveWorkers(WORKER, {
    workers: 2,
    execPath: "/bin/sh",
    runtimeArgs: ["-c", "exit 3"],
    maxFailures: 3,
    restartDelay: (attempt) => {
      delays.push(attempt);
      return 10 * attempt;
    },
    handleSignals: false,
    output: "ignore",
    onExit: (worker, code) => {
      assert.equal(code, 3);
      exits.set(worker, (exits.get(worker) ?? 0) + 1);
    },
    onGiveUp: (worker, failures) => gaveUp.push([worker, failures]),
  });
  let clean: boolean;
  try {
    await until(() => workers.givenUp === 2, 10_000, "both workers given up");
  } finally {
    clean = await workers.stop();
  }
  assert.deepEqual(gaveUp.sort(), [[0, 3], [1, 3]]);
  assert.deepEqual([...exits].sort(), [[0, 3], [1, 3]]);
  // Two restarts each, with the backoff of the first and second death.
  assert.equal(workers.restarts, 4);
  assert.deepEqual(delays.sort(), [1, 1, 2, 2]);
  assert.deepEqual(workers.pids, []);
  assert.equal(clean, false, "given-up workers are not a clean stop");
  assert.equal(DEFAULT_MAX_FAILURES, 5);
});

test("serveWorkers with its defaults: once every worker has been given up, a line on stderr for each and the launcher exits 1", async () => {
  const child = await spawn(
    runtimeExecutable(),
    runtime === "deno"
      ? ["run", "--allow-net", "--allow-read", "--allow-run", LAUNCHER, "dying"]
      : [LAUNCHER, "dying"],
  );
  try {
    await child.closeStdin();
    const code = await exitWithin(child, 10_000);
    assert.equal(code, 1, `still running; stderr: ${child.stderr()}`);
    assert.equal(child.stdout(), "started\n");
    const lines = child.stderr().trim().split("\n").sort();
    assert.deepEqual(
      lines,
      [0, 1].map((worker) =>
        `serveWorkers: worker ${worker} died ${DEFAULT_MAX_FAILURES} times in a row, each within 10 s of its start; not restarting it`
      ),
    );
  } finally {
    await child.kill();
  }
});

test(
  "tcp-framework serve --workers 2 where the workers cannot work (Node.js 20; Deno without --allow-run): exit 2 at once with the reason",
  async () => {
    let child: Child | undefined;
    let reason: RegExp | undefined;
    if (runtime === "node" && reusePort !== undefined) {
      child = await cli([
        "serve",
        "--workers",
        "2",
        "-p",
        String(await freePort()),
      ]);
      reason = /Node\.js 22\.12 or later/;
    } else if (runtime === "deno") {
      // `deno task cli` as it was: without --allow-run.
      child = await cli(
        ["serve", "--workers", "2", "-p", String(await freePort())],
        ["--allow-net", "--allow-read", "--allow-write"],
      );
      reason = /--allow-run/;
    } else {
      assert.fail("neither case applies: the test should be skipped");
    }
    try {
      await child.closeStdin();
      const code = await exitWithin(child, 10_000);
      assert.equal(code, 2, `still running; stderr: ${child.stderr()}`);
      assert.match(
        child.stderr(),
        /^tcp-framework: --workers cannot work here: /,
      );
      assert.match(child.stderr(), reason);
      assert.doesNotMatch(child.stderr(), /started/);
      assert.equal(child.stderr().trim().split("\n").length, 1);
    } finally {
      await child.kill();
    }
  },
  {
    skip: runtime === "deno" || (runtime === "node" && reusePort !== undefined)
      ? undefined
      : sharing,
  },
);

test(
  "tcp-framework serve --workers 2 on a port another program holds: every worker given up, exit 2",
  async () => {
    // Listening without reusePort: no worker can join it.
    await using holder = new Server({ host: HOST, port: 0 });
    await holder.start();
    const child = await cli([
      "serve",
      "--workers",
      "2",
      "-p",
      String(holder.port),
    ]);
    try {
      await child.closeStdin();
      const code = await exitWithin(child, 15_000);
      const stderr = child.stderr();
      assert.equal(code, 2, `still running; stderr: ${stderr}`);
      for (const worker of [0, 1]) {
        assert.equal(
          stderr.split(`worker ${worker} exited (code 2)`).length - 1,
          DEFAULT_MAX_FAILURES,
          stderr,
        );
        assert.match(
          stderr,
          new RegExp(
            `worker ${worker} died ${DEFAULT_MAX_FAILURES} times in a row, .*not restarting it`,
          ),
        );
      }
      assert.match(stderr, /address in use/);
      assert.match(
        stderr,
        /tcp-framework: every worker died 5 times in a row; see their errors above\n$/,
      );
    } finally {
      await child.kill();
    }
  },
  { skip: reusePort },
);
