// The load generator: one process, started by the runner for each round, that
// drives an echo server and prints one JSON line {"result": …}.
//
// Usage: load.ts '<json>' where json is {mode, port, serverPid, connections,
// inflight, size, warmupMs, durationMs}. Modes:
// - "raw": plain sockets; each connection keeps `inflight` frames of `size`
//   payload bytes outstanding, sending a new one for each reply. Requests
//   are pre-encoded and replies are only delimited (the sign byte of each is
//   checked), so the generator spends as little as it can per frame.
//   `protocol` (2 or 3, default 3) picks the wire layout of its frames.
// - "client-send": the framework's Client, pipelined with send() and the
//   `data` event, same window.
// - "client-request": the framework's Client, `inflight` request() loops.
// - "idle": opens `connections` raw connections, prints {"open": n}, and
//   holds them until stdin ends.
// - "client-queue": memory of a Client whose queue is full (see memory.ts).
//
// Replies must come back in order (both servers echo in order), so latency is
// measured with a ring of send times per connection. The clock is read once
// per read (raw) or once per task (client), not per frame.

import { BufferFullError, Client } from "../mod.ts";
import { frameLayout, SIGN_DATA, writeHeader } from "../codec.ts";
import { randomUuid } from "../message.ts";
import { Histogram } from "../cli/_histogram.ts";
import {
  bun,
  collectGarbage,
  cpuMs,
  exit,
  println,
  rssBytes,
  runtimeName,
  scriptArgs,
  sleep,
  stdinLines,
} from "./_runtime.ts";

interface LoadOptions {
  mode: "raw" | "client-send" | "client-request" | "idle" | "client-queue";
  port: number;
  serverPid: number;
  connections: number;
  inflight: number;
  size: number;
  warmupMs: number;
  durationMs: number;
  protocol?: 2 | 3;
}

const HEADER = frameLayout(3).headerSize;
const HOST = "127.0.0.1";

/** What every connection of this process adds to. */
class Stats {
  measuring = false;
  windowStart = Infinity;
  completed = 0;
  readonly latency = new Histogram();
  /** Frames sent and not answered yet, over all connections. */
  outstanding = 0;
  running = true;

  reply(sentAt: number, now: number): void {
    if (!this.measuring) return;
    this.completed++;
    if (sentAt >= this.windowStart) this.latency.record(now - sentAt);
  }
}

function requestFrame(size: number, protocol: 2 | 3 = 3): Uint8Array {
  const layout = frameLayout(protocol);
  const header = layout.headerSize;
  const frame = new Uint8Array(header + size);
  writeHeader(frame, 0, SIGN_DATA, randomUuid(protocol), size, layout);
  for (let i = 0; i < size; i++) frame[header + i] = i & 0xff;
  return frame;
}

/**
 * One raw connection's window, independent of the socket API: it says how
 * many bytes to send and takes the bytes received.
 */
class RawDriver {
  readonly frameSize: number;
  /** `inflight + 1` copies of the request, so any run of bytes is a view. */
  readonly frames: Uint8Array;
  readonly #inflight: number;
  readonly #sentAt: Float64Array;
  #head = 0;
  #tail = 0;
  #outstanding = 0;
  /** Bytes due to be written. */
  owed = 0;
  /** Bytes written so far, modulo frameSize: where the next write starts. */
  sendOffset = 0;
  #replyAt = 0;
  readonly #stats: Stats;

  constructor(
    stats: Stats,
    inflight: number,
    size: number,
    protocol: 2 | 3 = 3,
  ) {
    this.#stats = stats;
    this.#inflight = inflight;
    const frame = requestFrame(size, protocol);
    this.frameSize = frame.length;
    this.frames = new Uint8Array(frame.length * (inflight + 1));
    for (let i = 0; i <= inflight; i++) {
      this.frames.set(frame, i * frame.length);
    }
    this.#sentAt = new Float64Array(inflight);
  }

  get outstanding(): number {
    return this.#outstanding;
  }

  /** Queues `count` requests, sent now. */
  queue(count: number, now: number): void {
    for (let i = 0; i < count; i++) {
      this.#sentAt[this.#tail] = now;
      this.#tail = this.#tail + 1 === this.#inflight ? 0 : this.#tail + 1;
    }
    this.#outstanding += count;
    this.#stats.outstanding += count;
    this.owed += count * this.frameSize;
  }

  /** The next bytes to write. */
  pending(): Uint8Array {
    return this.frames.subarray(this.sendOffset, this.sendOffset + this.owed);
  }

  wrote(count: number): void {
    this.owed -= count;
    this.sendOffset = (this.sendOffset + count) % this.frameSize;
  }

  /** Takes received bytes; queues a new request per reply while running. */
  received(bytes: Uint8Array, length: number, now: number): void {
    const frameSize = this.frameSize;
    let at = 0;
    let replies = 0;
    let replyAt = this.#replyAt;
    while (at < length) {
      if (replyAt === 0 && bytes[at] !== 0x11) {
        throw new Error(`reply does not start with a DATA sign`);
      }
      const take = Math.min(frameSize - replyAt, length - at);
      at += take;
      replyAt += take;
      if (replyAt === frameSize) {
        replyAt = 0;
        replies++;
        this.#stats.reply(this.#sentAt[this.#head], now);
        this.#head = this.#head + 1 === this.#inflight ? 0 : this.#head + 1;
      }
    }
    this.#replyAt = replyAt;
    this.#outstanding -= replies;
    this.#stats.outstanding -= replies;
    if (replies > 0 && this.#stats.running) this.queue(replies, now);
  }
}

interface Connection {
  close(): void;
}

async function rawConnectionDeno(
  stats: Stats,
  options: LoadOptions,
): Promise<Connection> {
  const conn = await Deno.connect({ hostname: HOST, port: options.port });
  conn.setNoDelay(true);
  const driver = new RawDriver(
    stats,
    options.inflight,
    options.size,
    options.protocol,
  );
  let writing = false;
  let closed = false;
  const pump = async () => {
    writing = true;
    try {
      while (driver.owed > 0 && !closed) {
        driver.wrote(await conn.write(driver.pending()));
      }
    } catch (error) {
      if (!closed) throw error;
    } finally {
      writing = false;
    }
  };
  (async () => {
    const buffer = new Uint8Array(256 * 1024);
    try {
      while (true) {
        const count = await conn.read(buffer);
        if (count === null) break;
        driver.received(buffer, count, performance.now());
        if (driver.owed > 0 && !writing) pump();
      }
    } catch (error) {
      if (!closed) console.error("load:", error);
    }
  })();
  driver.queue(options.inflight, performance.now());
  pump();
  return {
    close() {
      closed = true;
      try {
        conn.close();
      } catch { /* closed */ }
    },
  };
}

async function rawConnectionBun(
  stats: Stats,
  options: LoadOptions,
): Promise<Connection> {
  const driver = new RawDriver(
    stats,
    options.inflight,
    options.size,
    options.protocol,
  );
  const flush = (socket: { write(bytes: Uint8Array): number }) => {
    while (driver.owed > 0) {
      const written = socket.write(driver.pending());
      if (written <= 0) return;
      driver.wrote(written);
    }
  };
  const socket = await bun().connect<null>({
    hostname: HOST,
    port: options.port,
    socket: {
      binaryType: "uint8array",
      data(socket, chunk) {
        driver.received(chunk, chunk.length, performance.now());
        flush(socket);
      },
      drain(socket) {
        flush(socket);
      },
      error(_socket, error) {
        if (stats.running) console.error("load:", error);
      },
    },
  });
  socket.setNoDelay?.(true);
  driver.queue(options.inflight, performance.now());
  flush(socket);
  return { close: () => socket.end() };
}

/** A clock read at most once per task: frames of one read share a time. */
let cachedNow = -1;
function taskNow(): number {
  if (cachedNow < 0) {
    cachedNow = performance.now();
    queueMicrotask(() => cachedNow = -1);
  }
  return cachedNow;
}

async function connectClient(port: number): Promise<Client> {
  const client = new Client({ host: HOST, port, reconnect: false });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error("connect timed out")),
      5000,
    );
    client.once("connected", () => {
      clearTimeout(timer);
      resolve();
    });
    client.once("exception", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
  return client;
}

async function clientSendConnection(
  stats: Stats,
  options: LoadOptions,
): Promise<Connection> {
  const client = await connectClient(options.port);
  const inflight = options.inflight;
  const message = {
    uuid: crypto.randomUUID(),
    data: requestFrame(options.size).subarray(HEADER),
  };
  const sentAt = new Float64Array(inflight);
  let head = 0;
  let tail = 0;
  const send = () => {
    sentAt[tail] = taskNow();
    tail = tail + 1 === inflight ? 0 : tail + 1;
    stats.outstanding++;
    client.send(message);
  };
  client.on("data", ({ data }) => {
    if (data.length !== options.size) throw new Error("short reply");
    stats.outstanding--;
    stats.reply(sentAt[head], taskNow());
    head = head + 1 === inflight ? 0 : head + 1;
    if (stats.running) send();
  });
  client.on("exception", (error) => {
    if (stats.running) console.error("load:", error);
  });
  for (let i = 0; i < inflight; i++) send();
  return { close: () => void client.close() };
}

async function clientRequestConnection(
  stats: Stats,
  options: LoadOptions,
): Promise<Connection> {
  const client = await connectClient(options.port);
  const payload = requestFrame(options.size).subarray(HEADER);
  const loop = async () => {
    while (stats.running) {
      const sentAt = performance.now();
      stats.outstanding++;
      const reply = await client.request(payload, { timeout: 10_000 });
      stats.outstanding--;
      if (reply.length !== options.size) throw new Error("short reply");
      stats.reply(sentAt, performance.now());
    }
  };
  for (let i = 0; i < options.inflight; i++) {
    loop().catch((error) => {
      if (stats.running) console.error("load:", error);
    });
  }
  return { close: () => void client.close() };
}

async function runLoad(options: LoadOptions): Promise<void> {
  const stats = new Stats();
  const open = options.mode === "raw"
    ? runtimeName === "deno" ? rawConnectionDeno : rawConnectionBun
    : options.mode === "client-send"
    ? clientSendConnection
    : clientRequestConnection;
  const connections: Connection[] = [];
  for (let i = 0; i < options.connections; i++) {
    connections.push(await open(stats, options));
  }
  await sleep(options.warmupMs);
  stats.measuring = true;
  const cpuStart = cpuMs();
  const serverCpuStart = cpuMs(options.serverPid);
  const start = stats.windowStart = performance.now();
  await sleep(options.durationMs);
  stats.measuring = false;
  const elapsed = performance.now() - start;
  const cpu = cpuMs() - cpuStart;
  const serverCpu = cpuMs(options.serverPid) - serverCpuStart;
  stats.running = false;
  // Let what is in flight come back before closing, within bounds.
  for (let i = 0; i < 300 && stats.outstanding > 0; i++) await sleep(10);
  for (const connection of connections) connection.close();
  const seconds = elapsed / 1000;
  println(JSON.stringify({
    result: {
      messagesPerSecond: stats.completed / seconds,
      megabytesPerSecond: stats.completed * options.size / seconds / 1e6,
      p50us: stats.latency.percentile(0.5) * 1000,
      p99us: stats.latency.percentile(0.99) * 1000,
      messages: stats.completed,
      seconds,
      loadCpu: cpu / elapsed,
      serverCpu: serverCpu / elapsed,
      unanswered: stats.outstanding,
    },
  }));
}

async function holdIdle(options: LoadOptions): Promise<void> {
  const connections: Connection[] = [];
  for (let i = 0; i < options.connections; i++) {
    if (runtimeName === "deno") {
      const conn = await Deno.connect({ hostname: HOST, port: options.port });
      (async () => {
        try {
          while (await conn.read(new Uint8Array(1024)) !== null) { /* PINGs */ }
        } catch { /* closed */ }
      })();
      connections.push({
        close() {
          try {
            conn.close();
          } catch { /* closed */ }
        },
      });
    } else {
      const socket = await bun().connect<null>({
        hostname: HOST,
        port: options.port,
        socket: { data() {} },
      });
      connections.push({ close: () => socket.end() });
    }
  }
  println(JSON.stringify({ open: connections.length }));
  for await (const _ of stdinLines()) { /* wait for the end of stdin */ }
  for (const connection of connections) connection.close();
}

/**
 * Resident memory of a Client whose queue is full: the client points at a
 * port nothing listens on, so every send is queued, until BufferFullError.
 */
async function clientQueue(options: LoadOptions): Promise<void> {
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      collectGarbage();
      await sleep(50);
    }
    return rssBytes();
  };
  const before = await settle();
  const client = new Client({
    host: HOST,
    port: options.port,
    reconnect: false,
  });
  client.on("exception", () => {});
  let queued = 0;
  let refused = 0;
  const uuid = crypto.randomUUID();
  // Fill it: a fresh payload per message, until the first BufferFullError.
  const most = 1 + Math.max(65536, (8 * 1024 * 1024) / options.size);
  for (let i = 0; i < most; i++) {
    try {
      client.send({ uuid, data: new Uint8Array(options.size) });
      queued++;
    } catch (error) {
      if (!(error instanceof BufferFullError)) throw error;
      break;
    }
  }
  const bufferedBytes = client.bufferedAmount;
  const full = await settle();
  // Then as many again, reusing one payload: every one must be refused.
  const payload = new Uint8Array(options.size);
  for (let i = 0; i < queued; i++) {
    try {
      client.send({ uuid, data: payload });
    } catch (error) {
      if (!(error instanceof BufferFullError)) throw error;
      refused++;
    }
  }
  const after = await settle();
  println(JSON.stringify({
    queue: {
      size: options.size,
      queued,
      refused,
      bufferedBytes,
      rssBefore: before,
      rssFull: full,
      rssAfter: after,
    },
  }));
  await client.close();
}

const options = JSON.parse(scriptArgs()[0]) as LoadOptions;
try {
  if (options.mode === "idle") await holdIdle(options);
  else if (options.mode === "client-queue") await clientQueue(options);
  else await runLoad(options);
} catch (error) {
  console.error("load failed:", error);
  exit(1);
}
exit(0);
