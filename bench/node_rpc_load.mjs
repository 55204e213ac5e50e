// The load generator of the gRPC comparison, run by Node.js: request/reply
// calls through each side's own client, with the same shape for both.
//
// Usage: node bench/node_rpc_load.mjs framework|grpc <port> <server pid>
// - "grpc": @grpc/grpc-js channels made by makeGenericClientConstructor from
//   the plain service definition (bench/_node_grpc.mjs), each with a
//   subchannel pool of its own so that it has a connection of its own
//   (grpc-js otherwise shares one connection between the channels to a
//   target); unary calls, callback style as grpc-js has them.
// - "framework": Clients of the framework's npm build (npm/), one connection
//   each; `client.request()` calls, which correlate replies by uuid as a
//   unary call does.
//
// The process lives for the whole table, as its server does, so that the
// JIT's warm-up is paid once rather than every round: gRPC's client takes
// seconds of calls to reach its pace, far longer than a round's warm-up.
// Prints {"ready": true}; then each stdin line {connections, inflight, size,
// warmupMs, durationMs} is one round: with `connections` connections open
// (kept from the round before when the count is the same), each keeps
// `inflight` calls outstanding, starting the next as one completes; replies
// are counted in a `durationMs` window after `warmupMs`, then the calls stop
// and drain, so the process is idle while the other side is measured. Every
// reply's length and last byte are checked against the request's. A round
// prints one line {"result": …} with the fields of bench/run.ts's Result,
// plus what the server process held during the window (its sockets in
// /proc/<pid>/fd, established on its port in /proc/net/tcp):
// `serverConnections`, and `serverConnectionsFromLoad`, those whose other end
// is a socket of this process, for the runner to check that they are
// `connections`. Exits when stdin ends.

import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { createInterface } from "node:readline";
import { ECHO_SERVICE, loadGrpc } from "./_node_grpc.mjs";

// Imported when run, not when `deno check` reads this file: npm/ is a build
// output (bench/run.ts builds it first).
const { Histogram } = await import("../npm/cli/_histogram.js");

const HOST = "127.0.0.1";
const side = process.argv[2];
const port = Number(process.argv[3]);
const serverPid = Number(process.argv[4]);
if (side !== "framework" && side !== "grpc") {
  throw new TypeError(`Expected "framework" or "grpc", got "${side}"`);
}

/** The current round's counters and request bytes. */
let round;

function newRound(size) {
  // The same bytes for both sides; the last one is checked in every reply.
  const payload = Buffer.alloc(size);
  for (let i = 0; i < size; i++) payload[i] = i & 0xff;
  return {
    payload,
    size,
    lastByte: payload[size - 1],
    running: true,
    measuring: false,
    windowStart: Infinity,
    completed: 0,
    outstanding: 0,
    latency: new Histogram(),
  };
}

function fail(error) {
  console.error(`load (${side}):`, error);
  process.exit(1);
}

/** Counts one reply; false once the round is over (start no other call). */
function replied(reply, sentAt) {
  round.outstanding--;
  if (reply.length !== round.size || reply[round.size - 1] !== round.lastByte) {
    fail(new Error(`a ${reply.length} B reply to a ${round.size} B request`));
  }
  if (round.measuring) {
    round.completed++;
    const now = performance.now();
    if (sentAt >= round.windowStart) round.latency.record(now - sentAt);
  }
  return round.running;
}

/** One connection: `start(n)` begins n chains of calls; `close()`. */
async function grpcConnection() {
  const grpc = loadGrpc();
  const Echo = grpc.makeGenericClientConstructor(ECHO_SERVICE, "Echo");
  const client = new Echo(
    `${HOST}:${port}`,
    grpc.credentials.createInsecure(),
    { "grpc.use_local_subchannel_pool": 1 },
  );
  await new Promise((resolve, reject) => {
    client.waitForReady(
      Date.now() + 10_000,
      (error) => error ? reject(error) : resolve(),
    );
  });
  const call = () => {
    const sentAt = performance.now();
    round.outstanding++;
    client.echo(round.payload, (error, reply) => {
      if (error) fail(error);
      else if (replied(reply, sentAt)) call();
    });
  };
  return {
    start(count) {
      for (let i = 0; i < count; i++) call();
    },
    close: () => client.close(),
  };
}

async function frameworkConnection() {
  const { Client } = await import("../npm/mod.js");
  const client = new Client({ host: HOST, port, reconnect: false });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no connection")), 10_000);
    client.once("connected", () => {
      clearTimeout(timer);
      resolve();
    });
    client.once("exception", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
  client.on("exception", fail);
  const chain = async () => {
    while (true) {
      const sentAt = performance.now();
      round.outstanding++;
      const reply = await client.request(round.payload, { timeout: 10_000 });
      if (!replied(reply, sentAt)) return;
    }
  };
  return {
    start(count) {
      for (let i = 0; i < count; i++) chain().catch(fail);
    },
    close: () => client.close(),
  };
}

/** CPU time (user + system, all threads) of a process, in ms. */
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The inodes of a process's sockets, from its file descriptors. */
function socketInodes(pid) {
  const inodes = new Set();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(
        readlinkSync(`/proc/${pid}/fd/${fd}`),
      );
      if (match) inodes.add(match[1]);
    } catch { /* closed meanwhile */ }
  }
  return inodes;
}

/** Established TCP sockets (IPv4 and IPv6): local and remote port, inode. */
function establishedSockets() {
  const sockets = [];
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let table;
    try {
      table = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of table.split("\n").slice(1)) {
      // local "ADDRESS:PORT", remote "ADDRESS:PORT", state (01 is
      // ESTABLISHED), then the inode in the tenth field.
      const fields = line.trim().split(/\s+/);
      if (fields[3] !== "01") continue;
      const portOf = (address) => parseInt(address.slice(-4), 16);
      sockets.push({
        local: portOf(fields[1]),
        remote: portOf(fields[2]),
        inode: fields[9],
      });
    }
  }
  return sockets;
}

/**
 * The connections the server process holds on its port: all of them, and
 * those whose other end is a socket of this process (the rest come from
 * elsewhere on a shared machine).
 */
function serverConnections() {
  const sockets = establishedSockets();
  const mine = socketInodes("self");
  const theirs = socketInodes(serverPid);
  const myPorts = new Set(
    sockets.filter((s) => mine.has(s.inode) && s.remote === port)
      .map((s) => s.local),
  );
  const held = sockets.filter((s) => theirs.has(s.inode) && s.local === port);
  return {
    all: held.length,
    fromThisLoad: held.filter((s) => myPorts.has(s.remote)).length,
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let connections = [];

async function measure(
  { connections: count, inflight, size, warmupMs, durationMs },
) {
  if (connections.length !== count) {
    await Promise.allSettled(
      connections.map((connection) => connection.close()),
    );
    const open = side === "grpc" ? grpcConnection : frameworkConnection;
    connections = await Promise.all(Array.from({ length: count }, open));
  }
  round = newRound(size);
  for (const connection of connections) connection.start(inflight);
  await sleep(warmupMs);
  round.measuring = true;
  const cpuStart = cpuMs("self");
  const serverCpuStart = cpuMs(serverPid);
  const start = round.windowStart = performance.now();
  const connectionsSeen = serverConnections();
  await sleep(durationMs);
  round.measuring = false;
  const elapsed = performance.now() - start;
  const cpu = cpuMs("self") - cpuStart;
  const serverCpu = cpuMs(serverPid) - serverCpuStart;
  round.running = false;
  // Every call comes back before the next round (or the other side's) starts.
  for (let i = 0; i < 1000 && round.outstanding > 0; i++) await sleep(10);
  if (round.outstanding > 0) fail(new Error(`${round.outstanding} unanswered`));
  const seconds = elapsed / 1000;
  return {
    messagesPerSecond: round.completed / seconds,
    megabytesPerSecond: round.completed * size / seconds / 1e6,
    p50us: round.latency.percentile(0.5) * 1000,
    p99us: round.latency.percentile(0.99) * 1000,
    messages: round.completed,
    seconds,
    loadCpu: cpu / elapsed,
    serverCpu: serverCpu / elapsed,
    unanswered: round.outstanding,
    serverConnections: connectionsSeen.all,
    serverConnectionsFromLoad: connectionsSeen.fromThisLoad,
  };
}

process.stdout.write(JSON.stringify({ ready: true }) + "\n");
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const result = await measure(JSON.parse(line)).catch(fail);
  process.stdout.write(JSON.stringify({ result }) + "\n");
}
await Promise.race([
  Promise.allSettled(connections.map((connection) => connection.close())),
  sleep(2000),
]);
process.exit(0);
