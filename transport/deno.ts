// The Deno socket adapter: Deno.listen / Deno.listenTls / Deno.connect (+ startTls).

import type {
  ConnectionHandler,
  NetAddress,
  Transport,
  TransportConnection,
} from "./transport.ts";
import {
  caList,
  networkError,
  reusePortOsProblem,
  throwIfAborted,
  untilAborted,
} from "./_shared.ts";

// The few members of Deno's socket API this adapter uses; declared here so the
// module type-checks anywhere (tsc for the npm build has no Deno types).
interface DenoConn {
  readonly remoteAddr: unknown;
  read(buffer: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  close(): void;
  setNoDelay?(noDelay?: boolean): void;
  handshake?(): Promise<unknown>;
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
  listenTls(options: {
    hostname: string;
    port: number;
    transport: "tcp";
    reusePort?: boolean;
    cert: string;
    key: string;
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
  startTls(conn: DenoConn, options: {
    hostname: string;
    caCerts?: string[];
  }): Promise<DenoConn>;
}

function deno(): DenoApi {
  return (globalThis as unknown as { Deno: DenoApi }).Deno;
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
    } catch { /* not a TCP connection (for example, TLS on some versions) */ }
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
    let listener: DenoListener;
    try {
      const reusePort = options?.reusePort === true;
      const problem = reusePort ? reusePortProblem() : undefined;
      if (problem) throw new Error(problem);
      const where = {
        hostname: address.hostname,
        port: address.port,
        transport: "tcp",
        ...(reusePort ? { reusePort } : {}),
      } as const;
      const tls = options?.tls;
      listener = tls
        ? deno().listenTls({ ...where, cert: tls.cert, key: tls.key })
        : deno().listen(where);
    } catch (error) {
      return Promise.reject(error);
    }
    // On a TLS listener the handshake runs inside the connection's first
    // read, so a client that never completes it cannot stall this loop.
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
    const signal = options?.signal;
    throwIfAborted(signal);
    // With the signal, Deno cancels the connect itself: nothing outlives an
    // attempt given up on (a host that drops SYNs is otherwise waited on for
    // minutes).
    let conn = await deno().connect({
      hostname: address.hostname,
      port: address.port,
      transport: "tcp",
      signal,
    });
    const tls = options?.tls;
    if (tls) {
      try {
        conn.setNoDelay?.(true);
        throwIfAborted(signal);
        conn = await deno().startTls(conn, {
          hostname: tls.serverName ?? address.hostname,
          caCerts: caList(tls.ca),
        });
        await untilAborted(conn.handshake!(), signal, () => conn.close());
      } catch (error) {
        try {
          conn.close();
        } catch { /* already closed */ }
        throw error;
      }
    }
    const connection = new DenoConnection(conn);
    connection.run(accept(connection));
    return connection;
  },
};
