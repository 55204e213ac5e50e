/**
 * The counters that `server.stats()`, `socket.stats()` and `client.stats()`
 * return: plain numbers read from integers that the data path bumps anyway,
 * so keeping them costs nothing measurable and reading them costs a loop over
 * the open connections. Every count since the server or client was made,
 * unless it says "now".
 *
 * @example
 * ```ts
 * import { Client, Server } from "@qtk/tcp-framework";
 * import assert from "node:assert";
 * await using server = new Server({ host: "127.0.0.1", port: 0 });
 * server.on("data", (socket, message) => socket.send(message));
 * await server.start();
 * await using client = new Client({ host: "127.0.0.1", port: server.port });
 * await client.request(new Uint8Array(10));
 * const stats = server.stats();
 * assert.equal(stats.messagesIn, 1);
 * // Whole frames: a 45-byte header each, PINGs (heartbeats, control) too.
 * assert.equal(stats.bytesIn, 45 + 10 + 45 * stats.pingsIn);
 * assert.equal(client.stats().messagesOut, 1);
 * ```
 *
 * @module
 */

/**
 * Traffic counters, kept per connection and summed per server or client.
 * Messages are DATA frames; PINGs are counted apart. Bytes are whole frames
 * (headers included, PINGs too) as they cross the socket: `bytesOut` counts
 * what `send` accepted, written or still buffered.
 *
 * @example
 * ```ts
 * import type { TrafficStats } from "@qtk/tcp-framework";
 * const perMessage = (s: TrafficStats) => s.bytesIn / Math.max(1, s.messagesIn);
 * ```
 */
export interface TrafficStats {
  /** DATA frames received. */
  messagesIn: number;
  /** DATA frames accepted for sending. */
  messagesOut: number;
  /** Bytes received. */
  bytesIn: number;
  /** Bytes of frames accepted for sending. */
  bytesOut: number;
  /** PING frames received. */
  pingsIn: number;
  /** PING frames sent (heartbeats, and a server's echoes). */
  pingsOut: number;
  /** Peers that sent something that is not a frame (each closed). */
  protocolErrors: number;
  /** Sends refused with `BufferFullError`. */
  bufferFull: number;
  /**
   * Control messages received out of their moment (a `done-writing` on a
   * connection that was not told to go away, a second `hello`, a server's
   * notice from a client): ignored, unanswered, and counted here.
   */
  controlIgnored: number;
  /** Now: bytes accepted by `send` and not yet taken by the runtime. */
  bufferedBytes: number;
}

/**
 * One server connection's counters: `socket.stats()`.
 *
 * @example
 * ```ts
 * import type { ConnectionStats, ServerSocket } from "@qtk/tcp-framework";
 * const busy = (socket: ServerSocket) => socket.stats().bufferedBytes > 1 << 20;
 * ```
 */
export interface ConnectionStats extends TrafficStats {
  /** `performance.now()` when the connection was accepted. */
  openedAt: number;
}

/**
 * A server's counters: `server.stats()`. Traffic sums every connection the
 * server has had, open or closed.
 *
 * @example
 * ```ts
 * import { Server } from "@qtk/tcp-framework";
 * import assert from "node:assert";
 * const server = new Server({ port: 0 });
 * assert.equal(server.stats().connectionsOpen, 0);
 * ```
 */
export interface ServerStats extends TrafficStats {
  /** Now: connections open. */
  connectionsOpen: number;
  /** Connections accepted, refused ones included. */
  connectionsTotal: number;
  /**
   * Connections closed as soon as they opened: past `maxConnections`, from
   * a peer that `proxyProtocol.trusted` leaves out, or refused by
   * `authorize`.
   */
  connectionsRefused: number;
  /**
   * TLS handshakes that failed (each an `exception`, a `TlsError`): a
   * client without a certificate, or with one not trusted, a plaintext
   * client, a client that refused the server's certificate.
   */
  tlsFailures: number;
  /**
   * Connections closed for silence (or an unfinished header) past `timeout`,
   * and TLS handshakes not done within it.
   */
  timeouts: number;
  /**
   * Connections that their peer reset (a TCP RST, `ECONNRESET`) while
   * nothing was owed either way: no partial frame received, and nothing
   * accepted by `send` left unwritten. Each ends with `closed` alone, no
   * `exception`, the same on Deno, Bun and Node.js: load balancers' health
   * checks (HAProxy's connect, PING, echo, reset) land here. A reset in the
   * middle of a frame, or with bytes still to write, is an `exception`
   * instead and not counted here.
   */
  quietResets: number;
}

/**
 * A client's counters for one server of its list, summed over its
 * connections to it (`connectionsPerServer`).
 *
 * @example
 * ```ts
 * import type { ClientServerStats } from "@qtk/tcp-framework";
 * const label = (s: ClientServerStats) => `${s.host}:${s.port} ${s.connected ? "up" : "down"}`;
 * ```
 */
export interface ClientServerStats extends TrafficStats {
  /** The server as `"host:port"`, as `client.servers` and events name it. */
  server: string;
  /** The server's host, as configured. */
  host: string;
  /** The server's port, as configured. */
  port: number;
  /** Now: whether a connection to it is open that messages may go on. */
  connected: boolean;
  /** Now: connections open to it (a leaving one included). */
  connectionsOpen: number;
  /** Connections made to it. */
  connectionsTotal: number;
  /** Connect attempts that failed. */
  connectFailures: number;
  /** Connect attempts made after a connection was lost or failed. */
  reconnects: number;
  /** Connections closed for silence (or an unfinished header) past `timeout`. */
  timeouts: number;
  /** Now: ejected as an outlier (see `outlierDetection`): it takes no request. */
  ejected: boolean;
  /** Times it was ejected as an outlier. */
  ejections: number;
}

/**
 * A client's counters: `client.stats()`. Traffic and connection counts sum
 * its servers, which `servers` lists one by one.
 *
 * @example
 * ```ts
 * import { Client } from "@qtk/tcp-framework";
 * import assert from "node:assert";
 * const client = new Client({ host: "127.0.0.1", port: 9, reconnect: false });
 * assert.equal(client.stats().pendingRequests, 0);
 * await client.close();
 * ```
 */
export interface ClientStats extends TrafficStats {
  /** Now: connections open. */
  connectionsOpen: number;
  /** Connections made. */
  connectionsTotal: number;
  /** Connect attempts that failed. */
  connectFailures: number;
  /** Connect attempts made after a connection was lost or failed. */
  reconnects: number;
  /** Connections closed for silence (or an unfinished header) past `timeout`. */
  timeouts: number;
  /** `request()`s rejected with `TimeoutError`. */
  requestTimeouts: number;
  /** Now: `request()`s waiting for their reply. */
  pendingRequests: number;
  /** Now: messages queued while disconnected. */
  queuedMessages: number;
  /** Now: bytes of the messages queued while disconnected. */
  queuedBytes: number;
  /** Per server. */
  servers: ClientServerStats[];
}
