// One worker against two: `tcp-framework serve --workers N` (echo, this
// runtime) under the load generator (bench/load.ts, raw mode), N = 1 and 2 in
// alternating order, several rounds; prints each round and the medians.
//
//   deno run --allow-all bench/workers.ts [--rounds 4] [--seconds 5]
//       [--connections 16] [--inflight 16] [--size 64] [--pin]
//   bun bench/workers.ts ...
//
// --pin runs the load generator on CPU 0 and the workers on the others
// (taskset); without it the kernel places everything. Server CPU is the sum
// over the worker processes (Linux /proc). Linux only, as reusePort is.

import {
  cpuMs,
  exit,
  expectJson,
  freePort,
  killAll,
  println,
  readText,
  runtimeName,
  scriptArgs,
  sleep,
  spawnCommand,
} from "./_runtime.ts";

interface Result {
  messagesPerSecond: number;
  p50us: number;
  p99us: number;
  loadCpu: number;
}

const args = scriptArgs();
function option(name: string, fallback: number): number {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? Number(args[at + 1]) : fallback;
}
const ROUNDS = option("rounds", 4);
const SECONDS = option("seconds", 5);
const CONNECTIONS = option("connections", 16);
const INFLIGHT = option("inflight", 16);
const SIZE = option("size", 64);
const PIN = args.includes("--pin");
const CPUS = navigator.hardwareConcurrency;

const here = (path: string) =>
  decodeURIComponent(new URL(path, import.meta.url).pathname);
const exec = runtimeName === "deno"
  ? Deno.execPath()
  : (globalThis as unknown as { process: { execPath: string } }).process
    .execPath;
const run = (script: string, flags: string[]) =>
  runtimeName === "deno" ? [exec, "run", ...flags, script] : [exec, script];
const pin = (cpus: string, command: string[]) =>
  PIN ? ["taskset", "-c", cpus, ...command] : command;

function processKill(pid: number): void {
  (globalThis as unknown as {
    process: { kill(pid: number, signal: string): void };
  }).process.kill(pid, "SIGKILL");
}

/** Pids of a process's children (Linux). */
function children(pid: number): number[] {
  try {
    return readText(`/proc/${pid}/task/${pid}/children`).trim().split(/\s+/)
      .filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function round(workers: number): Promise<Result & { serverCpu: number }> {
  const port = freePort();
  const launcher = spawnCommand(pin(`1-${CPUS - 1}`, [
    ...run(here("../cli/main.ts"), [
      "--allow-net",
      "--allow-read",
      "--allow-run",
      "--allow-env",
    ]),
    "serve",
    "--workers",
    String(workers),
    "-p",
    String(port),
    "-q",
  ]));
  try {
    for (let up = 0; up < workers;) {
      const line = await launcher.line(15_000);
      if (line === undefined) throw new Error("the launcher exited");
      if (line.startsWith("listening on")) up++;
    }
    const pids = children(launcher.pid);
    const load = spawnCommand(pin("0", [
      ...run(here("./load.ts"), ["--allow-all"]),
      JSON.stringify({
        mode: "raw",
        port,
        serverPid: launcher.pid,
        connections: CONNECTIONS,
        inflight: INFLIGHT,
        size: SIZE,
        warmupMs: 1000,
        durationMs: SECONDS * 1000,
      }),
    ]));
    try {
      await sleep(1000); // the warm-up, then count the workers' CPU
      const before = pids.reduce((sum, pid) => sum + cpuMs(pid), 0);
      const started = performance.now();
      const { result } = await expectJson<{ result: Result }>(
        load,
        "result",
        SECONDS * 1000 + 30_000,
      );
      const serverCpu = (pids.reduce((sum, pid) => sum + cpuMs(pid), 0) -
        before) / (performance.now() - started);
      return { ...result, serverCpu };
    } finally {
      load.kill();
    }
  } finally {
    // The workers first: a launcher killed outright cannot stop them.
    for (const pid of children(launcher.pid)) {
      try {
        processKill(pid);
      } catch { /* gone */ }
    }
    launcher.kill();
  }
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

println(
  `workers bench (${runtimeName}, ${CPUS} CPUs${
    PIN ? ", load on CPU 0, workers on the rest" : ""
  }): raw ${CONNECTIONS} connections x ${INFLIGHT} in flight x ${SIZE} B, ${SECONDS} s, ${ROUNDS} rounds`,
);
const results: Record<number, Array<Result & { serverCpu: number }>> = {
  1: [],
  2: [],
};
try {
  for (let r = 0; r < ROUNDS; r++) {
    for (const workers of r % 2 === 0 ? [1, 2] : [2, 1]) {
      const result = await round(workers);
      results[workers].push(result);
      println(
        `round ${r + 1}, ${workers} worker(s): ${
          Math.round(result.messagesPerSecond)
        } msg/s, p50 ${result.p50us.toFixed(0)} us, p99 ${
          result.p99us.toFixed(0)
        } us, server CPU ${result.serverCpu.toFixed(2)}, load CPU ${
          result.loadCpu.toFixed(2)
        }`,
      );
    }
  }
  for (const workers of [1, 2]) {
    const list = results[workers];
    println(
      `median, ${workers} worker(s): ${
        Math.round(median(list.map((r) => r.messagesPerSecond)))
      } msg/s, p50 ${median(list.map((r) => r.p50us)).toFixed(0)} us, p99 ${
        median(list.map((r) => r.p99us)).toFixed(0)
      } us, server CPU ${
        median(list.map((r) => r.serverCpu)).toFixed(2)
      }, load CPU ${median(list.map((r) => r.loadCpu)).toFixed(2)}`,
    );
  }
} finally {
  killAll();
}
exit(0);
