/**
 * The runtime socket adapters: the only module that touches `Deno.*`, `Bun.*`
 * or `node:net` / `node:tls`. Everything above it sees a byte-level connection
 * with a callback for reads and a write that reports when the runtime has
 * taken the bytes. Each adapter speaks plain TCP, or TLS through the runtime's
 * own TLS stack.
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

import * as nodeNet from "node:net";
import * as nodeTls from "node:tls";

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
 * TLS settings of a listening side: its certificate chain and private key.
 *
 * @example
 * ```ts
 * import type { ServerTlsOptions } from "@qtk/tcp-framework/transport";
 * const tls: ServerTlsOptions = {
 *   cert: "-----BEGIN CERTIFICATE-----\n…",
 *   key: "-----BEGIN PRIVATE KEY-----\n…",
 * };
 * ```
 */
export interface ServerTlsOptions {
  /** The certificate chain, PEM: the server's certificate first. */
  cert: string;
  /** The certificate's private key, PEM. */
  key: string;
}

/**
 * TLS settings of a connecting side. The server's certificate is always
 * verified, against `ca` when given and the runtime's default trust store
 * otherwise, and must name `serverName` (by default the host connected to).
 *
 * @example
 * ```ts
 * import type { ClientTlsOptions } from "@qtk/tcp-framework/transport";
 * const tls: ClientTlsOptions = { ca: "-----BEGIN CERTIFICATE-----\n…", serverName: "localhost" };
 * ```
 */
export interface ClientTlsOptions {
  /**
   * Trusted CA certificate(s), PEM. Under Node.js and Bun they replace the
   * default trust store; under Deno they are trusted in addition to it.
   */
  ca?: string | string[];
  /**
   * The name the server's certificate must carry (and the SNI sent), when it
   * differs from the host connected to.
   */
  serverName?: string;
}

/**
 * Options of {@linkcode Transport.listen}.
 *
 * @example
 * ```ts
 * import type { ListenOptions } from "@qtk/tcp-framework/transport";
 * const plain: ListenOptions = {};
 * ```
 */
export interface ListenOptions {
  /** Serve TLS instead of plain TCP. */
  tls?: ServerTlsOptions;
}

/**
 * Options of {@linkcode Transport.connect}.
 *
 * @example
 * ```ts
 * import type { ConnectOptions } from "@qtk/tcp-framework/transport";
 * const options: ConnectOptions = { tls: {}, signal: AbortSignal.timeout(5000) };
 * ```
 */
export interface ConnectOptions {
  /** Speak TLS instead of plain TCP. */
  tls?: ClientTlsOptions;
  /**
   * Gives up on the attempt (rejecting with the signal's reason) if aborted
   * before the connection is established, TLS handshake included.
   */
  signal?: AbortSignal;
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
  /** Closes the connection; the handler's `ended` follows. Idempotent. */
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
  /**
   * Stops accepting; resolves once no more connections will be accepted.
   * Connections already accepted stay open.
   */
  close(): Promise<void>;
}

/**
 * Creates the handler for a connection as soon as it opens. On a TLS listener
 * that is before the handshake, whose failure ends the connection with an
 * error.
 *
 * @example
 * ```ts
 * import type { Accept } from "@qtk/tcp-framework/transport";
 * const accept: Accept = (connection) => ({ received: () => connection.close(), ended: () => {} });
 * ```
 */
export type Accept = (connection: TransportConnection) => ConnectionHandler;

/**
 * A runtime's TCP (and TLS) sockets behind one contract.
 *
 * @example
 * ```ts
 * import { runtimeTransport } from "@qtk/tcp-framework/transport";
 * const listener = await runtimeTransport().listen({ hostname: "127.0.0.1", port: 0 }, (connection) => ({
 *   received: (chunk) => connection.write(chunk),
 *   ended: () => {},
 * }));
 * await listener.close();
 * ```
 */
export interface Transport {
  /**
   * Starts listening.
   * @throws If the address cannot be bound (for example, the port is taken):
   *   the promise rejects.
   */
  listen(
    address: NetAddress,
    accept: Accept,
    options?: ListenOptions,
  ): Promise<TransportListener>;
  /**
   * Opens a connection; rejects if it cannot be established. With TLS it
   * resolves once the handshake has succeeded, and `accept` is called then.
   */
  connect(
    address: NetAddress,
    accept: Accept,
    options?: ConnectOptions,
  ): Promise<TransportConnection>;
}

/**
 * The transport of the runtime this code runs on: Deno's or Bun's own
 * sockets, or `node:net` / `node:tls` elsewhere (Node.js).
 *
 * @returns The transport.
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
  return nodeTransport;
}

/** Rejects at once with the signal's reason if it is aborted. */
function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason;
}

/** The CA option as the list the runtimes take. */
function caList(ca: string | string[] | undefined): string[] | undefined {
  return ca === undefined ? undefined : typeof ca === "string" ? [ca] : ca;
}

// ---------------------------------------------------------------- Deno ----

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

interface DenoListener extends AsyncIterable<DenoConn> {
  readonly addr: unknown;
  close(): void;
}

interface DenoApi {
  listen(options: {
    hostname: string;
    port: number;
    transport: "tcp";
  }): DenoListener;
  listenTls(options: {
    hostname: string;
    port: number;
    transport: "tcp";
    cert: string;
    key: string;
  }): DenoListener;
  connect(options: {
    hostname: string;
    port: number;
    transport: "tcp";
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
const MIN_SLAB = 1024;
const MAX_SLAB = 256 * 1024;
const MIN_READ = 512;

class DenoConnection implements TransportConnection {
  readonly remoteAddr: NetAddress;
  readonly #conn: DenoConn;
  #closing = false;

  constructor(conn: DenoConn) {
    this.#conn = conn;
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
  listen(address, accept, options) {
    let listener: DenoListener;
    try {
      const where = {
        hostname: address.hostname,
        port: address.port,
        transport: "tcp",
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
    const acceptLoop = (async () => {
      try {
        for await (const conn of listener) {
          const connection = new DenoConnection(conn);
          connection.run(accept(connection));
        }
      } catch { /* the listener was closed */ }
    })();
    return Promise.resolve({
      addr: denoAddress(listener.addr),
      close() {
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
    let conn = await deno().connect({
      hostname: address.hostname,
      port: address.port,
      transport: "tcp",
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

/**
 * Waits for `promise`; if `signal` aborts first, calls `abort` (which should
 * make `promise` settle) and rejects with the signal's reason.
 */
async function untilAborted<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  abort: () => void,
): Promise<T> {
  if (!signal) return await promise;
  if (signal.aborted) {
    promise.catch(() => {});
    abort();
    throw signal.reason;
  }
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => {
      reject(signal.reason); // first: `abort` may make `promise` settle now
      abort();
    };
  });
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    signal.removeEventListener("abort", onAbort);
    // The loser must not be left as an unhandled rejection.
    promise.catch(() => {});
  }
}

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
  handshake?(
    socket: BunSocket,
    success: boolean,
    authorizationError: Error | null,
  ): void;
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
    tls?: { cert: string; key: string };
  }): BunTcpListener;
  connect(options: {
    hostname: string;
    port: number;
    socket: BunSocketHandlers;
    tls?: {
      ca?: string[];
      serverName?: string;
      rejectUnauthorized: true;
    };
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
    if (this.handler) this.handler.ended(error ?? this.failure);
    // Closed while `accept` ran (Bun calls `close` inside `end()`): report it
    // once the handler exists, or it would never learn of the close.
    else this.endedEarly = { error: error ?? this.failure };
  }

  /** Set when the socket closed before its handler was set. */
  endedEarly: { error: Error | undefined } | undefined;

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#socket.end();
  }
}

/**
 * Socket handlers that give each connection a handler from `accept`: at once,
 * or, with `afterHandshake` (a TLS client), once the handshake succeeded.
 * `opened` sees each connection as its handler is set; `failed` sees a
 * connection that closes before that.
 */
function bunHandlers(
  accept: Accept,
  opened?: (connection: BunConnection) => void,
  afterHandshake = false,
  failed?: (error: Error | undefined) => void,
): BunSocketHandlers {
  const start = (connection: BunConnection) => {
    connection.handler = accept(connection);
    opened?.(connection);
    const early = connection.endedEarly;
    if (early) connection.handler.ended(early.error);
  };
  return {
    binaryType: "uint8array",
    open(socket) {
      const connection = new BunConnection(socket, {
        hostname: socket.remoteAddress,
        port: socket.remotePort ?? 0,
      });
      socket.data = connection;
      if (!afterHandshake) start(connection);
    },
    handshake(socket, success, authorizationError) {
      const connection = socket.data;
      if (!connection) return;
      // A server without client certificates sees success with an
      // authorization error (no client certificate): not a failure.
      if (!success) {
        connection.failure = authorizationError ??
          new Error("TLS handshake failed");
        connection.close();
        return;
      }
      if (afterHandshake && !connection.handler) start(connection);
    },
    data(socket, data) {
      socket.data.handler?.received(data);
    },
    drain(socket) {
      socket.data.drain();
    },
    close(socket, error) {
      const connection = socket.data;
      if (!connection) return;
      if (!connection.handler) failed?.(error ?? connection.failure);
      connection.closed(error);
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
  listen(address, accept, options) {
    try {
      const tls = options?.tls;
      const listener = bun().listen({
        hostname: address.hostname,
        port: address.port,
        socket: bunHandlers(accept),
        ...(tls ? { tls: { cert: tls.cert, key: tls.key } } : {}),
      });
      return Promise.resolve({
        addr: { hostname: listener.hostname, port: listener.port },
        close() {
          listener.stop();
          return Promise.resolve();
        },
      });
    } catch (error) {
      return Promise.reject(error);
    }
  },

  async connect(address, accept, options) {
    const signal = options?.signal;
    throwIfAborted(signal);
    const tls = options?.tls;
    let opened!: (connection: BunConnection) => void;
    let failed!: (error: unknown) => void;
    const ready = new Promise<BunConnection>((resolve, reject) => {
      opened = resolve;
      failed = (error) =>
        reject(
          error ?? new Error("Connection closed before the TLS handshake"),
        );
    });
    const handlers = bunHandlers(accept, opened, tls !== undefined, failed);
    handlers.connectError = () => {};
    const socket = await bun().connect({
      hostname: address.hostname,
      port: address.port,
      socket: handlers,
      ...(tls
        ? {
          tls: {
            ca: caList(tls.ca),
            serverName: tls.serverName,
            rejectUnauthorized: true,
          },
        }
        : {}),
    });
    return await untilAborted(ready, signal, () => socket.data?.close());
  },
};

// ------------------------------------------------------------- Node.js ----

class NodeConnection implements TransportConnection {
  readonly remoteAddr: NetAddress;
  readonly #socket: nodeNet.Socket;
  #failure: unknown;
  #closing = false;

  /** `tcp` is the TCP socket under `socket` (itself, without TLS). */
  constructor(socket: nodeNet.Socket, tcp: nodeNet.Socket) {
    this.#socket = socket;
    this.remoteAddr = {
      hostname: tcp.remoteAddress ?? "",
      port: tcp.remotePort ?? 0,
    };
    tcp.setNoDelay(true);
  }

  attach(handler: ConnectionHandler): void {
    const socket = this.#socket;
    socket.on("data", (chunk: Uint8Array) => {
      // A plain Uint8Array view, like the other runtimes hand out.
      handler.received(
        new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength),
      );
    });
    socket.on("error", (error) => {
      if (!this.#closing) this.#failure ??= error;
    });
    socket.once("close", () => {
      this.#closing = true;
      handler.ended(this.#failure);
    });
  }

  write(bytes: Uint8Array): Promise<void> | undefined {
    const socket = this.#socket;
    if (this.#closing || socket.destroyed) {
      return Promise.reject(new Error("Socket is closed"));
    }
    let settle: ((error?: Error | null) => void) | undefined;
    const written = new Promise<void>((resolve, reject) => {
      settle = (error) => error ? reject(error) : resolve();
    });
    socket.write(bytes, (error) => settle!(error));
    // Taken by the kernel at once: nothing for the caller to wait for.
    if (socket.writableLength === 0) {
      written.catch(() => {});
      return undefined;
    }
    return written;
  }

  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#socket.destroy();
  }
}

/** `host` unless it is an IP address, which SNI does not allow. */
function sniName(host: string): string | undefined {
  return nodeNet.isIP(host) === 0 ? host : undefined;
}

const nodeTransport: Transport = {
  async listen(address, accept, options) {
    const tls = options?.tls;
    const context = tls
      ? nodeTls.createSecureContext({ cert: tls.cert, key: tls.key })
      : undefined;
    const server = nodeNet.createServer((tcp) => {
      // TLS is layered on each TCP socket here, rather than with a
      // tls.Server, so the connection is handed over at once and a client
      // that never finishes its handshake is subject to the silence timeout.
      const socket = context
        ? new nodeTls.TLSSocket(tcp, { isServer: true, secureContext: context })
        : tcp;
      const connection = new NodeConnection(socket, tcp);
      connection.attach(accept(connection));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: address.hostname, port: address.port }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    server.on("error", () => {/* the accept loop goes on */});
    const bound = server.address() as nodeNet.AddressInfo;
    return {
      addr: { hostname: bound.address, port: bound.port },
      close() {
        // The listening socket closes now; `server.close`'s callback would
        // also wait for every accepted connection.
        server.close();
        return Promise.resolve();
      },
    };
  },

  async connect(address, accept, options) {
    const signal = options?.signal;
    throwIfAborted(signal);
    const tls = options?.tls;
    let socket: nodeNet.Socket;
    if (tls) {
      const name = tls.serverName ?? address.hostname;
      socket = nodeTls.connect({
        host: address.hostname,
        port: address.port,
        ca: caList(tls.ca),
        servername: sniName(name),
        rejectUnauthorized: true,
        checkServerIdentity: (_host, certificate) =>
          nodeTls.checkServerIdentity(name, certificate),
      });
    } else {
      socket = nodeNet.connect({ host: address.hostname, port: address.port });
    }
    const ready = tls ? "secureConnect" : "connect";
    let onReady!: () => void;
    let onError!: (error: unknown) => void;
    let onClose!: () => void;
    const established = new Promise<void>((resolve, reject) => {
      onReady = resolve;
      onError = reject;
      onClose = () =>
        reject(new Error("Connection closed before it was established"));
    });
    socket.once(ready, onReady).once("error", onError).once("close", onClose);
    try {
      await untilAborted(established, signal, () => socket.destroy());
    } catch (error) {
      socket.destroy();
      throw error;
    } finally {
      socket.off(ready, onReady).off("error", onError).off("close", onClose);
    }
    const connection = new NodeConnection(socket, socket);
    connection.attach(accept(connection));
    return connection;
  },
};
