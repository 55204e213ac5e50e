/**
 * The runtime socket adapters: the only module that touches `Deno.*` or
 * `Bun.*`. Everything above it sees a byte-level connection with a callback for
 * reads and a write that reports when the runtime has taken the bytes.
 *
 * @example
 * ```ts
 * import { runtimeTransport } from "@qtk/tcp-framework/transport";
 * const transport = runtimeTransport();
 * console.assert(typeof transport.listen === "function");
 * ```
 *
 * @module
 */

/**
 * A socket address.
 *
 * @example
 * ```ts
 * import type { NetAddress } from "@qtk/tcp-framework/transport";
 * const address: NetAddress = { hostname: "127.0.0.1", port: 8080 };
 * ```
 */
export interface NetAddress {
  /** IP address or host name. */
  hostname: string;
  /** TCP port. */
  port: number;
}

/**
 * What a transport calls as a connection's bytes arrive and when it ends.
 *
 * @example
 * ```ts
 * import type { ConnectionHandler } from "@qtk/tcp-framework/transport";
 * const handler: ConnectionHandler = { received: (chunk) => console.log(chunk.length), ended: () => {} };
 * ```
 */
export interface ConnectionHandler {
  /** Bytes received, in order. The chunk is the handler's to keep. */
  received(chunk: Uint8Array): void;
  /** Called once, after the connection is fully closed; `error` if it failed. */
  ended(error?: unknown): void;
}

/**
 * One open byte connection.
 *
 * @example
 * ```ts
 * import type { TransportConnection } from "@qtk/tcp-framework/transport";
 * function hello(connection: TransportConnection) {
 *   return connection.write(new TextEncoder().encode("hello"));
 * }
 * ```
 */
export interface TransportConnection {
  /** The peer's address. */
  readonly remoteAddr: NetAddress;
  /**
   * Hands `bytes` to the runtime. Returns `undefined` if it took them all at
   * once, or a promise that settles once it has (rejecting if the connection
   * fails first). Only one write may be outstanding; `bytes` must not change
   * until it settles.
   */
  write(bytes: Uint8Array): Promise<void> | undefined;
  /** Closes the connection; the handler's `closed` follows. Idempotent. */
  close(): void;
}

/**
 * A listening socket.
 *
 * @example
 * ```ts
 * import type { TransportListener } from "@qtk/tcp-framework/transport";
 * const stop = (listener: TransportListener) => listener.close();
 * ```
 */
export interface TransportListener {
  /** The bound address (the real port when 0 was asked for). */
  readonly addr: NetAddress;
  /** Stops accepting; resolves once the accept loop has ended. */
  close(): Promise<void>;
}

/**
 * Creates the handler for a connection as soon as it opens.
 *
 * @example
 * ```ts
 * import type { Accept } from "@qtk/tcp-framework/transport";
 * const accept: Accept = (connection) => ({ received: () => connection.close(), ended: () => {} });
 * ```
 */
export type Accept = (connection: TransportConnection) => ConnectionHandler;

/**
 * A runtime's TCP sockets behind one contract.
 *
 * @example
 * ```ts
 * import { runtimeTransport } from "@qtk/tcp-framework/transport";
 * const listener = runtimeTransport().listen({ hostname: "127.0.0.1", port: 0 }, (connection) => ({
 *   received: (chunk) => connection.write(chunk),
 *   ended: () => {},
 * }));
 * await listener.close();
 * ```
 */
export interface Transport {
  /**
   * Starts listening.
   * @throws If the address cannot be bound (for example, the port is taken).
   */
  listen(address: NetAddress, accept: Accept): TransportListener;
  /** Opens a connection; rejects if it cannot be established. */
  connect(address: NetAddress, accept: Accept): Promise<TransportConnection>;
}

/**
 * The transport of the runtime this code runs on: Deno's or Bun's own sockets.
 *
 * @returns The transport.
 * @throws {Error} On a runtime that is neither Deno nor Bun.
 *
 * @example
 * ```ts
 * import { runtimeTransport } from "@qtk/tcp-framework/transport";
 * console.assert(runtimeTransport() === runtimeTransport());
 * ```
 */
export function runtimeTransport(): Transport {
  if ("Deno" in globalThis) return denoTransport;
  if ("Bun" in globalThis) return bunTransport;
  throw new Error(
    "No socket transport for this runtime: expected Deno or Bun",
  );
}

// ---------------------------------------------------------------- Deno ----

// Reads go into a slab, one subarray after another, so each chunk is a
// distinct view (payload views stay valid) without an allocation per read.
// Slabs start small so idle connections stay cheap, and grow while reads keep
// filling them.
const MIN_SLAB = 2048;
const MAX_SLAB = 256 * 1024;
const MIN_READ = 1024;

class DenoConnection implements TransportConnection {
  readonly remoteAddr: NetAddress;
  readonly #conn: Deno.Conn;
  #closing = false;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.remoteAddr = { hostname: addr.hostname, port: addr.port };
    try {
      (conn as Deno.TcpConn).setNoDelay?.(true);
    } catch { /* not a TCP connection (for example, TLS on some versions) */ }
  }

  async run(handler: ConnectionHandler): Promise<void> {
    let slabSize = MIN_SLAB;
    let slab = new Uint8Array(slabSize);
    let used = 0;
    let failure: unknown;
    try {
      while (true) {
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
    } catch (error) {
      if (!this.#closing) failure = error;
    }
    this.close();
    handler.ended(failure);
  }

  write(bytes: Uint8Array): Promise<void> {
    return this.#writeAll(bytes);
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) {
      at += await this.#conn.write(at === 0 ? bytes : bytes.subarray(at));
    }
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    try {
      this.#conn.close();
    } catch { /* already closed by the peer */ }
  }
}

const denoTransport: Transport = {
  listen(address, accept) {
    const listener = Deno.listen({
      hostname: address.hostname,
      port: address.port,
      transport: "tcp",
    });
    const addr = listener.addr as Deno.NetAddr;
    const acceptLoop = (async () => {
      try {
        for await (const conn of listener) {
          const connection = new DenoConnection(conn);
          connection.run(accept(connection));
        }
      } catch { /* the listener was closed */ }
    })();
    return {
      addr: { hostname: addr.hostname, port: addr.port },
      close() {
        try {
          listener.close();
        } catch { /* already closed */ }
        return acceptLoop;
      },
    };
  },

  async connect(address, accept) {
    const conn = await Deno.connect({
      hostname: address.hostname,
      port: address.port,
      transport: "tcp",
    });
    const connection = new DenoConnection(conn);
    connection.run(accept(connection));
    return connection;
  },
};

// ----------------------------------------------------------------- Bun ----

// The few members of Bun's socket API this adapter uses; declared here so the
// module type-checks without Bun's type package.
interface BunSocket {
  data: BunConnection;
  readonly remoteAddress: string;
  readonly remotePort?: number;
  write(bytes: Uint8Array): number;
  end(): void;
  setNoDelay?(noDelay: boolean): boolean;
}

interface BunSocketHandlers {
  binaryType: "uint8array";
  open(socket: BunSocket): void;
  data(socket: BunSocket, data: Uint8Array): void;
  drain(socket: BunSocket): void;
  close(socket: BunSocket, error?: Error): void;
  error(socket: BunSocket, error: Error): void;
  connectError?(socket: BunSocket, error: Error): void;
}

interface BunTcpListener {
  readonly port: number;
  readonly hostname: string;
  stop(closeActiveConnections?: boolean): void;
}

interface BunApi {
  listen(options: {
    hostname: string;
    port: number;
    socket: BunSocketHandlers;
  }): BunTcpListener;
  connect(options: {
    hostname: string;
    port: number;
    socket: BunSocketHandlers;
  }): Promise<BunSocket>;
}

class BunConnection implements TransportConnection {
  readonly remoteAddr: NetAddress;
  readonly #socket: BunSocket;
  handler: ConnectionHandler | undefined;
  failure: Error | undefined;
  #unwritten: Uint8Array | undefined;
  #written: (() => void) | undefined;
  #writeFailed: ((error: Error) => void) | undefined;
  #closing = false;

  constructor(socket: BunSocket, remote: NetAddress) {
    this.#socket = socket;
    this.remoteAddr = remote;
    socket.setNoDelay?.(true);
  }

  write(bytes: Uint8Array): Promise<void> | undefined {
    if (this.#closing) return Promise.reject(new Error("Socket is closed"));
    const count = this.#socket.write(bytes);
    if (count === bytes.length) return undefined;
    if (count < 0) return Promise.reject(new Error("Socket is closed"));
    // Bun does not buffer what the kernel did not take: keep it for `drain`.
    this.#unwritten = bytes.subarray(count);
    return new Promise<void>((resolve, reject) => {
      this.#written = resolve;
      this.#writeFailed = reject;
    });
  }

  drain(): void {
    const rest = this.#unwritten;
    if (!rest) return;
    const count = this.#socket.write(rest);
    if (count < 0) return;
    if (count < rest.length) {
      this.#unwritten = rest.subarray(count);
      return;
    }
    const written = this.#written!;
    this.#unwritten = this.#written = this.#writeFailed = undefined;
    written();
  }

  closed(error?: Error): void {
    this.#closing = true;
    const failed = this.#writeFailed;
    this.#unwritten = this.#written = this.#writeFailed = undefined;
    failed?.(new Error("Socket closed before the write completed"));
    this.handler?.ended(error ?? this.failure);
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#socket.end();
  }
}

function bunHandlers(
  accept: Accept,
  opened?: (connection: BunConnection) => void,
): BunSocketHandlers {
  return {
    binaryType: "uint8array",
    open(socket) {
      const connection = new BunConnection(socket, {
        hostname: socket.remoteAddress,
        port: socket.remotePort ?? 0,
      });
      socket.data = connection;
      connection.handler = accept(connection);
      opened?.(connection);
    },
    data(socket, data) {
      socket.data.handler!.received(data);
    },
    drain(socket) {
      socket.data.drain();
    },
    close(socket, error) {
      socket.data?.closed(error);
    },
    error(socket, error) {
      if (socket.data) socket.data.failure = error;
    },
  };
}

function bun(): BunApi {
  return (globalThis as unknown as { Bun: BunApi }).Bun;
}

const bunTransport: Transport = {
  listen(address, accept) {
    const listener = bun().listen({
      hostname: address.hostname,
      port: address.port,
      socket: bunHandlers(accept),
    });
    return {
      addr: { hostname: listener.hostname, port: listener.port },
      close() {
        listener.stop();
        return Promise.resolve();
      },
    };
  },

  async connect(address, accept) {
    let connection: BunConnection | undefined;
    const handlers = bunHandlers(accept, (opened) => (connection = opened));
    handlers.connectError = () => {};
    await bun().connect({
      hostname: address.hostname,
      port: address.port,
      socket: handlers,
    });
    return connection!;
  },
};
