/**
 * The request server: accepts connections, emits each request as `data`, and
 * keeps connections alive (echoing PINGs, pinging quiet peers, dropping
 * silent ones) with one timer for all of them.
 *
 * @example
 * ```ts
 * import { Server } from "@qtk/tcp-framework/server";
 * const server = new Server({ host: "127.0.0.1", port: 0 });
 * server.on("data", (socket, { uuid, data }) => server.send(socket, { uuid, data }));
 * await server.start();
 * console.log(`listening on ${server.port}`);
 * await server.stop();
 * ```
 *
 * @module
 */

import {
  type Frame,
  type ProtocolVersion,
  SIGN_DATA,
  SIGN_PING,
} from "./codec.ts";
import { ping, silence, TickClock } from "./_liveness.ts";
import { FramedConnection, sendFrame } from "./_connection.ts";
import { gracePeriod } from "./_deadlines.ts";
import { controlFrame, controlKind } from "./_control.ts";
import { emit, TypedEventTarget } from "./events.ts";
import {
  hasMessageShape,
  type Message,
  type SendOptions,
  toDataFrame,
  wantsTransfer,
} from "./message.ts";
import { type ConnectionOptions, connectionSettings } from "./_options.ts";
import { checkObject } from "./_checks.ts";
import { type OptionTable, parseOptions } from "./_option_table.ts";
import { SERVER_TABLE } from "./_server_options.ts";
import { checkServerTls } from "./_tls_options.ts";
import {
  ClosedError,
  ConnectionLimitError,
  NetworkError,
  PeerRefusedError,
  ProxyProtocolError,
  TimeoutError,
} from "./errors.ts";
import {
  DEFAULT_PROXY_HEADER_TIMEOUT,
  ProxyGate,
  type ProxyPolicy,
} from "./_proxy_gate.ts";
import { inNetworks } from "./_ip.ts";
import type { ProxyHeader } from "./proxy_protocol.ts";
import type { ConnectionStats, ServerStats } from "./stats.ts";
import { trafficOf, TrafficTotals } from "./_stats.ts";
import {
  type Channel,
  channels,
  loadChannels,
  type MessageContextOf,
  type Trace,
  traceSync,
  tracing,
} from "./_diagnostics.ts";
import type {
  ConnectionHandler,
  NetAddress,
  PeerCertificate,
  ServerTlsOptions,
  Transport,
  TransportConnection,
  TransportListener,
} from "./transport/transport.ts";

export {
  DEFAULT_GRACE_PERIOD,
  DEFAULT_HEARTBEAT,
  DEFAULT_HOST,
  DEFAULT_MAX_BUFFERED_BYTES,
  DEFAULT_TIMEOUT,
} from "./_options.ts";
export type { ConnectionOptions } from "./_options.ts";
export { DEFAULT_PROXY_HEADER_TIMEOUT };
export { DEFAULT_DRAIN_SPREAD } from "./_server_options.ts";

/** How often draining connections are looked at (deadline, idleness). */
const DRAIN_TICK_MS = 25;
/**
 * The pace of `stop()`'s notices: a server with few connections tells them
 * all at once, one with many spreads them (up to `drainSpread`).
 * @example `DRAIN_NOTICES_PER_SECOND === 100`
 */
export const DRAIN_NOTICES_PER_SECOND = 100;
/**
 * A draining 3.x peer (which never says it is done) is closed once no frame
 * has gone either way for this long, with as many replies sent as requests
 * read...
 */
const LEGACY_IDLE_MS = 100;
/** ...or, when it sent messages that get no reply, once silent this long. */
const LEGACY_SILENT_MS = 1000;

import type { ProxyProtocolOptions } from "./_proxy_gate.ts";
export type { ProxyProtocolOptions };

/**
 * Options of {@linkcode Server}.
 *
 * @example
 * ```ts
 * import type { ServerOptions } from "@qtk/tcp-framework";
 * const options: ServerOptions = { host: "0.0.0.0", port: 8080, timeout: 60 };
 * ```
 */
export interface ServerOptions extends ConnectionOptions {
  /**
   * Host name or IP address to listen on.
   * @default {"localhost"}
   */
  host?: string;
  /** TCP port to listen on; 0 picks a free one (read it back from `port`). */
  port: number;
  /**
   * Connections served at once; one more is closed as soon as it opens.
   * @default {Infinity}
   */
  maxConnections?: number;
  /**
   * Seconds after which a connection is drained (as by `stop()`, and then
   * its client connects again): behind a load balancer, which balances
   * connections, not requests, this spreads long-lived clients over
   * instances added since they connected. Each connection's age is jittered
   * by ±10% so that connections made together do not all drain together.
   * @default {Infinity (off)}
   */
  maxConnectionAge?: number;
  /**
   * Seconds over which `stop()` spreads its `going-away` notices, at most
   * {@linkcode DRAIN_NOTICES_PER_SECOND} a second (so a few connections are
   * all told at once, 300 over 3 s), and never past half the
   * `gracePeriod`: the clients then reconnect elsewhere in a stream, not a
   * herd.
   * @default {5}
   */
  drainSpread?: number;
  /**
   * Serve TLS with this certificate chain and private key (PEM strings), using
   * the runtime's own TLS stack; plain TCP without it. With `ca` and
   * `requestCert: true` (mutual TLS), only clients whose certificate chains
   * to `ca` are served; `socket.peerCertificate` then says who each is. Each
   * connection is counted (`maxConnections`) as it is accepted and announced
   * (`connected`) once its handshake has succeeded; a failed handshake is an
   * `exception` alone (a {@linkcode TlsError}), and one not done within
   * `timeout` a `TimeoutError`. {@linkcode Server.setTls} replaces the
   * certificate while the server runs.
   */
  tls?: ServerTlsOptions;
  /**
   * Decides whether to serve a connection, once it is known who is at the
   * other end: after the TLS handshake (`socket.peerCertificate` is set),
   * after the PROXY header (`socket.remoteAddr` is the client's), else as it
   * is accepted; always before `connected` and before any of its frames is
   * read. Return `true` to serve it. Anything else (`false`, a promise: the
   * decision must be synchronous) or a throw refuses it: the connection is
   * closed, counted in `connectionsRefused`, and reported as an `exception`
   * (a {@linkcode PeerRefusedError}, whose `cause` is what was thrown).
   */
  authorize?: (socket: ServerSocket) => boolean;
  /**
   * Serve behind a load balancer that speaks the PROXY protocol (HAProxy's
   * `send-proxy` / `send-proxy-v2`, nginx `proxy_protocol on`): every
   * connection must start with a v1 or v2 PROXY header, decoded before its
   * first frame, and `socket.remoteAddr` is then the original client's
   * address (the proxy's is `socket.proxyAddr`). A connection whose header is
   * invalid, not whole within `timeout`, or that comes from outside `trusted`
   * is closed with an `exception` (a {@linkcode ProxyProtocolError}); others
   * are not affected. Never guessed: with it off, a PROXY header is refused
   * like any other bytes that are not a frame. Not with `tls` (the header
   * precedes the handshake, which the runtime's TLS stack performs).
   * @default {false}
   */
  proxyProtocol?: boolean | ProxyProtocolOptions;
  /**
   * Share the port with other servers (other processes, usually) that set it
   * too: the kernel spreads new connections over them (`SO_REUSEPORT`), one
   * process per core. Linux only; Deno 2 also needs `--unstable-net`;
   * Node.js needs 22.12 or later. Where it would be ignored, `start()`
   * rejects rather than serve alone. See `serveWorkers` in `./workers`.
   * @default {false}
   */
  reusePort?: boolean;
}

// The options table is kept in step with the interface (a key without a row,
// or a row without a key, fails the type check).
SERVER_TABLE satisfies OptionTable<ServerOptions>;

/**
 * One client connection, as the server's events hand it over.
 *
 * @example
 * ```ts
 * import type { ServerSocket } from "@qtk/tcp-framework";
 * function reply(socket: ServerSocket, uuid: string) {
 *   socket.send({ uuid, data: new TextEncoder().encode("ok") });
 * }
 * ```
 */
export interface ServerSocket {
  /**
   * The client's address: with `proxyProtocol`, the original client's, as the
   * PROXY header gave it (the proxy's own for a `LOCAL` or `UNKNOWN` header;
   * for a UNIX-socket client, its path with port 0).
   */
  readonly remoteAddr: NetAddress;
  /**
   * With `proxyProtocol`: the address of the proxy that relayed the
   * connection (its TCP peer). Undefined without it.
   */
  readonly proxyAddr?: NetAddress;
  /** With `proxyProtocol`: the decoded PROXY header. Undefined without it. */
  readonly proxyHeader?: ProxyHeader;
  /**
   * With `tls`: the certificate the client presented, as verified (with
   * `requestCert`, every client served has one). Set before `connected`.
   * Undefined without TLS, and when the client sent none.
   */
  readonly peerCertificate?: PeerCertificate;
  /** Bytes accepted by `send` and not yet taken by the runtime. */
  readonly bufferedAmount: number;
  /** True once the connection is closing or closed. */
  readonly closed: boolean;
  /**
   * Sends a message. Frames sent in the same turn go out in one write. The
   * payload is copied or written before `send` returns, so the caller may
   * reuse it at once; with `{ transfer: true }` its memory is taken instead
   * (see {@linkcode SendOptions}), and the caller's buffer is detached once
   * `send` accepts the message (not when it throws).
   * @throws {TypeError} If the uuid, data or options are invalid; nothing is
   *   written.
   * @throws {ClosedError} If the connection is closed.
   * @throws {BufferFullError} If `maxBufferedBytes` would be passed.
   */
  send(message: Message, options?: SendOptions): void;
  /** Resolves once everything sent so far has been taken by the runtime. */
  drained(): Promise<void>;
  /** Closes the connection after buffered frames go out (within the grace period). */
  close(): Promise<void>;
  /** This connection's counters (a fresh object each call). */
  stats(): ConnectionStats;
}

/**
 * The server's events and their positional arguments, as passed to
 * {@linkcode Server.on}. With `addEventListener`, each is a `CustomEvent`
 * whose `detail` names the same values.
 *
 * @example
 * ```ts
 * import type { ServerEvents } from "@qtk/tcp-framework";
 * type DataArgs = ServerEvents["data"]; // [socket, { uuid, data }]
 * ```
 */
export interface ServerEvents {
  /** Listening. */
  started: [];
  /** Stopped: the listener and every connection are closed. */
  stopped: [];
  /** A client connected. */
  connected: [socket: ServerSocket];
  /** A client's connection closed. */
  closed: [socket: ServerSocket];
  /** Something failed; `socket` is the connection concerned, if any. */
  exception: [socket: ServerSocket | undefined, error: unknown];
  /** A request arrived. */
  data: [socket: ServerSocket, message: Message];
}

/**
 * `detail` of each server event when listened to with `addEventListener`.
 *
 * @example
 * ```ts
 * import { Server, type ServerEventDetails } from "@qtk/tcp-framework";
 * const server = new Server({ port: 0 });
 * server.addEventListener("data", (event) => {
 *   const { socket, uuid, data }: ServerEventDetails["data"] = event.detail;
 *   socket.send({ uuid, data });
 * });
 * ```
 */
export interface ServerEventDetails {
  /** No detail. */
  started: null;
  /** No detail. */
  stopped: null;
  /** The new connection. */
  connected: { socket: ServerSocket };
  /** The closed connection. */
  closed: { socket: ServerSocket };
  /** The connection concerned (if any) and the error. */
  exception: { socket: ServerSocket | undefined; error: unknown };
  /** The connection and the request. */
  data: { socket: ServerSocket; uuid: string; data: Uint8Array };
}

class Connection implements ServerSocket {
  readonly framed: FramedConnection;
  /** Whether `connected` was emitted, so `closed` is only emitted after it. */
  announced = false;
  readonly openedAt: number = performance.now();
  readonly #protocol: ProtocolVersion;
  readonly #graceMs: number;
  /** With `proxyProtocol`, once the header is in. */
  proxyHeader: ProxyHeader | undefined;
  /** The peer asked `hello`: it will answer `going-away` with `done-writing`. */
  aware = false;
  /**
   * The peer said `done-writing` once told to go away: every frame it wrote
   * has been read.
   */
  doneWriting = false;
  /** With TLS: its handshake is under way (it is not announced yet). */
  handshaking = false;
  /** Its failure was reported already (refused, a PROXY header, a timeout). */
  reported = false;
  /** Told `going-away`; closed when its peer is done or at `drainDeadline`. */
  draining = false;
  drainDeadline = Infinity;
  /** When `maxConnectionAge` drains it (performance.now() time). */
  ageDeadline = Infinity;
  /** DATA frames received and sent: balanced, a 3.x peer waits for no reply. */
  dataIn = 0;
  dataOut = 0;
  #clientAddr: NetAddress | undefined;

  constructor(
    transport: TransportConnection,
    options: ConstructorParameters<typeof FramedConnection>[1],
    graceMs: number,
    events: ConstructorParameters<typeof FramedConnection>[2],
  ) {
    this.framed = new FramedConnection(transport, options, events);
    this.#protocol = options.protocol;
    this.#graceMs = graceMs;
  }

  get remoteAddr(): NetAddress {
    return this.#clientAddr ?? this.framed.remoteAddr;
  }

  get proxyAddr(): NetAddress | undefined {
    return this.proxyHeader && this.framed.remoteAddr;
  }

  get peerCertificate(): PeerCertificate | undefined {
    return this.framed.peerCertificate;
  }

  /** Takes the PROXY header's source as the client's address, if it has one. */
  proxied(header: ProxyHeader): void {
    this.proxyHeader = header;
    if (header.command === "PROXY" && header.source) {
      this.#clientAddr = { ...header.source };
    }
  }

  get bufferedAmount(): number {
    return this.framed.bufferedAmount;
  }

  get closed(): boolean {
    return this.framed.closed;
  }

  send(message: Message, options?: SendOptions): void {
    const transfer = options === undefined ? false : wantsTransfer(options);
    if (!hasMessageShape(message, this.#protocol) || this.framed.closed) {
      toDataFrame(message, this.#protocol); // throws the TypeError, if any
      if (this.framed.closed) {
        throw new ClosedError("Cannot send: the connection is closed");
      }
    }
    this.framed.send(SIGN_DATA, message.uuid, message.data, transfer);
    this.dataOut++;
  }

  drained(): Promise<void> {
    return this.framed.drained();
  }

  close(): Promise<void> {
    const grace = gracePeriod(this.#graceMs);
    return this.framed.close(grace.over).finally(grace.end);
  }

  stats(): ConnectionStats {
    return { ...trafficOf(this.framed), openedAt: this.openedAt };
  }
}

/**
 * A `@qtk/tcp-framework` server. Extends `EventTarget`; also offers
 * `on`/`once`/`off` with the Node.js package's positional listener arguments.
 * A listener that throws is reported as `exception` and the server goes on.
 *
 * @example
 * ```ts
 * import { Server } from "@qtk/tcp-framework";
 * await using server = new Server({ host: "127.0.0.1", port: 0, timeout: 60 });
 * server.on("data", (socket, { uuid, data }) => server.send(socket, { uuid, data }));
 * server.on("exception", (socket, error) => console.error(socket?.remoteAddr, error));
 * await server.start();
 * ```
 */
export class Server extends TypedEventTarget<ServerEvents, ServerEventDetails> {
  /** The host the server listens on, as configured. */
  readonly host: string;
  readonly #port: number;
  readonly #heartbeatMs: number | undefined;
  readonly #timeoutMs: number | undefined;
  readonly #tickMs: number | undefined;
  readonly #graceMs: number;
  readonly #maxConnections: number;
  readonly #connectionOptions: {
    protocol: ProtocolVersion;
    maxFrameSize: number;
    maxBufferedBytes: number;
  };
  readonly #transport: Transport;
  readonly #connections = new Set<Connection>();
  /** Traffic of the connections that have closed. */
  readonly #closedTraffic = new TrafficTotals();
  #connectionsTotal = 0;
  #connectionsRefused = 0;
  #tlsFailures = 0;
  #timeouts = 0;
  #quietResets = 0;
  /** The traced `data` dispatch under way, if any. */
  #tracedMessage: MessageContextOf<Server, ServerSocket> | undefined;
  #listener: TransportListener | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #tickClock: TickClock | undefined;
  #stopping: Promise<void> | undefined;
  readonly #maxAgeMs: number | undefined;
  readonly #drainSpreadMs: number;
  /** stop()'s notices not sent yet, and when the next is due. */
  #notices: Connection[] = [];
  #noticeAt = 0;
  #noticeEveryMs = 0;
  readonly #protocol: ProtocolVersion;
  /** While stopping: when the grace period of `stop()` runs out. */
  #stopDeadline: number | undefined;
  /** Runs while some connection drains: its deadline, a 3.x peer's idleness. */
  #drainTimer: ReturnType<typeof setInterval> | undefined;
  /** Resolves `stop()`'s wait once the last connection has closed. */
  #emptied: (() => void) | undefined;
  #starting: Promise<void> | undefined;
  #tls: ServerTlsOptions | undefined;
  readonly #authorize: ((socket: ServerSocket) => boolean) | undefined;
  readonly #proxy: ProxyPolicy | undefined;
  readonly #reusePort: boolean;

  /**
   * Creates the instance.
   *
   * @param options Where to listen and how to keep connections alive.
   * @throws {TypeError | RangeError} If an option is invalid; the message names it.
   */
  constructor(options: ServerOptions) {
    super({
      detail: serverDetail,
      listenerFailed: (type, args, error) => {
        const socket = args[0] instanceof Connection ? args[0] : undefined;
        const traced = this.#tracedMessage;
        if (
          type === "data" && traced !== undefined && traced.error === undefined
        ) {
          traced.error = error;
          channels?.message.error.publish(traced);
        }
        this[emit]("exception", socket, error);
      },
    });
    checkObject("options", options);
    const parsed = parseOptions(SERVER_TABLE, options);
    const common = connectionSettings(parsed);
    this.host = parsed.host;
    this.#port = parsed.port;
    this.#heartbeatMs = common.heartbeatMs;
    this.#timeoutMs = common.timeoutMs;
    this.#tickMs = common.tickMs;
    this.#graceMs = common.graceMs;
    this.#connectionOptions = common.connection;
    this.#protocol = common.connection.protocol;
    this.#maxConnections = parsed.maxConnections;
    this.#tls = parsed.tls;
    this.#authorize = parsed.authorize as
      | ((socket: ServerSocket) => boolean)
      | undefined;
    this.#proxy = parsed.proxyProtocol;
    this.#reusePort = parsed.reusePort;
    const maxAge = parsed.maxConnectionAge;
    this.#maxAgeMs = Number.isFinite(maxAge) ? maxAge * 1000 : undefined;
    this.#drainSpreadMs = parsed.drainSpread * 1000;
    if (this.#proxy && this.#tls) {
      throw new TypeError(
        "Invalid proxyProtocol with tls: the PROXY header comes before the TLS handshake, which the runtime's TLS performs; terminate TLS at the proxy",
      );
    }
    this.#transport = common.transport;
  }

  /**
   * The port the server listens on: the real one once started (useful with
   * port 0), the configured one before.
   *
   * @example
   * ```ts
   * import assert from "node:assert";
   * import { Server } from "@qtk/tcp-framework";
   * await using server = new Server({ host: "127.0.0.1", port: 0 });
   * await server.start();
   * assert.ok(server.port > 0);
   * ```
   */
  get port(): number {
    return this.#listener?.addr.port ?? this.#port;
  }

  /**
   * True between `start()` and `stop()`.
   *
   * @example
   * ```ts
   * import assert from "node:assert";
   * import { Server } from "@qtk/tcp-framework";
   * assert.ok(!new Server({ port: 0 }).listening);
   * ```
   */
  get listening(): boolean {
    return this.#listener !== undefined && this.#stopping === undefined;
  }

  /**
   * The open connections.
   *
   * @example
   * ```ts
   * import assert from "node:assert";
   * import { Server } from "@qtk/tcp-framework";
   * assert.equal(new Server({ port: 0 }).connections.size, 0);
   * ```
   */
  get connections(): ReadonlySet<ServerSocket> {
    return this.#connections;
  }

  /**
   * The server's counters: connections, and messages, bytes and PINGs each
   * way summed over every connection it has had. A fresh object each call,
   * costing a loop over the open connections (read it every few seconds, not
   * per message); `socket.stats()` gives one connection's.
   *
   * @returns The counters; see {@linkcode ServerStats}.
   *
   * @example
   * ```ts
   * import { Server } from "@qtk/tcp-framework";
   * import assert from "node:assert";
   * await using server = new Server({ host: "127.0.0.1", port: 0 });
   * await server.start();
   * const { connectionsOpen, messagesIn, bytesOut } = server.stats();
   * assert.deepEqual([connectionsOpen, messagesIn, bytesOut], [0, 0, 0]);
   * ```
   */
  stats(): ServerStats {
    const traffic = this.#closedTraffic.with(
      Array.from(this.#connections, (connection) => connection.framed),
    );
    return {
      connectionsOpen: this.#connections.size,
      connectionsTotal: this.#connectionsTotal,
      connectionsRefused: this.#connectionsRefused,
      tlsFailures: this.#tlsFailures,
      timeouts: this.#timeouts,
      quietResets: this.#quietResets,
      ...traffic,
    };
  }

  /**
   * Starts listening, then emits `started`.
   *
   * @returns Resolves once listening.
   * @throws {Error} If the server is already started, or the address cannot
   *   be bound (for example, the port is taken; the cause is the runtime's
   *   error), or `reusePort` cannot be honoured here (the message says why).
   *
   * @example
   * ```ts
   * import { Server } from "@qtk/tcp-framework";
   * await using server = new Server({ host: "127.0.0.1", port: 0 });
   * await server.start();
   * ```
   */
  start(): Promise<void> {
    if (this.#listener || this.#starting) {
      return Promise.reject(new Error("Server is already started"));
    }
    this.#starting = this.#start().finally(() => this.#starting = undefined);
    return this.#starting;
  }

  async #start(): Promise<void> {
    // Loaded beside the listen, so no connection comes before the channels.
    const diagnostics = loadChannels();
    try {
      this.#listener = await this.#transport.listen(
        { hostname: this.host, port: this.#port },
        (transport) => this.#accept(transport),
        // Clients always read, so the two ends never wait on each other.
        {
          tls: this.#tls,
          readAfterWrite: true,
          ...(this.#reusePort ? { reusePort: true } : {}),
        },
      );
    } catch (error) {
      // The transport names the address and reason of a socket error itself.
      if (error instanceof NetworkError) throw error;
      throw new Error(
        `Cannot listen on ${this.host}:${this.#port}: ${
          (error as Error)?.message ?? error
        }`,
        { cause: error },
      );
    }
    await diagnostics;
    this.#stopping = undefined;
    // maxConnectionAge is checked by the liveness tick, at most a tenth of
    // the age late.
    const tick = Math.min(
      this.#tickMs ?? Infinity,
      Math.max(5, (this.#maxAgeMs ?? Infinity) / 10),
    );
    if (tick !== Infinity) {
      this.#tickClock = new TickClock(tick);
      this.#timer = setInterval(() => this.#tick(), tick);
    }
    this[emit]("started");
  }

  /**
   * Drains, then emits `stopped`: stops accepting, tells every connection to
   * go away (a control message, see PROTOCOL.md), goes on reading and
   * answering, and closes each connection once its client is done: a client
   * of this package stops writing, says so, waits for its replies and closes
   * (so every frame it wrote is read, and every request answered if its
   * handler answers in time); a 3.x or 2.x client, which ignores the notice,
   * is closed once it has been idle a moment (no frame either way, nothing
   * buffered, as many replies sent as requests read, or a second of
   * silence). Whatever is still open when `gracePeriod` runs out is closed
   * then. Never exits the process. Calling it again returns the same
   * promise; on a server that is not started it resolves at once.
   *
   * @returns Resolves once everything is closed.
   *
   * @example
   * ```ts
   * import { Server } from "@qtk/tcp-framework";
   * const server = new Server({ host: "127.0.0.1", port: 0 });
   * await server.start();
   * await server.stop();
   * ```
   */
  stop(): Promise<void> {
    if (this.#starting) {
      return this.#starting.then(() => this.stop(), () => {});
    }
    if (!this.#listener) return Promise.resolve();
    this.#stopping ??= this.#stop(this.#listener);
    return this.#stopping;
  }

  /**
   * Replaces the TLS settings for the handshakes that start from now on: a
   * renewed certificate and key, and for mutual TLS the CAs client
   * certificates must chain to (and `requestCert`). Connections already
   * open, and handshakes under way, go on with what they began with, so
   * certificates rotate without a restart and without dropping anything.
   * Checked as the `tls` option is; on a server not started yet, it is what
   * `start()` will use.
   *
   * @param tls The new settings, as the `tls` option.
   * @throws {TypeError} If `tls` is invalid or cannot be read (the PEM, a
   *   key that is not the certificate's), or the server was made without
   *   `tls`: the settings in use stay.
   *
   * @example
   * ```ts
   * import { readFileSync, watch } from "node:fs";
   * import { Server } from "@qtk/tcp-framework";
   * const files = () => ({
   *   cert: readFileSync("/etc/tls/tls.crt", "utf8"),
   *   key: readFileSync("/etc/tls/tls.key", "utf8"),
   * });
   * export function serveRotating(): Server {
   *   const server = new Server({ port: 7443, tls: files() });
   *   // cert-manager and the like replace the files: reload them then.
   *   watch("/etc/tls", () => {
   *     try {
   *       server.setTls(files());
   *     } catch (error) {
   *       console.error("keeping the current certificate:", error); // a half-written pair
   *     }
   *   });
   *   return server;
   * }
   * ```
   */
  setTls(tls: ServerTlsOptions): void {
    if (this.#tls === undefined) {
      throw new TypeError(
        "Cannot set tls: this server was made without tls and serves plain TCP",
      );
    }
    const checked = checkServerTls("tls", tls);
    if (checked === undefined) {
      throw new TypeError(
        "Invalid tls undefined: expected an object with cert and key (PEM)",
      );
    }
    const listener = this.#listener;
    if (listener !== undefined) {
      if (listener.setTls === undefined) {
        throw new TypeError(
          "Cannot set tls: this server's transport cannot replace its certificate",
        );
      }
      listener.setTls(checked);
    }
    this.#tls = checked;
  }

  /**
   * Sends a message on a connection: the Node.js package's
   * `server.send(socket, {uuid, data})`, same as `socket.send(message)`.
   *
   * @param socket The connection, from a `connected` or `data` event.
   * @param message The uuid (usually the request's) and the payload.
   * @param options `{ transfer: true }` hands the payload's memory over
   *   instead of having it copied (see {@linkcode SendOptions}).
   * @throws {TypeError} If the uuid, data or options are invalid; nothing is
   *   written.
   * @throws {ClosedError} If the connection is closed.
   * @throws {BufferFullError} If the connection's buffer limit would be passed.
   *
   * @example
   * ```ts
   * import { Server } from "@qtk/tcp-framework";
   * const server = new Server({ port: 0 });
   * server.on("data", (socket, { uuid, data }) => server.send(socket, { uuid, data }));
   * ```
   */
  send(socket: ServerSocket, message: Message, options?: SendOptions): void {
    if (!(socket instanceof Connection)) {
      throw new TypeError("Invalid socket: expected a socket of this server");
    }
    socket.send(message, options);
  }

  /**
   * Stops the server (`await using` support).
   *
   * @example
   * ```ts
   * import { Server } from "@qtk/tcp-framework";
   * await using server = new Server({ host: "127.0.0.1", port: 0 });
   * await server.start();
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async #stop(listener: TransportListener): Promise<void> {
    const drain = channels?.drain;
    if (drain?.hasSubscribers) {
      drain.publish({ server: this, connections: this.#connections.size });
    }
    const deadline = performance.now() + this.#graceMs;
    // The listener is closed first, the notice sent only then: a client that
    // reconnects on it must find the port closed, not land in the backlog of
    // a listener about to close (the system would reset that connection, and
    // whatever the client had written on it with it).
    await listener.close();
    this.#stopDeadline = deadline;
    // The notices go out at a pace, over at most drainSpread (and half the
    // grace period, so the last told still have time to finish).
    const count = this.#connections.size;
    const spreadMs = Math.min(
      (count - 1) * 1000 / DRAIN_NOTICES_PER_SECOND,
      this.#drainSpreadMs,
      this.#graceMs / 2,
    );
    this.#notices = Array.from(this.#connections);
    this.#noticeAt = performance.now();
    this.#noticeEveryMs = count > 1 ? Math.max(0, spreadMs) / (count - 1) : 0;
    this.#sendNotices(performance.now());
    if (this.#connections.size > 0) {
      await new Promise<void>((resolve) => this.#emptied = resolve);
    }
    clearInterval(this.#timer);
    this.#timer = undefined;
    clearInterval(this.#drainTimer);
    this.#drainTimer = undefined;
    this.#notices = [];
    this.#stopDeadline = undefined;
    this.#listener = undefined;
    this[emit]("stopped");
  }

  /**
   * Tells a connection to go away and keeps serving it until its client is
   * done, or `deadline` passes.
   */
  #drain(connection: Connection, deadline: number): void {
    if (connection.closed) return;
    if (connection.handshaking) {
      // Nothing read from it yet, nothing owed: its client connects again
      // elsewhere, as if the listener had closed a moment sooner.
      connection.framed.close();
      return;
    }
    connection.drainDeadline = Math.min(connection.drainDeadline, deadline);
    if (connection.draining) return;
    connection.draining = true;
    try {
      sendFrame(connection.framed, controlFrame("going-away", this.#protocol));
    } catch { /* a full buffer: it is closed at its deadline, or when idle */ }
    this.#drainTimer ??= setInterval(() => this.#drainTick(), DRAIN_TICK_MS);
  }

  /** Tells the connections whose turn has come to go away. */
  #sendNotices(now: number): void {
    const notices = this.#notices;
    let told = 0;
    while (told < notices.length && this.#noticeAt <= now) {
      this.#drain(notices[told++], this.#stopDeadline!);
      this.#noticeAt += this.#noticeEveryMs;
    }
    if (told > 0) notices.splice(0, told);
    if (notices.length > 0) {
      this.#drainTimer ??= setInterval(() => this.#drainTick(), DRAIN_TICK_MS);
    }
  }

  #drainTick(): void {
    const now = performance.now();
    if (this.#notices.length > 0) this.#sendNotices(now);
    let draining = this.#notices.length;
    for (const connection of this.#connections) {
      if (!connection.draining || connection.closed) continue;
      const framed = connection.framed;
      framed.stamp(now);
      if (now >= connection.drainDeadline) {
        framed.close();
        continue;
      }
      draining++;
      if (framed.bufferedAmount > 0) continue;
      // A client of this package says done-writing once it has sent all:
      // closed then as soon as every message it sent is answered (replies
      // to its send()s too, which it cannot wait for by itself), or once
      // silent a while when some get no reply. Until then it is kept.
      const quiet = now - Math.max(framed.lastReceived, framed.lastSent);
      const answered = connection.dataIn <= connection.dataOut;
      if (connection.aware) {
        if (
          connection.doneWriting && (answered || quiet >= LEGACY_SILENT_MS)
        ) framed.close();
        continue;
      }
      // A 3.x client never says it is done: closed once idle.
      if (quiet >= LEGACY_IDLE_MS && (answered || quiet >= LEGACY_SILENT_MS)) {
        framed.close();
      }
    }
    if (draining === 0) {
      clearInterval(this.#drainTimer);
      this.#drainTimer = undefined;
    }
  }

  #accept(transport: TransportConnection): ConnectionHandler {
    const connection: Connection = new Connection(
      transport,
      this.#connectionOptions,
      this.#graceMs,
      {
        frame: (frame) => this.#receive(connection, frame),
        protocolError: (error) => {
          if (channels?.protocolError.hasSubscribers) {
            this.#publish(channels.protocolError, connection, { error });
          }
          this[emit]("exception", connection, error);
        },
        secured: () => this.#secured(connection),
        closed: (failure, quietReset) => {
          this.#connections.delete(connection);
          this.#closedTraffic.add(connection.framed);
          if (this.#connections.size === 0 && this.#emptied) {
            const emptied = this.#emptied;
            this.#emptied = undefined;
            queueMicrotask(emptied);
          }
          if (!connection.announced) {
            // A failed TLS handshake: an exception alone, as no `connected`
            // came (a peer that left without a byte, a port check, is none).
            if (
              failure !== undefined && connection.handshaking &&
              !connection.reported
            ) {
              this.#tlsFailures++;
              this.#refused(connection, failure);
            } else if (
              failure !== undefined && channels?.failed.hasSubscribers
            ) {
              this.#publish(channels.failed, connection, { error: failure });
            }
            return;
          }
          // A peer that resets while nothing is owed either way (a load
          // balancer's health check does, to spare itself TIME_WAIT) lost
          // nothing: it ends like a close, counted, on every runtime.
          if (quietReset) this.#quietResets++;
          const error = quietReset ? undefined : failure;
          if (channels?.closed.hasSubscribers) {
            this.#publish(channels.closed, connection, {
              error,
              stats: connection.stats(),
            });
          }
          if (error !== undefined) this[emit]("exception", connection, error);
          this[emit]("closed", connection);
        },
      },
    );
    this.#connections.add(connection);
    this.#connectionsTotal++;
    if (this.#maxAgeMs !== undefined) {
      connection.ageDeadline = performance.now() +
        this.#maxAgeMs * (0.9 + Math.random() * 0.2);
    }
    if (this.#stopDeadline !== undefined) {
      // Accepted as the listener closed: its client may already have
      // written to it, so it is served and drained like the others.
      this.#drain(connection, this.#stopDeadline);
    }
    if (this.#connections.size > this.#maxConnections) {
      this.#connectionsRefused++;
      connection.framed.close();
      this.#refused(
        connection,
        new ConnectionLimitError(this.#maxConnections),
      );
    } else if (this.#proxy) {
      return this.#acceptProxied(connection, this.#proxy);
    } else if (this.#tls) {
      // Announced once its handshake has succeeded (`#secured`).
      connection.handshaking = true;
    } else {
      // After the transport has its handler, so a listener may close at once.
      queueMicrotask(() => this.#announce(connection));
    }
    return connection.framed;
  }

  /** Its TLS handshake succeeded: the peer's certificate is known. */
  #secured(connection: Connection): void {
    connection.handshaking = false;
    this.#announce(connection);
  }

  #announce(connection: Connection): void {
    if (connection.closed) return;
    if (this.#authorize !== undefined && !this.#authorized(connection)) return;
    connection.announced = true;
    if (channels?.opened.hasSubscribers) {
      this.#publish(channels.opened, connection, {});
    }
    this[emit]("connected", connection);
  }

  /**
   * Asks `authorize` about a connection; closes and reports one it refuses.
   * @returns Whether it may be served.
   */
  #authorized(connection: Connection): boolean {
    let verdict: unknown;
    let thrown: unknown;
    let threw = false;
    try {
      verdict = this.#authorize!(connection);
    } catch (error) {
      thrown = error;
      threw = true;
    }
    if (verdict === true) return true;
    if (verdict instanceof Promise) {
      verdict.catch(() => {});
      thrown = new TypeError(
        "authorize returned a promise: it must decide synchronously, with true to serve the connection",
      );
      threw = true;
    }
    this.#connectionsRefused++;
    connection.framed.close();
    this.#refused(
      connection,
      new PeerRefusedError(
        connection.remoteAddr,
        threw ? { cause: thrown } : undefined,
      ),
    );
    return false;
  }

  /** Reports a connection closed before it was announced. */
  #refused(connection: Connection, error: unknown): void {
    connection.reported = true;
    if (channels?.failed.hasSubscribers) {
      this.#publish(channels.failed, connection, { error });
    }
    this[emit]("exception", connection, error);
  }

  #publish(channel: Channel, connection: Connection, extra: object): void {
    channel.publish({
      side: "server",
      server: this,
      socket: connection,
      remoteAddr: connection.remoteAddr,
      ...extra,
    });
  }

  /**
   * A connection that must start with a PROXY header: announced once the
   * header is in, so `connected` already sees the client's address.
   */
  #acceptProxied(
    connection: Connection,
    policy: ProxyPolicy,
  ): ConnectionHandler {
    const peer = connection.framed.remoteAddr;
    if (policy.trusted && !inNetworks(peer.hostname, policy.trusted)) {
      this.#connectionsRefused++;
      connection.framed.close();
      this.#refused(
        connection,
        new ProxyProtocolError(
          `Connection refused: ${peer.hostname} is not trusted to send a PROXY header`,
          "untrusted",
        ),
      );
      return connection.framed;
    }
    return new ProxyGate(connection.framed, policy.timeoutMs, {
      header: (header) => {
        connection.proxied(header);
        this.#announce(connection);
      },
      failed: (error) => {
        this.#refused(connection, error);
        connection.framed.close();
      },
    });
  }

  #receive(connection: Connection, frame: Frame): void {
    if (frame.sign === SIGN_PING) {
      const control = controlKind(frame.uuid, this.#protocol);
      let answer: Frame | undefined = frame;
      if (control !== undefined) {
        // Each counts only in its moment (PROTOCOL.md): hello as the first
        // frame; done-writing from a client that said hello, once told to go
        // away. Anything else (a client has no business sending the server's
        // notices) is ignored and counted: it is not answered, and it earns
        // no exemption from the silence timeout or the header deadline.
        answer = undefined;
        if (control === "hello" && connection.framed.framesIn === 1) {
          connection.aware = true;
          answer = controlFrame("hello-ack", this.#protocol);
        } else if (
          control === "done-writing" && connection.draining &&
          connection.aware && !connection.doneWriting
        ) {
          connection.doneWriting = true;
        } else {
          connection.framed.controlIgnored++;
        }
      }
      if (answer === undefined) return;
      try {
        sendFrame(connection.framed, answer);
      } catch { /* a full buffer says more than a lost echo would */ }
      return;
    }
    connection.dataIn++;
    const trace = channels?.message;
    if (trace !== undefined && tracing(trace)) {
      this.#traceData(trace, connection, frame);
      return;
    }
    this[emit]("data", connection, { uuid: frame.uuid, data: frame.payload });
  }

  #traceData(trace: Trace, connection: Connection, frame: Frame): void {
    const context: MessageContextOf<Server, ServerSocket> = {
      server: this,
      socket: connection,
      uuid: frame.uuid,
      size: frame.payload.length,
    };
    const outer = this.#tracedMessage;
    this.#tracedMessage = context;
    try {
      traceSync(trace, context, () =>
        this[emit]("data", connection, {
          uuid: frame.uuid,
          data: frame.payload,
        }));
    } finally {
      this.#tracedMessage = outer;
    }
  }

  #tick(): void {
    const now = performance.now();
    const late = this.#tickClock?.lateness(now) ?? 0;
    const timeoutMs = this.#timeoutMs ?? Infinity;
    const heartbeatMs = this.#heartbeatMs ?? Infinity;
    for (const connection of this.#connections) {
      const framed = connection.framed;
      if (framed.closed) continue;
      if (!connection.announced) {
        // In its TLS handshake: bounded by `timeout` from its accept. (One
        // waiting for its PROXY header is on a clock of its own.)
        if (
          connection.handshaking && now - connection.openedAt >= timeoutMs
        ) {
          this.#timeouts++;
          this.#refused(
            connection,
            new TimeoutError(
              `TLS handshake not done within ${timeoutMs} ms`,
              timeoutMs,
            ),
          );
          framed.close();
        }
        continue;
      }
      if (now >= connection.ageDeadline && !connection.draining) {
        this.#drain(connection, now + this.#graceMs);
      }
      const silent = silence(framed, now, late, timeoutMs);
      // A draining client that said done-writing sends nothing more, by
      // promise: its silence is not a failure (the drain's deadline bounds
      // it). A header it left incomplete still is.
      if (
        silent &&
        !(connection.doneWriting && framed.headerSince === undefined)
      ) {
        this.#timeouts++;
        this[emit]("exception", connection, silent);
        framed.close();
      } else if (now - framed.lastSent >= heartbeatMs) {
        ping(framed, this.#protocol);
      }
    }
  }
}

function serverDetail(type: keyof ServerEvents, args: unknown[]): unknown {
  switch (type) {
    case "connected":
    case "closed":
      return { socket: args[0] };
    case "exception":
      return { socket: args[0], error: args[1] };
    case "data": {
      const message = args[1] as Message;
      return { socket: args[0], uuid: message.uuid, data: message.data };
    }
    default:
      return null;
  }
}
