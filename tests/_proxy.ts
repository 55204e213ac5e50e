// A fault-injecting TCP proxy for tests, built on runtimeTransport() so it
// runs under Deno and Bun alike. It sits between a Client and a Server and,
// driven by a seeded PRNG, cuts connections after a random number of bytes,
// closes them abruptly, delays chunks, writes them one byte at a time, joins
// them, and stalls one direction for a while. Faults can be changed while it
// runs (set `faults`), and `cutAll()` cuts every open connection at once.
//
// "Reset" here is an abrupt close that drops whatever the proxy still holds:
// the transport API has no way to send a TCP RST, so both peers see the
// connection end, mid-frame, without the bytes in flight.

import { Rng } from "./_fuzz.ts";
import {
  type NetAddress,
  runtimeTransport,
  type TransportConnection,
  type TransportListener,
} from "../transport/mod.ts";

/** Probabilities (0..1) and durations (ms) of each fault. */
export interface Faults {
  /** Per connection: cut it once a random number of bytes (up to `cutWithin`) went through. */
  cut?: number;
  cutWithin?: number;
  /** Per connection: close it abruptly, dropping what is held, within `resetWithinMs`. */
  reset?: number;
  resetWithinMs?: number;
  /** Per chunk: hold it for up to `maxDelayMs` (order is kept). */
  delay?: number;
  maxDelayMs?: number;
  /** Per chunk: write it one byte at a time (its first 2 KiB). */
  split?: number;
  /** Per chunk: hold it for `joinMs` and send it joined with whatever followed. */
  join?: number;
  joinMs?: number;
  /** Per connection and direction: stop forwarding for `stallMs` at a random moment. */
  stall?: number;
  stallMs?: number;
}

/** What the proxy did. */
export interface ProxyStats {
  connections: number;
  cut: number;
  reset: number;
  stalled: number;
  delayed: number;
  split: number;
  joined: number;
  bytesUp: number;
  bytesDown: number;
}

/** Timers that can all be cancelled at once, so a test leaves none behind. */
class Timers {
  #pending = new Map<ReturnType<typeof setTimeout>, () => void>();

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(timer);
        resolve();
      }, ms);
      this.#pending.set(timer, resolve);
    });
  }

  /** Clears every timer and resolves its sleep at once. */
  cancelAll(): void {
    for (const [timer, resolve] of this.#pending) {
      clearTimeout(timer);
      resolve();
    }
    this.#pending.clear();
  }
}

class Pipe {
  #queue: Uint8Array[] = [];
  #pumping = false;
  #target: TransportConnection | undefined;
  #wake: (() => void) | undefined;
  /** Bytes forwarded so far, and the count after which the pair is cut. */
  forwarded = 0;
  cutAfter = Infinity;
  /** When (in bytes forwarded) this direction stalls, and for how long. */
  stallAt = Infinity;
  stallMs = 0;
  /** The source ended: forward what is held, then close the target. */
  ending = false;

  constructor(
    readonly pair: Pair,
    readonly up: boolean,
  ) {}

  setTarget(target: TransportConnection): void {
    this.#target = target;
    this.#kick();
  }

  push(chunk: Uint8Array): void {
    if (this.pair.done) return;
    this.#queue.push(chunk);
    this.#kick();
  }

  end(): void {
    this.ending = true;
    this.#kick();
  }

  /** Wakes a waiting pump so it sees that the pair is done. */
  stop(): void {
    this.#wake?.();
  }

  #kick(): void {
    this.#wake?.();
    if (!this.#pumping) {
      this.#pumping = true;
      this.#pump().finally(() => (this.#pumping = false));
    }
  }

  async #pump(): Promise<void> {
    const { pair } = this;
    const proxy = pair.proxy;
    while (!pair.done) {
      const target = this.#target;
      if (!target || this.#queue.length === 0) {
        if (target && this.ending) {
          pair.close();
          return;
        }
        // Wait for a chunk or a target.
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = undefined;
        continue;
      }
      const faults = proxy.faults;
      const rng = proxy.rng;
      if (this.forwarded >= this.stallAt) {
        this.stallAt = Infinity;
        proxy.stats.stalled++;
        await pair.timers.sleep(this.stallMs);
        continue;
      }
      let chunk = this.#queue.shift()!;
      if (rng.chance(faults.delay ?? 0)) {
        proxy.stats.delayed++;
        await pair.timers.sleep(rng.int((faults.maxDelayMs ?? 20) + 1));
      }
      if (rng.chance(faults.join ?? 0)) {
        proxy.stats.joined++;
        await pair.timers.sleep(faults.joinMs ?? 5);
        chunk = concat([chunk, ...this.#queue.splice(0)]);
      }
      if (pair.done) return;
      // Cut part-way through the chunk when the byte budget runs out.
      const room = this.cutAfter - this.forwarded;
      const cutting = room < chunk.length;
      if (cutting) chunk = chunk.subarray(0, Math.max(0, room));
      const split = rng.chance(faults.split ?? 0);
      if (split) proxy.stats.split++;
      try {
        if (split) {
          // Byte by byte for the first 2 KiB (every header and boundary in
          // it lands in its own write), the rest at once, to stay quick.
          const bytewise = Math.min(chunk.length, 2048);
          for (let i = 0; i < bytewise && !pair.done; i++) {
            await target.write(chunk.subarray(i, i + 1));
          }
          if (chunk.length > bytewise && !pair.done) {
            await target.write(chunk.subarray(bytewise));
          }
        } else if (chunk.length > 0) {
          await target.write(chunk);
        }
      } catch {
        pair.close();
        return;
      }
      this.forwarded += chunk.length;
      if (this.up) proxy.stats.bytesUp += chunk.length;
      else proxy.stats.bytesDown += chunk.length;
      if (cutting) {
        proxy.stats.cut++;
        pair.close();
        return;
      }
    }
  }
}

class Pair {
  done = false;
  readonly timers = new Timers();
  readonly toServer: Pipe;
  readonly toClient: Pipe;
  upstream: TransportConnection | undefined;
  #ended = 0;
  #allEnded!: () => void;
  readonly ended: Promise<void>;

  constructor(
    readonly proxy: FaultProxy,
    readonly downstream: TransportConnection,
  ) {
    this.toServer = new Pipe(this, true);
    this.toClient = new Pipe(this, false);
    this.toClient.setTarget(downstream);
    this.ended = new Promise((resolve) => (this.#allEnded = resolve));
  }

  /** One side's transport ended (called once per side). */
  sideEnded(): void {
    if (++this.#ended === 2) this.#allEnded();
  }

  close(): void {
    if (this.done) return;
    this.done = true;
    this.timers.cancelAll();
    this.downstream.close();
    this.upstream?.close();
    // Wake both pumps so they see `done` and stop.
    this.toServer.stop();
    this.toClient.stop();
  }
}

/** The proxy. */
export class FaultProxy {
  faults: Faults;
  readonly rng: Rng;
  readonly stats: ProxyStats = {
    connections: 0,
    cut: 0,
    reset: 0,
    stalled: 0,
    delayed: 0,
    split: 0,
    joined: 0,
    bytesUp: 0,
    bytesDown: 0,
  };
  readonly #target: NetAddress;
  readonly #pairs = new Set<Pair>();
  #listener!: TransportListener;
  #closed = false;

  private constructor(target: NetAddress, seed: number, faults: Faults) {
    this.#target = target;
    this.rng = new Rng(seed);
    this.faults = faults;
  }

  /** Starts a proxy on 127.0.0.1, port 0, forwarding to `target`. */
  static async start(
    target: NetAddress,
    options: { seed: number; faults?: Faults },
  ): Promise<FaultProxy> {
    const proxy = new FaultProxy(target, options.seed, options.faults ?? {});
    // `await` whether listen returns the listener or a promise of it.
    proxy.#listener = await runtimeTransport().listen(
      { hostname: "127.0.0.1", port: 0 },
      (connection) => proxy.#accept(connection),
    );
    return proxy;
  }

  /** The port clients should connect to. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /** Open proxied connections. */
  get open(): number {
    return this.#pairs.size;
  }

  /** Cuts every open connection now. */
  cutAll(): void {
    for (const pair of this.#pairs) {
      if (!pair.done) this.stats.cut++;
      pair.close();
    }
  }

  /** Stalls one direction of every open connection for `ms`, from its next chunk. */
  stallAll(direction: "toServer" | "toClient", ms: number): void {
    for (const pair of this.#pairs) {
      const pipe = pair[direction];
      pipe.stallAt = pipe.forwarded;
      pipe.stallMs = ms;
    }
  }

  /** Stops listening, cuts everything and waits until every socket is closed. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#listener.close();
    this.cutAll();
    await Promise.all(Array.from(this.#pairs, (pair) => pair.ended));
  }

  #accept(downstream: TransportConnection) {
    const pair = new Pair(this, downstream);
    this.#pairs.add(pair);
    pair.ended.then(() => this.#pairs.delete(pair));
    this.stats.connections++;
    const { faults, rng } = this;
    if (this.#closed) {
      pair.close();
      pair.sideEnded(); // no upstream socket is made
    } else {
      if (rng.chance(faults.cut ?? 0)) {
        const budget = rng.int((faults.cutWithin ?? 4096) + 1);
        (rng.chance(0.5) ? pair.toServer : pair.toClient).cutAfter = budget;
      }
      for (const pipe of [pair.toServer, pair.toClient]) {
        if (rng.chance(faults.stall ?? 0)) {
          pipe.stallAt = rng.int(4096);
          pipe.stallMs = faults.stallMs ?? 500;
        }
      }
      if (rng.chance(faults.reset ?? 0)) {
        const ms = rng.int((faults.resetWithinMs ?? 500) + 1);
        pair.timers.sleep(ms).then(() => {
          if (pair.done) return;
          this.stats.reset++;
          pair.close();
        });
      }
      runtimeTransport().connect(this.#target, () => ({
        received: (chunk) => pair.toClient.push(chunk),
        ended: () => {
          pair.toClient.end();
          pair.sideEnded();
        },
      })).then((upstream) => {
        pair.upstream = upstream;
        if (pair.done) upstream.close();
        else pair.toServer.setTarget(upstream);
      }, () => {
        pair.close();
        pair.sideEnded(); // there never was an upstream socket
      });
    }
    return {
      received: (chunk: Uint8Array) => pair.toServer.push(chunk),
      ended: () => {
        pair.toServer.end();
        pair.sideEnded();
      },
    };
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  let size = 0;
  for (const chunk of chunks) size += chunk.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}
