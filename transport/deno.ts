// The Deno socket adapter: Deno.listen / Deno.connect for TCP; TLS through
// Deno's node:tls (_node_sockets.ts), because Deno.listenTls cannot ask for a
// client certificate or take a new certificate while listening, and neither
// Deno.listenTls nor Deno.startTls tells the peer's certificate.

import type {
  ConnectionHandler,
  NetAddress,
  Transport,
  TransportConnection,
} from "./transport.ts";
import type * as NodeSockets from "./_node_sockets.ts";
import { throwIfAborted } from "./_shared.ts";
import { networkError } from "../_network_error.ts";
import { reusePortOsProblem } from "../_reuse_port.ts";

// The few members of Deno's socket API this adapter uses; declared here so the
// module type-checks anywhere (tsc for the npm build has no Deno types).
interface DenoConn {
  readonly remoteAddr: unknown;
  read(buffer: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  close(): void;
  setNoDelay?(noDelay?: boolean): void;
}

interface DenoListener {
  readonly addr: unknown;
  accept(): Promise<DenoConn>;
  close(): void;
}

interface DenoApi {
  listen(options: {
    hostname: string;
    port: number;
    transport: "tcp";
    reusePort?: boolean;
  }): DenoListener;
  /** Present only with `--unstable-net`. */
  listenDatagram?: unknown;
  readonly build: { readonly os: string };
  connect(options: {
    hostname: string;
    port: number;
    transport: "tcp";
    signal?: AbortSignal;
  }): Promise<DenoConn>;
}

function deno(): DenoApi {
  return (globalThis as unknown as { Deno: DenoApi }).Deno;
}

// Loaded only for a first TLS listen or connect. A literal specifier, so
// that it is part of the module graph (Deno reads a module outside it only
// with --allow-read) and the npm build rewrites it to `.js`.
let nodeSockets: Promise<typeof NodeSockets> | undefined;

function tlsSockets(): Promise<typeof NodeSockets> {
  return nodeSockets ??= import("./_node_sockets.ts");
}

function denoAddress(addr: unknown): NetAddress {
  const { hostname, port } = addr as NetAddress;
  return { hostname, port };
}

// Reads go into a slab, one subarray after another, so each chunk is a
// distinct view (payload views stay valid) without an allocation per read.
// Slabs start small so idle connections stay cheap, and grow while reads keep
// filling them.
/** Pause before accepting again after a failed accept. */
const ACCEPT_RETRY_MS = 50;

const MIN_SLAB = 1024;
const MAX_SLAB = 256 * 1024;
const MIN_READ = 512;

class DenoConnection implements TransportConnection {
  readonly remoteAddr: NetAddress;
  readonly #conn: DenoConn;
  readonly #readAfterWrite: boolean;
  /** The write the next read waits for, with `#readAfterWrite`. */
  #writing: Promise<void> | undefined;
  /** The handler, while reads wait for a write. */
  #waiting: ConnectionHandler | undefined;
  #closing = false;

  constructor(conn: DenoConn, readAfterWrite = false) {
    this.#conn = conn;
    this.#readAfterWrite = readAfterWrite;
    this.remoteAddr = denoAddress(conn.remoteAddr);
    try {
      conn.setNoDelay?.(true);
    } catch { /* already closed */ }
  }

  async run(handler: ConnectionHandler): Promise<void> {
    let slabSize = MIN_SLAB;
    let slab = new Uint8Array(slabSize);
    let used = 0;
    let failure: unknown;
    try {
      while (true) {
        const target = handler.readTarget?.();
        if (target !== undefined) {
          const count = await this.#conn.read(target);
          if (count === null) break;
          handler.received(target.subarray(0, count));
        } else {
          if (slab.length - used < MIN_READ) {
            slab = new Uint8Array(slabSize);
            used = 0;
          }
          const space = slab.length - used;
          const count = await this.#conn.read(slab.subarray(used));
          if (count === null) break;
          handler.received(slab.subarray(used, used + count));
          used += count;
          if (count === space && slabSize < MAX_SLAB) slabSize *= 2;
        }
        if (this.#readAfterWrite) {
          // Reading while an answer is being written costs Deno a read that
          // waits in its reactor; reading after it, the bytes are there.
          await undefined; // the handler's writes start in a microtask
          while (this.#writing !== undefined && !this.#closing) {
            const written = this.#writing;
            this.#writing = undefined;
            this.#waiting = handler;
            try {
              await written;
            } catch { /* the handler hears of it through its own write */ }
            this.#waiting = undefined;
            // The handler's reaction to `written` ran first and has started
            // the write queued behind it, if any: the loop waits for that too.
            handler.progressed?.();
          }
        }
      }
    } catch (error) {
      if (!this.#closing) failure = error;
    }
    this.close();
    handler.ended(
      failure === undefined
        ? undefined
        : networkError("connection", this.remoteAddr, failure),
    );
  }

  write(bytes: Uint8Array): Promise<void> {
    // Usually one write takes everything: one promise reaction, no async
    // function around it; the loop only for a partial write.
    const written: Promise<void> = this.#conn.write(bytes).then((count) => {
      if (count < bytes.length) {
        return this.#writeAll(bytes.subarray(count), written);
      }
      this.#wrote(written);
    });
    if (this.#readAfterWrite) this.#writing = written;
    return written;
  }

  /**
   * A write is done: reads no longer wait for it. Left in `#writing`, a write
   * made outside a read (a heartbeat PING) would make the next read look held
   * back, and its `progressed` would restart the clock of a peer that
   * dribbles a header.
   */
  #wrote(written: Promise<void>): void {
    if (this.#writing === written) this.#writing = undefined;
  }

  async #writeAll(bytes: Uint8Array, written: Promise<void>): Promise<void> {
    let at = 0;
    while (at < bytes.length) {
      at += await this.#conn.write(at === 0 ? bytes : bytes.subarray(at));
      this.#waiting?.progressed?.();
    }
    this.#wrote(written);
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    try {
      this.#conn.close();
    } catch { /* already closed by the peer */ }
  }
}

/** Why Deno cannot listen with `reusePort` here, if it cannot. */
function reusePortProblem(): string | undefined {
  const api = deno();
  return reusePortOsProblem("Deno", api.build.os) ??
    // Deno 2 keeps Deno.listen's reusePort behind --unstable-net, and without
    // the flag it exits the process rather than throw: ask before calling.
    // The flag's only visible trace is the unstable API it adds.
    (typeof api.listenDatagram === "function"
      ? undefined
      : 'reusePort needs Deno\'s --unstable-net flag (or "unstable": ["net"] in deno.json): Deno.listen\'s reusePort is unstable in Deno 2');
}

export const denoTransport: Transport = {
  listen(address, accept, options) {
    if (options?.tls) {
      // node:net's reusePort needs no flag; the OS must still spread.
      return tlsSockets().then((sockets) =>
        sockets.listenNode(
          address,
          accept,
          options,
          () => reusePortOsProblem("Deno", deno().build.os),
        )
      );
    }
    let listener: DenoListener;
    try {
      const reusePort = options?.reusePort === true;
      const problem = reusePort ? reusePortProblem() : undefined;
      if (problem) throw new Error(problem);
      listener = deno().listen({
        hostname: address.hostname,
        port: address.port,
        transport: "tcp",
        ...(reusePort ? { reusePort } : {}),
      });
    } catch (error) {
      return Promise.reject(error);
    }
    let closed = false;
    let retryTimer: ReturnType<typeof setTimeout> | undefined;
    let wake: (() => void) | undefined;
    const acceptLoop = (async () => {
      while (!closed) {
        let conn: DenoConn;
        try {
          conn = await listener.accept();
        } catch {
          if (closed) break;
          // Accept can fail while the listener is fine (out of file
          // descriptors, a connection reset before it was accepted): wait a
          // little and go on, rather than stop serving for good.
          await new Promise<void>((resolve) => {
            wake = resolve;
            retryTimer = setTimeout(resolve, ACCEPT_RETRY_MS);
          });
          continue;
        }
        const connection = new DenoConnection(conn, options?.readAfterWrite);
        connection.run(accept(connection));
      }
    })();
    return Promise.resolve({
      addr: denoAddress(listener.addr),
      close() {
        closed = true;
        clearTimeout(retryTimer);
        wake?.();
        try {
          listener.close();
        } catch { /* already closed */ }
        return acceptLoop;
      },
    });
  },

  async connect(address, accept, options) {
    if (options?.tls) {
      return (await tlsSockets()).connectNode(address, accept, options);
    }
    const signal = options?.signal;
    throwIfAborted(signal);
    // With the signal, Deno cancels the connect itself: nothing outlives an
    // attempt given up on (a host that drops SYNs is otherwise waited on for
    // minutes).
    const conn = await deno().connect({
      hostname: address.hostname,
      port: address.port,
      transport: "tcp",
      signal,
    });
    const connection = new DenoConnection(conn);
    connection.run(accept(connection));
    return connection;
  },
};
