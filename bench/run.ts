// End-to-end benchmark runner: `deno task bench` or `bun bench/run.ts`.
//
// Starts the framework's echo server and the raw baseline server (each its
// own process), then for every workload runs the load generator (a third
// process, fresh each round) against one and then the other, alternating,
// several rounds each. Reports the median of the rounds, the
// framework/baseline ratios, a client-side comparison (the framework's Client
// against a raw client, both driving the raw server), and resident memory.
// Prints a table and writes JSON to .bench/results-<runtime>.json.
//
// Options: --rounds=N (default 3), --seconds=S per round (default 1.2),
// --warmup=S (default 0.3), --only=<substring of workload names>,
// --no-client, --no-memory.

import {
  type Child,
  exit,
  expectJson,
  freePort,
  killAll,
  readText,
  runtimeName,
  runtimeVersion,
  scriptArgs,
  sleep,
  spawnScript,
  writeText,
} from "./_runtime.ts";

const here = (file: string) => new URL(file, import.meta.url).pathname;
// Deno 2 grants /proc (CPU time, resident memory) only with --allow-all.
const SERVER_FLAGS = ["--allow-all", "--v8-flags=--expose-gc"];
const LOAD_FLAGS = SERVER_FLAGS;

function option(name: string, fallback: string): string {
  const prefix = `--${name}=`;
  return scriptArgs().find((arg) => arg.startsWith(prefix))?.slice(
    prefix.length,
  ) ?? fallback;
}
const flag = (name: string) => scriptArgs().includes(`--${name}`);

const ROUNDS = Math.max(1, Math.min(20, Number(option("rounds", "3"))));
const DURATION_MS = Math.max(200, Number(option("seconds", "1.2")) * 1000);
const WARMUP_MS = Math.max(0, Number(option("warmup", "0.3")) * 1000);
const ONLY = option("only", "");

interface Workload {
  name: string;
  connections: number;
  inflight: number;
  size: number;
}

const KiB = 1024;
const MiB = 1024 * 1024;
const SERVER_WORKLOADS: Workload[] = [
  { name: "1 × 64 × 64 B", connections: 1, inflight: 64, size: 64 },
  { name: "32 × 16 × 64 B", connections: 32, inflight: 16, size: 64 },
  { name: "1 × 1 × 64 B (latency)", connections: 1, inflight: 1, size: 64 },
  { name: "4 × 8 × 16 KiB", connections: 4, inflight: 8, size: 16 * KiB },
  { name: "1 × 2 × 1 MiB", connections: 1, inflight: 2, size: MiB },
];
const CLIENT_WORKLOADS: Array<Workload & { mode: string }> = [
  {
    name: "Client.send 1 × 64 × 64 B",
    mode: "client-send",
    connections: 1,
    inflight: 64,
    size: 64,
  },
  {
    name: "Client.request 1 × 64 × 64 B",
    mode: "client-request",
    connections: 1,
    inflight: 64,
    size: 64,
  },
  {
    name: "Client.request 1 × 1 × 64 B",
    mode: "client-request",
    connections: 1,
    inflight: 1,
    size: 64,
  },
  {
    name: "Client.send 4 × 8 × 16 KiB",
    mode: "client-send",
    connections: 4,
    inflight: 8,
    size: 16 * KiB,
  },
];

interface Result {
  messagesPerSecond: number;
  megabytesPerSecond: number;
  p50us: number;
  p99us: number;
  messages: number;
  seconds: number;
  loadCpu: number;
  serverCpu: number;
  unanswered: number;
}

interface Server {
  child: Child;
  port: number;
}

async function startServer(script: string): Promise<Server> {
  const child = spawnScript(here(script), [], SERVER_FLAGS);
  const { port } = await expectJson<{ port: number }>(child, "port", 15_000);
  return { child, port };
}

async function stopServer(server: Server): Promise<void> {
  await server.child.closeStdin();
  const exited = await Promise.race([
    server.child.exited.then(() => true),
    sleep(3000).then(() => false),
  ]);
  if (!exited) server.child.kill();
}

async function runLoad(
  mode: string,
  server: Server,
  workload: Workload,
): Promise<Result> {
  const child = spawnScript(here("./load.ts"), [JSON.stringify({
    mode,
    port: server.port,
    serverPid: server.child.pid,
    connections: workload.connections,
    inflight: workload.inflight,
    size: workload.size,
    warmupMs: WARMUP_MS,
    durationMs: DURATION_MS,
  })], LOAD_FLAGS);
  try {
    const { result } = await expectJson<{ result: Result }>(
      child,
      "result",
      WARMUP_MS + DURATION_MS + 20_000,
    );
    if (result.messages === 0) throw new Error("no reply in the window");
    await Promise.race([child.exited, sleep(5000)]);
    return result;
  } finally {
    child.kill();
  }
}

function median(values: number[]): number {
  const sorted = values.filter((value) => !Number.isNaN(value)).sort((a, b) =>
    a - b
  );
  if (sorted.length === 0) return NaN;
  const middle = sorted.length >> 1;
  return sorted.length % 2
    ? sorted[middle]
    : (sorted[middle - 1] + sorted[middle]) / 2;
}

interface Summary {
  messagesPerSecond: number;
  megabytesPerSecond: number;
  p50us: number;
  p99us: number;
  loadCpu: number;
  serverCpu: number;
  rounds: Result[];
}

function summarize(rounds: Result[]): Summary {
  const of = (key: keyof Result) => median(rounds.map((round) => round[key]));
  return {
    messagesPerSecond: of("messagesPerSecond"),
    megabytesPerSecond: of("megabytesPerSecond"),
    p50us: of("p50us"),
    p99us: of("p99us"),
    loadCpu: of("loadCpu"),
    serverCpu: of("serverCpu"),
    rounds,
  };
}

interface Comparison {
  workload: string;
  subject: Summary;
  baseline: Summary;
  /** subject/baseline messages per second. */
  ratio: number;
  /** subject/baseline p50 latency. */
  p50Ratio: number;
}

/** Runs `rounds` of A and B alternately (ABAB…, swapping who goes first). */
async function compare(
  workload: Workload,
  a: () => Promise<Result>,
  b: () => Promise<Result>,
): Promise<Comparison> {
  const subject: Result[] = [];
  const baseline: Result[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    if (round % 2 === 0) {
      subject.push(await a());
      baseline.push(await b());
    } else {
      baseline.push(await b());
      subject.push(await a());
    }
  }
  const s = summarize(subject);
  const r = summarize(baseline);
  return {
    workload: workload.name,
    subject: s,
    baseline: r,
    ratio: s.messagesPerSecond / r.messagesPerSecond,
    p50Ratio: s.p50us / r.p50us,
  };
}

const fmt = {
  count: (n: number) =>
    n >= 1e6
      ? `${(n / 1e6).toFixed(2)} M`
      : n >= 1e3
      ? `${(n / 1e3).toFixed(1)} k`
      : n.toFixed(0),
  mb: (n: number) => n.toFixed(n >= 100 ? 0 : 1),
  us: (n: number) =>
    n >= 10_000 ? `${(n / 1000).toFixed(1)} ms` : `${n.toFixed(0)} µs`,
  ratio: (n: number) => n.toFixed(2),
  pct: (n: number) => `${(n * 100).toFixed(0)}%`,
};

function table(
  title: string,
  subjectName: string,
  baselineName: string,
  rows: Comparison[],
): string {
  const header = [
    "workload",
    `${subjectName} msg/s`,
    `${baselineName} msg/s`,
    "ratio",
    `${subjectName} MB/s`,
    `${baselineName} MB/s`,
    `${subjectName} p50 / p99`,
    `${baselineName} p50 / p99`,
    "p50 ratio",
    "CPU load / server",
  ];
  const lines = rows.map((row) => [
    row.workload,
    fmt.count(row.subject.messagesPerSecond),
    fmt.count(row.baseline.messagesPerSecond),
    fmt.ratio(row.ratio),
    fmt.mb(row.subject.megabytesPerSecond),
    fmt.mb(row.baseline.megabytesPerSecond),
    `${fmt.us(row.subject.p50us)} / ${fmt.us(row.subject.p99us)}`,
    `${fmt.us(row.baseline.p50us)} / ${fmt.us(row.baseline.p99us)}`,
    fmt.ratio(row.p50Ratio),
    `${fmt.pct(row.subject.loadCpu)} / ${fmt.pct(row.subject.serverCpu)}, ${
      fmt.pct(row.baseline.loadCpu)
    } / ${fmt.pct(row.baseline.serverCpu)}`,
  ]);
  const all = [header, ...lines];
  const out = [`\n### ${title}\n`];
  out.push(`| ${header.join(" | ")} |`);
  out.push(`| ${header.map(() => "---").join(" | ")} |`);
  for (const line of all.slice(1)) out.push(`| ${line.join(" | ")} |`);
  return out.join("\n");
}

interface Memory {
  idleConnections: number;
  server: Record<
    "framework" | "raw",
    {
      rssBefore: number;
      rssWith: number;
      perConnection: number;
      heapPerConnection: number;
      externalPerConnection: number;
    }
  >;
  clientQueue: Array<{
    size: number;
    queued: number;
    refused: number;
    bufferedBytes: number;
    rssBefore: number;
    rssFull: number;
    rssAfter: number;
  }>;
}

interface MemoryReport {
  rss: number;
  heapUsed: number;
  external: number;
}

async function memoryOf(server: Server): Promise<MemoryReport> {
  await server.child.send("rss");
  return await expectJson<MemoryReport>(server.child, "rss", 10_000);
}

async function idleMemory(script: string, count: number) {
  const server = await startServer(script);
  try {
    await sleep(300);
    const before = await memoryOf(server);
    const holder = spawnScript(here("./load.ts"), [JSON.stringify({
      mode: "idle",
      port: server.port,
      connections: count,
    })], LOAD_FLAGS);
    try {
      await expectJson(holder, "open", 30_000);
      await sleep(500);
      const after = await memoryOf(server);
      await holder.closeStdin();
      await Promise.race([holder.exited, sleep(5000)]);
      return {
        rssBefore: before.rss,
        rssWith: after.rss,
        perConnection: (after.rss - before.rss) / count,
        heapPerConnection: (after.heapUsed - before.heapUsed) / count,
        externalPerConnection: (after.external - before.external) / count,
      };
    } finally {
      holder.kill();
    }
  } finally {
    await stopServer(server);
  }
}

async function clientQueueMemory(size: number) {
  const port = freePort();
  const child = spawnScript(here("./load.ts"), [JSON.stringify({
    mode: "client-queue",
    port,
    size,
  })], LOAD_FLAGS);
  try {
    const { queue } = await expectJson<{ queue: Memory["clientQueue"][0] }>(
      child,
      "queue",
      60_000,
    );
    await Promise.race([child.exited, sleep(5000)]);
    return queue;
  } finally {
    child.kill();
  }
}

function machine() {
  let cpu = "unknown";
  let cores = 0;
  try {
    const info = readText("/proc/cpuinfo");
    cpu = /model name\s*:\s*(.*)/.exec(info)?.[1] ?? cpu;
    cores = (info.match(/^processor\s*:/gm) ?? []).length;
  } catch { /* not Linux */ }
  return {
    runtime: runtimeVersion(),
    cpu,
    cores: cores ||
      (globalThis.navigator as { hardwareConcurrency?: number })
        ?.hardwareConcurrency,
  };
}

async function main(): Promise<void> {
  const started = performance.now();
  const info = machine();
  console.log(
    `# @qtk/tcp-framework benchmark — ${info.runtime}, ${info.cores} cores, ${info.cpu}`,
  );
  console.log(
    `${ROUNDS} rounds of ${DURATION_MS} ms (+${WARMUP_MS} ms warm-up) per side and workload; medians`,
  );
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine: info,
    rounds: ROUNDS,
    durationMs: DURATION_MS,
    warmupMs: WARMUP_MS,
  };
  const framework = await startServer("./framework_echo_server.ts");
  const raw = await startServer("./raw_echo_server.ts");
  try {
    const server: Comparison[] = [];
    for (const workload of SERVER_WORKLOADS) {
      if (ONLY && !workload.name.includes(ONLY)) continue;
      server.push(
        await compare(
          workload,
          () => runLoad("raw", framework, workload),
          () => runLoad("raw", raw, workload),
        ),
      );
      console.error(`  done: server ${workload.name}`);
    }
    results.server = server;
    if (server.length) {
      console.log(table(
        "Server: framework Server vs raw echo server (same raw load generator)",
        "framework",
        "raw",
        server,
      ));
    }
    if (!flag("no-client")) {
      const client: Comparison[] = [];
      for (const workload of CLIENT_WORKLOADS) {
        if (ONLY && !workload.name.includes(ONLY)) continue;
        client.push(
          await compare(
            workload,
            () => runLoad(workload.mode, raw, workload),
            () => runLoad("raw", raw, workload),
          ),
        );
        console.error(`  done: ${workload.name}`);
      }
      results.client = client;
      if (client.length) {
        console.log(table(
          "Client: framework Client vs raw client (both against the raw server)",
          "Client",
          "raw client",
          client,
        ));
      }
    }
  } finally {
    await stopServer(framework);
    await stopServer(raw);
  }
  if (!flag("no-memory")) {
    const count = 1000;
    const memory: Memory = {
      idleConnections: count,
      server: {
        framework: await idleMemory("./framework_echo_server.ts", count),
        raw: await idleMemory("./raw_echo_server.ts", count),
      },
      clientQueue: [
        await clientQueueMemory(64),
        await clientQueueMemory(16 * KiB),
      ],
    };
    results.memory = memory;
    const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
    const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
    console.log(`\n### Memory (resident, after GC)\n`);
    for (const name of ["framework", "raw"] as const) {
      const m = memory.server[name];
      const per = kib(m.perConnection);
      const heap = kib(m.heapPerConnection);
      const external = kib(m.externalPerConnection);
      const rss = `${mib(m.rssBefore)} → ${mib(m.rssWith)}`;
      console.log(
        `- ${name} server, ${count} idle connections: ${rss}, ${per} per connection (JS heap ${heap}, buffers ${external})`,
      );
    }
    for (const q of memory.clientQueue) {
      const grew = q.rssFull - q.rssBefore;
      const each = (Math.max(0, grew) / q.queued).toFixed(0);
      const rss = `${mib(q.rssBefore)} → ${mib(q.rssFull)}`;
      console.log(
        `- Client, full queue of ${q.size} B messages: ${q.queued} queued (${
          mib(q.bufferedBytes)
        } buffered), ${rss} (+${
          mib(grew)
        }, ${each} B per message); ${q.refused} more sends refused with BufferFullError, then ${
          mib(q.rssAfter)
        }`,
      );
    }
  }
  const file = `.bench/results-${runtimeName}.json`;
  writeText(file, JSON.stringify(results, null, 2) + "\n");
  console.log(
    `\nWrote ${file} in ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
}

// A watchdog: the whole run is bounded, and no child outlives it.
const watchdog = setTimeout(() => {
  console.error("bench: over 15 minutes, giving up");
  killAll();
  exit(2);
}, 15 * 60 * 1000);

let code = 0;
try {
  await main();
} catch (error) {
  console.error("bench failed:", error);
  code = 1;
} finally {
  clearTimeout(watchdog);
  killAll();
}
exit(code);
