// The Node.js socket adapter: node:net, and node:tls for TLS.

import * as nodeNet from "node:net";
import * as nodeTls from "node:tls";
import type {
  ConnectionHandler,
  NetAddress,
  Transport,
  TransportConnection,
} from "./transport.ts";
import {
  caList,
  networkError,
  nodeReusePortProblem,
  reusePortOsProblem,
  throwIfAborted,
  untilAborted,
} from "./_shared.ts";

/**
 * Why Node.js cannot listen with `reusePort` here, if it cannot: the option
 * came in Node.js 22.12 and 23.1; older versions ignore it without a word.
 */
function reusePortProblem(): string | undefined {
  return nodeReusePortProblem(process.versions.node) ??
    reusePortOsProblem("Node.js", process.platform);
}

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
    // Node's chunks are Buffers already, as the payloads made from them are.
    socket.on("data", (chunk: Uint8Array) => handler.received(chunk));
    socket.on("error", (error) => {
      if (!this.#closing) {
        this.#failure ??= networkError("connection", this.remoteAddr, error);
      }
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

export const nodeTransport: Transport = {
  async listen(address, accept, options) {
    const tls = options?.tls;
    const reusePort = options?.reusePort === true;
    const problem = reusePort ? reusePortProblem() : undefined;
    if (problem) throw new Error(problem);
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
      // `reusePort` is not in the Node.js 20 types this builds against.
      const listen: nodeNet.ListenOptions & { reusePort?: boolean } = {
        host: address.hostname,
        port: address.port,
        ...(reusePort ? { reusePort } : {}),
      };
      server.listen(listen, () => {
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
