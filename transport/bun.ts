// The Bun socket adapter: Bun.listen / Bun.connect for TCP; TLS through Bun's
// node:tls (_node_sockets.ts), because a Bun listener cannot take a new
// certificate while it listens (its reload() keeps the TLS settings).

import type {
  Accept,
  ConnectionHandler,
  NetAddress,
  Transport,
  TransportConnection,
} from "./transport.ts";
import type * as NodeSockets from "./_node_sockets.ts";
import { throwIfAborted, untilAborted } from "./_shared.ts";
import { networkError } from "../_network_error.ts";
import { reusePortOsProblem } from "../_reuse_port.ts";
import { NetworkError } from "../errors.ts";

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
    reusePort?: boolean;
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
    if (this.#closing) return Promise.reject(this.#closedError());
    const count = this.#socket.write(bytes);
    if (count === bytes.length) return undefined;
    if (count < 0) return Promise.reject(this.#closedError());
    // Bun does not buffer what the kernel did not take: keep it for `drain`.
    this.#unwritten = bytes.subarray(count);
    return new Promise<void>((resolve, reject) => {
      this.#written = resolve;
      this.#writeFailed = reject;
    });
  }

  /**
   * A write on a socket Bun has closed (it returns -1, or closed it while a
   * write waited): the peer's close, in the words the other runtimes use
   * (EPIPE), not a bare Error.
   */
  #closedError(): Error {
    return new NetworkError("connection", this.remoteAddr, "EPIPE", {
      cause: new Error("Socket is closed"),
    });
  }

  writeNow(bytes: Uint8Array): number {
    if (this.#closing) return 0;
    return Math.max(0, this.#socket.write(bytes));
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
    failed?.(this.#closedError());
    const failure = error ?? this.failure;
    const reported = failure === undefined
      ? undefined
      : networkError("connection", this.remoteAddr, failure) as Error;
    if (this.handler) this.handler.ended(reported);
    // Closed while `accept` ran (Bun calls `close` inside `end()`): report it
    // once the handler exists, or it would never learn of the close.
    else this.endedEarly = { error: reported };
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
 * Socket handlers that give each connection a handler from `accept` as it
 * opens. `opened` sees each connection as its handler is set; `failed` sees a
 * connection that closes before that.
 */
function bunHandlers(
  accept: Accept,
  opened?: (connection: BunConnection) => void,
  failed?: (error: Error | undefined) => void,
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
      const early = connection.endedEarly;
      if (early) connection.handler.ended(early.error);
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

/** The OS, as Bun's `process.platform` names it. */
function bunPlatform(): string | undefined {
  return (globalThis as { process?: { platform?: string } }).process?.platform;
}

function bun(): BunApi {
  return (globalThis as unknown as { Bun: BunApi }).Bun;
}

// Loaded only for a first TLS listen or connect. A literal specifier, so
// that it is part of the module graph (Deno reads a module outside it only
// with --allow-read) and the npm build rewrites it to `.js`.
let nodeSockets: Promise<typeof NodeSockets> | undefined;

function tlsSockets(): Promise<typeof NodeSockets> {
  return nodeSockets ??= import("./_node_sockets.ts");
}

function reusePortProblem(): string | undefined {
  return reusePortOsProblem("Bun", bunPlatform());
}

export const bunTransport: Transport = {
  listen(address, accept, options) {
    if (options?.tls) {
      return tlsSockets().then((sockets) =>
        sockets.listenNode(address, accept, options, reusePortProblem)
      );
    }
    try {
      const reusePort = options?.reusePort === true;
      if (reusePort) {
        const problem = reusePortProblem();
        if (problem) throw new Error(problem);
      }
      const listener = bun().listen({
        hostname: address.hostname,
        port: address.port,
        socket: bunHandlers(accept),
        ...(reusePort ? { reusePort } : {}),
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
    if (options?.tls) {
      return (await tlsSockets()).connectNode(address, accept, options);
    }
    const signal = options?.signal;
    throwIfAborted(signal);
    let opened!: (connection: BunConnection) => void;
    let failed!: (error: unknown) => void;
    const ready = new Promise<BunConnection>((resolve, reject) => {
      opened = resolve;
      failed = (error) =>
        reject(error ?? new Error("Connection closed before it opened"));
    });
    const handlers = bunHandlers(accept, opened, failed);
    handlers.connectError = () => {};
    // Bun's connect cannot be cancelled: given up on, it is left to finish
    // and its socket closed when it arrives.
    const connecting = bun().connect({
      hostname: address.hostname,
      port: address.port,
      socket: handlers,
    });
    const socket = await untilAborted(connecting, signal, () => {
      connecting.then(
        (late) => late.data ? late.data.close() : late.end(),
        () => {},
      );
    });
    return await untilAborted(ready, signal, () => socket.data?.close());
  },
};
