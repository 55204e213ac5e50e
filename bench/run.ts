// End-to-end benchmark runner: `deno task bench` or `bun bench/run.ts`.
//
// Starts every echo server (each its own process): the raw baseline, the
// framework's Server on protocols 3 and 2, the Node.js 2.0.10 package on
// protocol 2 (run by `node`), and the codec's streams composed into an echo
// server. For every workload it runs the load generator (a process of its
// own, fresh each round) against each server in turn, several rounds, the
// order rotating every round so no server always goes first. Reports the
// median of the rounds and, per server, the ratio to the raw server and to
// the Node.js package from the same run; then a client-side comparison (the
// framework's Client against a raw client, both driving the raw server), and
// resident memory. Last, the peer users would pick instead: the framework's
// npm build against a gRPC echo (@grpc/grpc-js), both on Node.js, server and
// load generator each a process of its own. Prints tables and writes JSON to
// .bench/results-<runtime>.json. See bench/README.md.
//
// Options: --rounds=N (default 3), --seconds=S per round (default 1.2),
// --warmup=S (default 0.3), --only=<substring of workload names>,
// --servers=<comma-separated keys, default all>, --no-client, --no-memory,
// --no-grpc, --grpc-only (the gRPC table alone).

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
  spawnCommand,
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
const GRPC_ONLY = flag("grpc-only");

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

/** The request/reply shapes that map onto gRPC unary calls. */
const RPC_WORKLOADS: Workload[] = [
  { name: "1 × 1 × 64 B", connections: 1, inflight: 1, size: 64 },
  { name: "1 × 64 × 64 B", connections: 1, inflight: 64, size: 64 },
  { name: "32 × 16 × 64 B", connections: 32, inflight: 16, size: 64 },
  { name: "1 × 1 × 16 KiB", connections: 1, inflight: 1, size: 16 * KiB },
  { name: "1 × 64 × 16 KiB", connections: 1, inflight: 64, size: 16 * KiB },
  { name: "32 × 16 × 16 KiB", connections: 32, inflight: 16, size: 16 * KiB },
];
// gRPC's client takes seconds of calls to reach its pace (Node.js 20: about
// 2,600 msg/s at 1 × 64 × 64 B after 0.3 s, 4,500 after 1 s, 5,000 after 2
// s), so each side's load process first makes calls this long (64 in flight
// on one connection, whatever the first workload), then is kept for the
// whole table.
const RPC_WARMUP_MS = 2000;

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

/** An echo server of the comparison. */
interface ServerSpec {
  key: string;
  label: string;
  protocol: 2 | 3;
  /** Only under this runtime (a row about one engine's setting). */
  runtime?: "deno" | "bun";
  spawn(): Child;
}

const script = (file: string, ...args: string[]) => () =>
  spawnScript(here(file), args, SERVER_FLAGS);

const SERVERS: ServerSpec[] = [
  {
    key: "raw",
    label: "raw socket",
    protocol: 3,
    spawn: script("./raw_echo_server.ts"),
  },
  {
    key: "framework",
    label: "framework Server",
    protocol: 3,
    spawn: script("./framework_echo_server.ts"),
  },
  {
    key: "framework-optin",
    label: "framework Server, borrowPayloads + transfer",
    protocol: 3,
    spawn: script("./framework_echo_server.ts", "--borrow-transfer"),
  },
  {
    // V8 starts a major GC whenever payload memory that died young piles up
    // 40 MB past the live heap; a larger first old-space limit leaves that
    // memory to the scavenges (docs/performance.md). Deno only: a V8 flag.
    key: "framework-oldspace",
    label: "framework Server, V8 --initial-old-space-size=64",
    protocol: 3,
    runtime: "deno",
    spawn: () =>
      spawnScript(
        here("./framework_echo_server.ts"),
        [],
        SERVER_FLAGS.map((flag) =>
          flag.startsWith("--v8-flags=")
            ? `${flag},--initial-old-space-size=64`
            : flag
        ),
      ),
  },
  {
    key: "framework-p2",
    label: "framework Server, protocol 2",
    protocol: 2,
    spawn: script("./framework_echo_server.ts", "--protocol=2"),
  },
  {
    key: "frame-stream",
    label: "frameStream(conn) echo",
    protocol: 3,
    spawn: script("./stream_echo_server.ts", "--frame-stream"),
  },
  {
    key: "node",
    label: "Node.js 2.0.10 package, protocol 2",
    protocol: 2,
    spawn: () =>
      spawnCommand(["node", "--expose-gc", here("./node_v2_echo_server.cjs")]),
  },
  {
    key: "streams",
    label: "codec streams",
    protocol: 3,
    spawn: script("./stream_echo_server.ts"),
  },
];

async function startServer(
  spawn: (() => Child) | string,
): Promise<Server> {
  const child = typeof spawn === "string" ? script(spawn)() : spawn();
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
  protocol: 2 | 3 = 3,
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
    protocol,
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

interface ServerRow {
  workload: string;
  /** Per server key: medians over the rounds. */
  servers: Record<string, Summary>;
  /** Per server key: its msg/s over the raw server's, same run. */
  toRaw: Record<string, number>;
  /** Per server key: its msg/s over the Node.js package's, same run. */
  toNode: Record<string, number>;
}

/**
 * Runs `ROUNDS` rounds of every server on one workload; each round visits
 * them all, starting one further along than the round before.
 */
async function measureAll(
  workload: Workload,
  running: Array<{ spec: ServerSpec; server: Server }>,
): Promise<ServerRow> {
  const rounds: Record<string, Result[]> = {};
  for (const { spec } of running) rounds[spec.key] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < running.length; i++) {
      const { spec, server } = running[(i + round) % running.length];
      rounds[spec.key].push(
        await runLoad("raw", server, workload, spec.protocol),
      );
    }
  }
  const servers: Record<string, Summary> = {};
  for (const key in rounds) servers[key] = summarize(rounds[key]);
  const ratioTo = (baseline: string) => {
    const ratios: Record<string, number> = {};
    const base = servers[baseline]?.messagesPerSecond;
    if (base === undefined) return ratios;
    for (const key in servers) {
      ratios[key] = servers[key].messagesPerSecond / base;
    }
    return ratios;
  };
  return {
    workload: workload.name,
    servers,
    toRaw: ratioTo("raw"),
    toNode: ratioTo("node"),
  };
}

/** One side of the gRPC comparison: its server and its load generator. */
interface RpcSide {
  name: string;
  server: Server;
  load: Child;
}

/** A round's result, and the connections its server held meanwhile. */
interface RpcResult extends Result {
  serverConnections: number;
  serverConnectionsFromLoad: number;
}

const RPC_SIDES = ["framework", "grpc"] as const;

/**
 * Starts one side's echo server and load generator, both on Node.js.
 * @throws {Error} If either does not start (Node.js or @grpc/grpc-js
 * missing).
 */
async function startRpcSide(side: typeof RPC_SIDES[number]): Promise<RpcSide> {
  const server = await startServer(() =>
    spawnCommand(["node", here("./node_rpc_echo_server.mjs"), side])
  );
  try {
    const load = spawnCommand([
      "node",
      here("./node_rpc_load.mjs"),
      side,
      String(server.port),
      String(server.child.pid),
    ]);
    try {
      await expectJson(load, "ready", 15_000);
    } catch (error) {
      load.kill();
      throw error;
    }
    return { name: side, server, load };
  } catch (error) {
    await stopServer(server);
    throw error;
  }
}

/** Calls for RPC_WARMUP_MS: a round like the others, its result dropped. */
async function warmUp(side: RpcSide): Promise<void> {
  await rpcRound(side, {
    name: "warm-up",
    connections: 1,
    inflight: 64,
    size: 64,
  }, Math.max(0, RPC_WARMUP_MS - DURATION_MS));
}

async function stopRpcSide(side: RpcSide): Promise<void> {
  await side.load.closeStdin();
  await Promise.race([side.load.exited, sleep(5000)]);
  side.load.kill();
  await stopServer(side.server);
}

/** One round of `workload` on one side. */
async function rpcRound(
  side: RpcSide,
  workload: Workload,
  warmupMs = WARMUP_MS,
): Promise<Result> {
  await side.load.send(JSON.stringify({
    connections: workload.connections,
    inflight: workload.inflight,
    size: workload.size,
    warmupMs,
    durationMs: DURATION_MS,
  }));
  const { result } = await expectJson<{ result: RpcResult }>(
    side.load,
    "result",
    warmupMs + DURATION_MS + 40_000,
  );
  if (result.messages === 0) throw new Error("no reply in the window");
  // What the server holds, not what the client asked for: grpc-js channels
  // to one target share a connection unless told otherwise.
  if (result.serverConnectionsFromLoad !== workload.connections) {
    throw new Error(
      `${side.name} ${workload.name}: the server had ${result.serverConnectionsFromLoad} connections from the load generator, not ${workload.connections}`,
    );
  }
  const others = result.serverConnections - result.serverConnectionsFromLoad;
  if (others > 0) {
    console.error(
      `  (${side.name} ${workload.name}: ${others} more connections to the server, from another process)`,
    );
  }
  return result;
}

/** Builds the npm package into npm/, which the framework side runs. */
async function buildNpm(): Promise<void> {
  const build = spawnCommand(["node", here("../tools/build-npm.mjs")]);
  // Read its output to the end, so a long error cannot fill the pipe.
  for (let i = 0; i < 10_000; i++) {
    const line = await build.line(120_000);
    if (line === undefined) break;
    console.error(`  build-npm: ${line}`);
  }
  const code = await build.exited;
  if (code !== 0) throw new Error(`tools/build-npm.mjs exited with ${code}`);
}

/**
 * The framework's npm build against @grpc/grpc-js, both on Node.js, on every
 * RPC workload; undefined (with the reason printed) when Node.js or gRPC is
 * missing.
 */
async function measureGrpc(): Promise<Comparison[] | undefined> {
  const workloads = RPC_WORKLOADS.filter((workload) =>
    !ONLY || workload.name.includes(ONLY)
  );
  if (workloads.length === 0) return [];
  const sides: Partial<Record<typeof RPC_SIDES[number], RpcSide>> = {};
  try {
    await buildNpm();
    for (const side of RPC_SIDES) sides[side] = await startRpcSide(side);
  } catch (error) {
    console.log(
      `(skipped: gRPC comparison, Node.js did not run it: ${error}; it needs \`node\` and \`npm ci --prefix tools\`)`,
    );
    for (const side of Object.values(sides)) await stopRpcSide(side);
    return undefined;
  }
  const { framework, grpc } = sides as Record<
    typeof RPC_SIDES[number],
    RpcSide
  >;
  try {
    await warmUp(framework);
    await warmUp(grpc);
    const rows: Comparison[] = [];
    for (const workload of workloads) {
      rows.push(
        await compare(
          workload,
          () => rpcRound(framework, workload),
          () => rpcRound(grpc, workload),
        ),
      );
      console.error(`  done: gRPC ${workload.name}`);
    }
    return rows;
  } finally {
    await stopRpcSide(framework);
    await stopRpcSide(grpc);
  }
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
  // The server's CPU time per message: where the cost lives, whatever the
  // load generator or the machine's other work could do to msg/s.
  cpuPerMessage: (cpu: number, perSecond: number) =>
    perSecond > 0 ? `${(cpu * 1e6 / perSecond).toFixed(2)} µs` : "–",
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

function serverTable(
  rows: ServerRow[],
  specs: ServerSpec[],
): string {
  const header = [
    "workload",
    "server",
    "msg/s",
    "MB/s",
    "p50 / p99",
    "CPU load / server",
    "server CPU / msg",
    "× raw",
    "× Node.js 2.0.10",
  ];
  const out = [
    `\n### Servers (same raw load generator; ratios from the same run)\n`,
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
  ];
  for (const row of rows) {
    for (const spec of specs) {
      const summary = row.servers[spec.key];
      if (!summary) continue;
      const toRaw = row.toRaw[spec.key];
      const toNode = row.toNode[spec.key];
      out.push(`| ${
        [
          row.workload,
          spec.label,
          fmt.count(summary.messagesPerSecond),
          fmt.mb(summary.megabytesPerSecond),
          `${fmt.us(summary.p50us)} / ${fmt.us(summary.p99us)}`,
          `${fmt.pct(summary.loadCpu)} / ${fmt.pct(summary.serverCpu)}`,
          fmt.cpuPerMessage(summary.serverCpu, summary.messagesPerSecond),
          toRaw === undefined ? "–" : fmt.ratio(toRaw),
          toNode === undefined ? "–" : fmt.ratio(toNode),
        ].join(" | ")
      } |`);
    }
  }
  return out.join("\n");
}

/** The gRPC comparison: msg/s, ratio, latency, CPU per message each side. */
function grpcTable(rows: Comparison[]): string {
  const header = [
    "workload",
    "framework msg/s",
    "gRPC msg/s",
    "framework ÷ gRPC",
    "framework p50 / p99",
    "gRPC p50 / p99",
    "framework CPU / msg, client + server",
    "gRPC CPU / msg, client + server",
  ];
  const cpu = (summary: Summary) =>
    `${fmt.cpuPerMessage(summary.loadCpu, summary.messagesPerSecond)} + ${
      fmt.cpuPerMessage(summary.serverCpu, summary.messagesPerSecond)
    }`;
  const out = [
    `\n### Node.js: the framework's npm build vs gRPC (@grpc/grpc-js unary calls)\n`,
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
  ];
  for (const row of rows) {
    out.push(`| ${
      [
        row.workload,
        fmt.count(row.subject.messagesPerSecond),
        fmt.count(row.baseline.messagesPerSecond),
        fmt.ratio(row.ratio),
        `${fmt.us(row.subject.p50us)} / ${fmt.us(row.subject.p99us)}`,
        `${fmt.us(row.baseline.p50us)} / ${fmt.us(row.baseline.p99us)}`,
        cpu(row.subject),
        cpu(row.baseline),
      ].join(" | ")
    } |`);
  }
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

/** The servers' table, then the client's (unless `--no-client`). */
async function measureServers(
  results: Record<string, unknown>,
): Promise<void> {
  const wanted = option("servers", "");
  const specs = SERVERS.filter((spec) =>
    (spec.runtime === undefined || spec.runtime === runtimeName) &&
    (spec.key === "raw" || !wanted || wanted.split(",").includes(spec.key))
  );
  const running: Array<{ spec: ServerSpec; server: Server }> = [];
  try {
    for (const spec of specs) {
      try {
        running.push({ spec, server: await startServer(spec.spawn) });
      } catch (error) {
        // Only the Node.js package needs a tool besides this runtime.
        if (spec.key !== "node") throw error;
        console.log(
          `(skipped: ${spec.label}, Node.js did not start it: ${error})`,
        );
      }
    }
    const raw = running[0].server;
    const server: ServerRow[] = [];
    for (const workload of SERVER_WORKLOADS) {
      if (ONLY && !workload.name.includes(ONLY)) continue;
      server.push(await measureAll(workload, running));
      console.error(`  done: server ${workload.name}`);
    }
    results.server = server;
    if (server.length) {
      console.log(serverTable(server, running.map(({ spec }) => spec)));
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
    for (const { server } of running) await stopServer(server);
  }
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
  if (!GRPC_ONLY) await measureServers(results);
  if (!flag("no-grpc")) {
    const grpc = await measureGrpc();
    if (grpc) results.grpc = grpc;
    if (grpc?.length) console.log(grpcTable(grpc));
  }
  if (!GRPC_ONLY && !flag("no-memory")) {
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
