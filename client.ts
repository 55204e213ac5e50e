/**
 * The request client: connects at once, pings every `heartbeat` seconds,
 * drops a silent connection after `timeout`, reconnects with backoff, and
 * queues (within bounds) what is sent while disconnected.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { Client } from "@qtk/tcp-framework/client";
 * import { Server } from "@qtk/tcp-framework/server";
 * await using server = new Server({ host: "127.0.0.1", port: 0 });
 * server.on("data", (socket, message) => socket.send(message));
 * await server.start();
 * await using client = new Client({ host: "127.0.0.1", port: server.port });
 * const reply = await client.request(new TextEncoder().encode("echo"));
 * assert.equal(new TextDecoder().decode(reply), "echo");
 * ```
 *
 * @module
 */

import {
  type Frame,
  headerSize,
  type ProtocolVersion,
  SIGN_DATA,
} from "./codec.ts";
import { DeadlineTimer } from "./_deadlines.ts";
import { sendFrame } from "./_connection.ts";
import { emit, TypedEventTarget } from "./events.ts";
import {
  hasMessageShape,
  type Message,
  randomUuid,
  type SendOptions,
  toDataFrame,
  wantsTransfer,
} from "./message.ts";
import {
  type ConnectionOptions,
  connectionSettings,
  toMs,
} from "./_options.ts";
import { checkObject, checkPort } from "./_checks.ts";
import {
  type OptionTable,
  parseOptions,
  refuseUnknownKeys,
} from "./_option_table.ts";
import { CLIENT_TABLE, REQUEST_TABLE } from "./client/_options.ts";
import { quote } from "./_quote.ts";
import { ClosedError, ConnectionLostError } from "./errors.ts";
import type {
  ClientTlsOptions,
  PeerCertificate,
} from "./transport/transport.ts";
import { checkClientTls } from "./_tls_options.ts";
import type { ClientStats } from "./stats.ts";
import { TrafficTotals } from "./_stats.ts";
import {
  channels,
  loadChannels,
  type RequestContextOf,
  type Trace,
  traceSync,
  tracing,
} from "./_diagnostics.ts";
import {
  addCounts,
  type Conn,
  type Link,
  Pool,
  reconnectDelay,
  type ServerAddress,
  serverName,
} from "./client/_pool.ts";
import { OfflineQueue, type QueuedFrame } from "./client/_queue.ts";
import { Membership, parseServers } from "./client/_membership.ts";
import { PendingRequest, type RequestKeeper } from "./client/_pending.ts";
import { RetryThrottle } from "./client/_retry.ts";
import { OutlierDetector, type OutlierOptions } from "./client/_outliers.ts";

export { type OutlierOptions, reconnectDelay, type ServerAddress };

export {
  DEFAULT_MAX_QUEUED_MESSAGES,
  DEFAULT_REQUEST_TIMEOUT,
} from "./client/_options.ts";

/**
 * Options of {@linkcode Client}.
 *
 * @example
 * ```ts
 * import type { ClientOptions } from "@qtk/tcp-framework";
 * const options: ClientOptions = { host: "127.0.0.1", port: 8080, reconnect: false };
 * ```
 */
export interface ClientOptions extends ConnectionOptions {
  /**
   * Host name or IP address of the server (the one-server form; see
   * `servers` for several).
   * @default {"localhost"}
   */
  host?: string;
  /** TCP port of the server (the one-server form). */
  port?: number;
  /**
   * Several servers, instead of `host`/`port` (giving both is a
   * `TypeError`): `"host:port"` strings (`"[::1]:8212"` for IPv6),
   * `{ host, port }`, or DNS targets whose A and AAAA records are the
   * servers: `"dns:///name:port"` (the system's DNS) or
   * `"dns://dns-host:dns-port/name:port"` (that DNS server). A DNS target is
   * resolved again when its answer's TTL runs out (at most once a second, at
   * least every 30 s) and a second after a connection to one of its
   * addresses is lost; a failed resolution keeps the last answer and is
   * reported once, as a `ResolveError` `exception`. Change the list with
   * {@linkcode Client.setServers}.
   *
   * The client keeps `connectionsPerServer` connections to each server, each
   * with its own heartbeat, timeout and reconnect backoff, and sends each
   * message over one of those connected (see `balance`); a server that is
   * down holds up no other. With none connected, messages wait in the one
   * bounded queue. Messages sent over one server arrive in the order sent;
   * across servers there is no order.
   */
  servers?: Array<string | ServerAddress>;
  /**
   * Connections kept to each server.
   * @default {1}
   */
  connectionsPerServer?: number;
  /**
   * Shuffle `servers` once at start, so that many clients given the same
   * list do not all favour its first entry.
   * @default {true}
   */
  shuffle?: boolean;
  /**
   * How a message picks its connection among those connected:
   * `"least-pending"` (the one with the fewest requests awaiting replies,
   * ties taken in turn) or `"round-robin"`.
   * @default {"least-pending"}
   */
  balance?: "least-pending" | "round-robin";
  /**
   * Seconds a connect attempt may take, TLS handshake included, before it is
   * given up (with a `TimeoutError` as `exception`) and retried per
   * `reconnect`: against a host that drops packets, the system's own limit is
   * minutes. Infinity leaves it to the system.
   * @default {the timeout}
   */
  connectTimeout?: number;
  /**
   * Messages queued while disconnected past which `send` throws
   * `BufferFullError`.
   * @default {65536}
   */
  maxQueuedMessages?: number;
  /**
   * Reconnect after a connection is lost or cannot be made: `true` for
   * {@linkcode reconnectDelay}, a function of the attempt number (1, 2, …)
   * returning milliseconds, or `false` to stay disconnected.
   * @default {true}
   */
  reconnect?: boolean | ((attempt: number) => number);
  /**
   * Default time limit of `request()`, in seconds (Infinity for none).
   * @default {30}
   */
  requestTimeout?: number;
  /**
   * Times an `idempotent` request may be written before it rejects with
   * {@linkcode ConnectionLostError}: each lost connection that carried it
   * is one. Retries also stop, for every request, while connections keep
   * being lost with requests on them (gRPC's retry throttling: ten tokens,
   * one taken per such loss, a tenth given back per reply, retries only
   * above five), so a message that kills every server it reaches runs a
   * bounded number of times.
   * @default {3}
   */
  maxAttempts?: number;
  /**
   * Outlier ejection (after gRPC's, gRFC A50): a server whose requests fail
   * `consecutiveFailures` times in a row (lost with their connection, or
   * timed out), or whose replies come `slowFactor` times slower than the
   * others', takes no new request for `baseEjectionTime` seconds (more at
   * each repeat), then is tried again; never more than `maxEjectedPercent`
   * of the servers at once. `stats().servers` says which are `ejected`.
   * `false` turns it off.
   * @default {true}
   */
  outlierDetection?: boolean | OutlierOptions;
  /**
   * Speak TLS, using the runtime's own TLS: `true` (or `{}`) verifies the
   * server against the default trust store; `{ ca, serverName }` names the
   * trusted CA certificate(s) (PEM) and the name the certificate must carry;
   * `cert` and `key` are this client's certificate and key, for a server
   * that asks for one (mutual TLS). The handshake counts in
   * `connectTimeout`; the server's certificate comes with `connected`.
   * {@linkcode Client.setTls} replaces them for the connections to come.
   * @default {false}
   */
  tls?: boolean | ClientTlsOptions;
}

/**
 * Options of {@linkcode Client.request}.
 *
 * @example
 * ```ts
 * import type { RequestOptions } from "@qtk/tcp-framework";
 * const options: RequestOptions = { timeout: 1000, signal: AbortSignal.timeout(5000) };
 * ```
 */
export interface RequestOptions {
  /**
   * The request may run twice without harm: if the connection that carried
   * it is lost before the reply, it is sent again over another connection
   * (or the next one) instead of rejected with {@linkcode ConnectionLostError}.
   * Its payload is copied and kept until it settles.
   * @default {false}
   */
  idempotent?: boolean;
  /**
   * Milliseconds to wait for the reply.
   * @default {the client's requestTimeout}
   */
  timeout?: number;
  /** Aborts the wait; the request rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Hand `data`'s memory to the client instead of having it copied: its
   * `ArrayBuffer` is detached (see {@linkcode SendOptions}).
   * @default {false}
   */
  transfer?: boolean;
}

// The options tables are kept in step with the interfaces (a key without a
// row, or a row without a key, fails the type check).
CLIENT_TABLE satisfies OptionTable<ClientOptions>;
REQUEST_TABLE satisfies OptionTable<RequestOptions>;

/**
 * The client's events and their positional arguments, as passed to
 * {@linkcode Client.on}. `server` names the server concerned as
 * `"host:port"` (an argument added after those of the Node.js package's
 * events, so listeners written for it work unchanged).
 *
 * @example
 * ```ts
 * import type { ClientEvents } from "@qtk/tcp-framework";
 * type DataArgs = ClientEvents["data"]; // [{ uuid, data }]
 * ```
 */
export interface ClientEvents {
  /**
   * A connection to `server` is open (again); with TLS, `peerCertificate`
   * is the certificate that server presented on it (undefined without TLS).
   */
  connected: [server: string, peerCertificate: PeerCertificate | undefined];
  /** A connection to `server` closed. */
  closed: [server: string];
  /**
   * Something failed: a connect attempt, a connection, a listener. `server`
   * is the server concerned, if any.
   */
  exception: [error: unknown, server: string | undefined];
  /** A message arrived that is not the reply to a pending `request()`. */
  data: [message: Message];
  /**
   * The server set changed (DNS, or `setServers`): who joined, who left,
   * and the set now, each as `"host:port"`.
   */
  servers: [change: ServersChange];
}

/**
 * What a change of a client's server set added and removed.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { Client, type ServersChange } from "@qtk/tcp-framework";
 * const client = new Client({ servers: ["127.0.0.1:9"], reconnect: false });
 * const changes: ServersChange[] = [];
 * client.on("servers", (change) => changes.push(change));
 * client.setServers(["127.0.0.1:10"]);
 * assert.deepEqual(changes, [
 *   { added: ["127.0.0.1:10"], removed: ["127.0.0.1:9"], servers: ["127.0.0.1:10"] },
 * ]);
 * await client.close();
 * ```
 */
export interface ServersChange {
  /** Servers that joined, as `"host:port"`. */
  added: string[];
  /** Servers that left, as `"host:port"`: they take no new message. */
  removed: string[];
  /** The set now, as `client.servers` has it. */
  servers: string[];
}

/**
 * `detail` of each client event when listened to with `addEventListener`.
 *
 * @example
 * ```ts
 * import { Client, type ClientEventDetails } from "@qtk/tcp-framework";
 * const client = new Client({ host: "127.0.0.1", port: 9, reconnect: false });
 * client.addEventListener("exception", (event) => {
 *   const { error, server }: ClientEventDetails["exception"] = event.detail;
 *   console.log(server, error);
 * });
 * await client.close();
 * ```
 */
export interface ClientEventDetails {
  /** The server, as `"host:port"`, and with TLS its certificate. */
  connected: { server: string; peerCertificate: PeerCertificate | undefined };
  /** The server, as `"host:port"`. */
  closed: { server: string };
  /** The error, and the server concerned, if any. */
  exception: { error: unknown; server: string | undefined };
  /** The message. */
  data: Message;
  /** What changed. */
  servers: ServersChange;
}

/**
 * A `@qtk/tcp-framework` client. It connects as soon as it is made, as the
 * Node.js package does, to one server (`host`/`port`) or to several
 * (`servers`). Extends `EventTarget`; also offers `on`/`once`/`off` with the
 * Node.js package's positional listener arguments.
 *
 * @example
 * ```ts
 * import { Client, Server } from "@qtk/tcp-framework";
 * await using server = new Server({ host: "127.0.0.1", port: 0 });
 * server.on("data", (socket, message) => socket.send(message));
 * await server.start();
 * await using client = new Client({ host: "127.0.0.1", port: server.port });
 * client.on("data", ({ uuid, data }) => console.log(uuid, data));
 * client.send({ uuid: crypto.randomUUID(), data: new TextEncoder().encode("echo") });
 * ```
 */
export class Client extends TypedEventTarget<ClientEvents, ClientEventDetails> {
  /** The (first) server's host, as configured (a DNS target's name). */
  readonly host: string;
  /** The (first) server's port, as configured. */
  readonly port: number;
  readonly #requestTimeoutMs: number;
  readonly #protocol: ProtocolVersion;
  readonly #borrowPayloads: boolean;
  readonly #pending = new Map<string, PendingRequest>();
  readonly #deadlines = new DeadlineTimer();
  readonly #keeper: RequestKeeper = {
    forget: (request) => this.#forget(request),
    expired: (request) => this.#expired(request),
  };
  readonly #maxAttempts: number;
  readonly #throttle = new RetryThrottle();
  readonly #outliers: OutlierDetector | undefined;
  /**
   * The last failure to connect, resolve or keep a connection: the cause of
   * a queued request's timeout, and the rejection of a request when the
   * client will not reconnect.
   */
  #lastError: unknown;
  readonly #pool: Pool;
  /** Its TLS settings, as made (undefined for plain TCP). */
  readonly #tls: ClientTlsOptions | undefined;
  readonly #queue: OfflineQueue;
  readonly #membership: Membership;
  #closing: Promise<void> | undefined;
  #drainWaiters: Array<{ resolve(): void; reject(error: unknown): void }> = [];

  /**
   * Makes the client and starts connecting.
   *
   * @param options Where to connect and how to keep the connections alive.
   * @throws {TypeError | RangeError} If an option is invalid; the message names it.
   */
  constructor(options: ClientOptions) {
    super({
      detail: clientDetail,
      listenerFailed: (_type, _args, error) =>
        this[emit]("exception", error, undefined),
    });
    checkObject("options", options);
    const parsed = parseOptions(CLIENT_TABLE, options);
    if (
      parsed.servers !== undefined &&
      (options.host !== undefined || options.port !== undefined)
    ) {
      throw new TypeError(
        "Invalid options: give either host and port (one server) or servers, not both",
      );
    }
    const common = connectionSettings(parsed);
    const entries = parsed.servers ??
      [{
        address: { host: parsed.host, port: checkPort("port", parsed.port) },
      }];
    const first = entries[0];
    this.host = first.address?.host ?? first.dns!.name;
    this.port = first.address?.port ?? first.dns!.port;
    this.#borrowPayloads = common.connection.borrowPayloads;
    this.#protocol = common.connection.protocol;
    this.#requestTimeoutMs = parsed.requestTimeout * 1000;
    this.#maxAttempts = parsed.maxAttempts;
    this.#queue = new OfflineQueue(
      this.#protocol,
      common.connection.maxBufferedBytes,
      parsed.maxQueuedMessages,
    );
    const reconnect = parsed.reconnect;
    this.#pool = new Pool({
      owner: this,
      transport: common.transport,
      tls: this.#tls = parsed.tls,
      connection: common.connection,
      connectionsPerServer: parsed.connectionsPerServer,
      connectTimeoutMs: parsed.connectTimeout === undefined
        ? common.timeoutMs
        : toMs(parsed.connectTimeout),
      heartbeatMs: common.heartbeatMs,
      timeoutMs: common.timeoutMs,
      tickMs: common.tickMs,
      graceMs: common.graceMs,
      reconnect: reconnect === true
        ? reconnectDelay
        : reconnect === false
        ? undefined
        : reconnect,
      roundRobin: parsed.balance === "round-robin",
    }, {
      data: (frame) => this.#receive(frame),
      ready: (conn) => this.#ready(conn),
      lost: (conn, error) => this.#lost(conn, error),
      exhausted: () => this.#exhausted(),
      connected: (server, peerCertificate) =>
        this[emit]("connected", server, peerCertificate),
      closed: (server) => this[emit]("closed", server),
      exception: (error, server) => {
        this.#lastError = error;
        this[emit]("exception", error, server);
      },
    });
    const outliers = parsed.outlierDetection;
    if (outliers !== undefined) {
      const pool = this.#pool;
      this.#outliers = new OutlierDetector(outliers, {
        eject: (server) => pool.eject(server),
        restore: (server) => pool.restore(server),
        servers: () => this.#membership.servers.length,
      });
    }
    this.#membership = new Membership(parsed.shuffle, {
      changed: (added, removed) => this.#serversChanged(added, removed),
      exception: (error, server) => {
        this.#lastError = error;
        this[emit]("exception", error, server);
      },
    });
    loadChannels();
    this.#membership.set(entries);
  }

  /**
   * Every server of the set now, as `"host:port"`, in the order they joined:
   * the entries of `servers` (or `host`/`port`), with DNS targets as the
   * addresses of their last answer. A fresh array each call.
   *
   * @example
   * ```ts
   * import assert from "node:assert";
   * import { Client } from "@qtk/tcp-framework";
   * const client = new Client({ servers: ["127.0.0.1:9"], reconnect: false });
   * assert.deepEqual(client.servers, ["127.0.0.1:9"]);
   * await client.close();
   * ```
   */
  get servers(): string[] {
    return this.#membership.servers;
  }

  /**
   * Replaces the server list, checked as the `servers` option is; nothing
   * changes if it is invalid. Servers that leave the set take no new
   * message: their requests in flight are awaited, then their connections
   * close, and what is queued goes to the servers that stay or join. Servers
   * that join take traffic once connected, growing their share over a few
   * seconds while others serve. DNS targets given again keep their last
   * answer. Emits `servers` with what changed.
   *
   * @param servers The new list: `"host:port"`, `{ host, port }` or DNS
   *   targets, as the `servers` option.
   * @throws {TypeError} If the list or an entry is invalid.
   * @throws {ClosedError} If the client is closed.
   *
   * @example
   * ```ts
   * import assert from "node:assert";
   * import { Client } from "@qtk/tcp-framework";
   * const client = new Client({ servers: ["127.0.0.1:9"], reconnect: false });
   * client.setServers(["127.0.0.1:10", { host: "127.0.0.1", port: 11 }]);
   * assert.deepEqual(client.servers.sort(), ["127.0.0.1:10", "127.0.0.1:11"]);
   * await client.close();
   * ```
   */
  setServers(servers: Array<string | ServerAddress>): void {
    const entries = parseServers(servers, "servers");
    if (this.#closing) {
      throw new ClosedError("Cannot set servers: the client is closed");
    }
    this.#membership.set(entries);
  }

  /**
   * Replaces the TLS settings for the connections made from now on (a
   * renewed client certificate, another CA); connections already open keep
   * theirs. Checked as the `tls` option is; nothing changes if it is
   * invalid.
   *
   * @param tls The new settings, as the `tls` option (`true` for the
   *   default trust store).
   * @throws {TypeError} If `tls` is invalid or its PEM cannot be read, or the
   *   client was made without `tls`.
   * @throws {ClosedError} If the client is closed.
   *
   * @example
   * ```ts
   * import { Client } from "@qtk/tcp-framework";
   * const client = new Client({ host: "127.0.0.1", port: 9, reconnect: false, tls: true });
   * client.setTls(true); // e.g. { ca, cert, key } read again from renewed files
   * await client.close();
   * ```
   */
  setTls(tls: true | ClientTlsOptions): void {
    if (!this.#tls) {
      throw new TypeError(
        "Cannot set tls: this client was made without tls and speaks plain TCP",
      );
    }
    const checked = checkClientTls("tls", tls);
    if (checked === undefined) {
      throw new TypeError(
        `Invalid tls ${
          quote(tls)
        }: expected true or an object (TLS cannot be turned off)`,
      );
    }
    if (this.#closing) {
      throw new ClosedError("Cannot set tls: the client is closed");
    }
    this.#pool.setTls(checked);
  }

  /**
   * The client's counters: connections, reconnects, messages, bytes and PINGs
   * each way, timeouts, and what waits now (pending requests, the queue);
   * `servers` has the same per server, in the order of `client.servers`. A
   * fresh object each call.
   *
   * @returns The counters; see {@linkcode ClientStats}.
   *
   * @example
   * ```ts
   * import { Client } from "@qtk/tcp-framework";
   * import assert from "node:assert";
   * const client = new Client({ host: "127.0.0.1", port: 9, reconnect: false });
   * client.send({ uuid: crypto.randomUUID(), data: new Uint8Array(3) });
   * assert.equal(client.stats().queuedMessages, 1);
   * await client.close();
   * ```
   */
  stats(): ClientStats {
    const byServer = this.#pool.serverStats();
    const servers = this.servers.map((name) => byServer.get(name)!);
    const total = {
      connectionsOpen: 0,
      connectionsTotal: 0,
      connectFailures: 0,
      reconnects: 0,
      timeouts: 0,
      ...new TrafficTotals().with([]),
    };
    for (const entry of servers) addCounts(total, entry);
    this.#pool.addFormerCounts(total);
    total.bufferFull += this.#queue.refusals;
    return {
      ...total,
      requestTimeouts: this.#deadlines.expired,
      pendingRequests: this.#pending.size,
      queuedMessages: this.#queue.messages,
      queuedBytes: this.#queue.bytes,
      servers,
    };
  }

  /**
   * True while some connection is open that messages may be written on.
   *
   * @example
   * ```ts
   * import assert from "node:assert";
   * import { Client } from "@qtk/tcp-framework";
   * const client = new Client({ host: "127.0.0.1", port: 9, reconnect: false });
   * assert.ok(!client.connected);
   * await client.close();
   * ```
   */
  get connected(): boolean {
    return this.#pool.balancer.size > 0;
  }

  /**
   * True once `close()` was called.
   *
   * @example
   * ```ts
   * import assert from "node:assert";
   * import { Client } from "@qtk/tcp-framework";
   * const client = new Client({ host: "127.0.0.1", port: 9, reconnect: false });
   * await client.close();
   * assert.ok(client.closed);
   * ```
   */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Bytes accepted by `send` and not yet written: queued while disconnected,
   * or waiting for a socket.
   *
   * @example
   * ```ts
   * import assert from "node:assert";
   * import { Client } from "@qtk/tcp-framework";
   * const client = new Client({ host: "127.0.0.1", port: 9, reconnect: false });
   * assert.equal(client.bufferedAmount, 0);
   * await client.close();
   * ```
   */
  get bufferedAmount(): number {
    let bytes = this.#queue.bytes;
    for (const conn of this.#pool.conns) bytes += conn.framed.bufferedAmount;
    return bytes;
  }

  /**
   * Sends a message over one connected server (see `balance`), or, with
   * none connected, queues it for the next connection, in order. The payload
   * is copied or written before `send` returns, so the caller may reuse it at
   * once; with `{ transfer: true }` its memory is taken instead, without a
   * copy, and the caller's buffer is detached once `send` accepts the message
   * (see {@linkcode SendOptions}).
   *
   * @param message A 36-character ASCII uuid and the payload.
   * @param options `{ transfer: true }` to hand the payload's memory over.
   * @throws {TypeError} If the uuid, data or options are invalid; nothing is
   *   written.
   * @throws {ClosedError} If the client is closed.
   * @throws {BufferFullError} If `maxBufferedBytes` or `maxQueuedMessages`
   *   would be passed; nothing is queued.
   *
   * @example
   * ```ts
   * import { Client } from "@qtk/tcp-framework";
   * const client = new Client({ host: "127.0.0.1", port: 9, reconnect: false });
   * client.send({ uuid: crypto.randomUUID(), data: new Uint8Array([1, 2, 3]) });
   * await client.close();
   * ```
   */
  send(message: Message, options?: SendOptions): void {
    const transfer = options === undefined ? false : wantsTransfer(options);
    const link = this.#pool.pick();
    if (
      link !== undefined && !this.#closing &&
      hasMessageShape(message, this.#protocol)
    ) {
      // Connected: the uuid's characters are checked as they are encoded.
      link.conn!.framed.send(SIGN_DATA, message.uuid, message.data, transfer);
      return;
    }
    this.#send(toDataFrame(message, this.#protocol), link, transfer);
  }

  /**
   * Sends `data` under a fresh uuid and resolves with the reply's payload. The
   * reply is not also emitted as `data`. Like `send`, copies or writes `data`
   * before returning, so the caller may reuse it at once, or with
   * `transfer: true` takes its memory and detaches the caller's buffer.
   *
   * @param data The request payload.
   * @param options Time limit (ms), abort signal, and whether it may be sent
   *   twice.
   * @returns The payload of the reply.
   * @throws {TypeError} If `data` is not a `Uint8Array`, or an option is unknown.
   * @throws {TimeoutError} If no reply arrives in time.
   * @throws {ConnectionLostError} If the connection that carried the request
   *   is lost before the reply (not with `idempotent`; its `written` says
   *   whether the request may have run).
   * @throws {ClosedError} If the client closes before the reply.
   * @throws {BufferFullError} If the request cannot be queued.
   *
   * @example
   * ```ts
   * import assert from "node:assert";
   * import { Client, Server } from "@qtk/tcp-framework";
   * await using server = new Server({ host: "127.0.0.1", port: 0 });
   * server.on("data", (socket, message) => socket.send(message));
   * await server.start();
   * await using client = new Client({ host: "127.0.0.1", port: server.port });
   * const reply = await client.request(new Uint8Array([42]), { timeout: 1000 });
   * assert.equal(reply[0], 42);
   * ```
   */
  request(data: Uint8Array, options: RequestOptions = {}): Promise<Uint8Array> {
    const trace = channels?.request;
    if (trace !== undefined && tracing(trace)) {
      return this.#traceRequest(trace, data, options);
    }
    return this.#request(data, options);
  }

  #traceRequest(
    trace: Trace,
    data: Uint8Array,
    options: RequestOptions,
  ): Promise<Uint8Array> {
    const context: RequestContextOf<Client> = {
      client: this,
      uuid: randomUuid(this.#protocol),
      size: data instanceof Uint8Array ? data.length : 0,
    };
    const reply = traceSync(
      trace,
      context,
      () => this.#request(data, options, context.uuid),
    );
    reply.then((payload) => {
      context.replySize = payload.length;
      trace.asyncStart.publish(context);
      trace.asyncEnd.publish(context);
    }, (error) => {
      context.error = error;
      trace.error.publish(context);
      trace.asyncStart.publish(context);
      trace.asyncEnd.publish(context);
    });
    return reply;
  }

  #request(
    data: Uint8Array,
    options: RequestOptions,
    tracedUuid?: string,
  ): Promise<Uint8Array> {
    if (!(data instanceof Uint8Array)) {
      return Promise.reject(
        new TypeError(`Invalid data ${quote(data)}: expected a Uint8Array`),
      );
    }
    let timeout: number;
    try {
      refuseUnknownKeys(REQUEST_TABLE, options, "request option");
      // Each row's check read directly: no allocation, no keyed lookup.
      const given = options.timeout;
      timeout = given === undefined
        ? this.#requestTimeoutMs
        : REQUEST_TABLE.timeout.check("timeout", given);
    } catch (error) {
      return Promise.reject(error);
    }
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    let transfer: boolean;
    let idempotent: boolean;
    try {
      transfer = options.transfer !== undefined &&
        REQUEST_TABLE.transfer.check("transfer", options.transfer);
      idempotent = options.idempotent !== undefined &&
        REQUEST_TABLE.idempotent.check("idempotent", options.idempotent);
    } catch (error) {
      return Promise.reject(error);
    }
    // Nothing will connect again: waiting out the timeout would only hide
    // why.
    if (this.#pool.exhausted && !this.#closing) {
      return Promise.reject(this.#givenUp());
    }
    const uuid = tracedUuid ?? randomUuid(this.#protocol);
    return new Promise<Uint8Array>((resolve, reject) => {
      const request = new PendingRequest(
        uuid,
        performance.now() + timeout,
        timeout,
        signal,
        // A copy: a Node.js Buffer's own slice() would be a view.
        idempotent ? new Uint8Array(data) : undefined,
        data.length + headerSize(this.#protocol),
        this.#keeper,
        resolve,
        reject,
      );
      try {
        this.#dispatch(request, data, transfer);
      } catch (error) {
        reject(error);
        return;
      }
      this.#pending.set(uuid, request);
      if (Number.isFinite(timeout)) this.#deadlines.add(request);
      if (signal) {
        request.onAbort = () => request.reject(signal.reason);
        signal.addEventListener("abort", request.onAbort, { once: true });
      }
    });
  }

  /**
   * Resolves once every byte sent so far has been written, including what was
   * queued while disconnected; use it to wait after a `BufferFullError`.
   *
   * @returns Resolves when nothing is buffered.
   * @throws {ClosedError} If the client closes first.
   *
   * @example
   * ```ts
   * import { Client } from "@qtk/tcp-framework";
   * const client = new Client({ host: "127.0.0.1", port: 9, reconnect: false });
   * await client.drained();
   * await client.close();
   * ```
   */
  drained(): Promise<void> {
    if (this.#closing) {
      return Promise.reject(new ClosedError("Client is closed"));
    }
    if (this.#queue.messages === 0) {
      return Promise.all(
        Array.from(this.#pool.conns, (conn) => conn.framed.drained()),
      ).then(() => {});
    }
    return new Promise((resolve, reject) =>
      this.#drainWaiters.push({ resolve, reject })
    );
  }

  /**
   * Closes the client for good: no more reconnects, pending requests reject
   * with `ClosedError`, queued messages are dropped, and what is buffered on
   * open connections gets the grace period to go out. Leaves no timer or
   * socket behind. Calling it again returns the same promise.
   *
   * @returns Resolves once every connection is closed.
   *
   * @example
   * ```ts
   * import { Client } from "@qtk/tcp-framework";
   * const client = new Client({ host: "127.0.0.1", port: 9, reconnect: false });
   * await client.close();
   * ```
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /**
   * Closes the client (`await using` support).
   *
   * @example
   * ```ts
   * import { Client } from "@qtk/tcp-framework";
   * await using client = new Client({ host: "127.0.0.1", port: 9, reconnect: false });
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    this.#deadlines.clear();
    const closed = new ClosedError("Client is closed");
    // Before the requests: the last queued one leaving would resolve them.
    for (const waiter of this.#drainWaiters.splice(0)) waiter.reject(closed);
    for (const request of Array.from(this.#pending.values())) {
      request.reject(closed);
    }
    this.#queue.clear();
    this.#outliers?.close();
    await Promise.all([this.#membership.close(), this.#pool.close(closed)]);
  }

  /** Writes a request on a ready link, or queues it. */
  #dispatch(
    request: PendingRequest,
    payload: Uint8Array,
    transfer = false,
  ): void {
    const link = this.#pool.pick();
    const conn = link?.conn;
    const offset = conn?.framed.acceptedBytes ?? 0;
    request.queued = this.#send(
      { sign: SIGN_DATA, uuid: request.uuid, payload },
      link,
      transfer,
    );
    if (conn !== undefined) this.#wrote(request, conn, offset);
  }

  /** Writes `frame` on `link`, or queues it and returns its place in the queue. */
  #send(
    frame: Frame,
    link: Link | undefined,
    transfer = false,
  ): QueuedFrame | undefined {
    if (this.#closing) {
      throw new ClosedError("Cannot send: the client is closed");
    }
    if (link !== undefined) {
      sendFrame(link.conn!.framed, frame, transfer);
      return undefined;
    }
    return this.#queue.push(frame, transfer);
  }

  /** Notes that `request` went out on `conn`, starting at `offset`. */
  #wrote(request: PendingRequest, conn: Conn, offset: number): void {
    request.sentOn = conn;
    // Reply times are sampled, one in four per server: enough to tell a
    // slow server, at a quarter of the clock reads.
    const health = conn.link.health;
    request.sentAt = health !== undefined && (++health.writes & 3) === 0
      ? performance.now()
      : 0;
    request.offset = offset;
    conn.inFlight++;
  }

  #forget(request: PendingRequest): void {
    const conn = request.sentOn;
    if (conn !== undefined) {
      if (request.offset >= conn.framed.handedBytes) {
        (conn.withdrawn ??= new Set()).add(request.uuid);
      }
      request.sentOn = undefined;
      conn.inFlight--;
    }
    this.#pending.delete(request.uuid);
    this.#deadlines.remove(request);
    if (request.onAbort) {
      request.signal!.removeEventListener("abort", request.onAbort);
    }
    const queued = request.queued;
    // Settled before a connection took it: a retry by the caller must not
    // run it twice, so it leaves the queue with its bytes.
    if (queued !== undefined && this.#queue.withdraw(queued)) {
      for (const waiter of this.#drainWaiters.splice(0)) waiter.resolve();
    }
    request.queued = undefined;
    // Last: closing may report the connection lost at once (Bun), and what
    // that does with pending requests must not find this one.
    if (conn?.inFlight === 0 && conn.leaving) this.#pool.leave(conn);
  }

  /**
   * A request's time ran out: written, it counts against its server; still
   * queued, its cause is why nothing took it.
   */
  #expired(request: PendingRequest): unknown {
    const conn = request.sentOn;
    if (conn === undefined) return this.#lastError;
    this.#outliers?.failed(conn.link.server);
    return undefined;
  }

  /**
   * No server will be connected to again (reconnect is off and every
   * attempt failed): the queued requests reject now, with the reason.
   */
  #exhausted(): void {
    for (const request of Array.from(this.#pending.values())) {
      if (request.sentOn === undefined) request.reject(this.#givenUp());
    }
  }

  /** Why nothing can be sent: the last failure, or that all closed. */
  #givenUp(): unknown {
    return this.#lastError ?? new ClosedError(
      "No server will be connected to: reconnect is off and every connection closed",
    );
  }

  /** A connection is ready: what waits in the queue goes out on it. */
  #ready(conn: Conn): void {
    this.#lastError = undefined;
    const framed = conn.framed;
    for (const queued of this.#queue.takeAll()) {
      const frame = queued.frame;
      if (frame === undefined) continue;
      queued.frame = undefined;
      const request = this.#pending.get(frame.uuid);
      const offset = framed.acceptedBytes;
      sendFrame(framed, frame);
      if (request) {
        this.#wrote(request, conn, offset);
        request.queued = undefined;
      }
    }
    if (this.#drainWaiters.length > 0) {
      const waiters = this.#drainWaiters.splice(0);
      framed.drained().then(
        () => waiters.forEach((waiter) => waiter.resolve()),
        (error) => waiters.forEach((waiter) => waiter.reject(error)),
      );
    }
  }

  /** A connection was lost: what it carried goes elsewhere, or fails. */
  #lost(conn: Conn, error: unknown): void {
    if (conn.inFlight > 0) this.#failover(conn, error);
    if (!this.#closing) this.#resend(conn);
    // No request left to time out: no timer either.
    if (this.#pending.size === 0) this.#deadlines.clear();
    this.#membership.lost(conn.link.server);
  }

  /**
   * The requests in flight on a lost connection: those that never left this
   * process, and those that may run twice, go out again (over another
   * connection, or the next one); the others reject, saying they were
   * written.
   */
  #failover(conn: Conn, error: unknown): void {
    const framed = conn.framed;
    const handed = framed.handedBytes;
    const headerBytes = headerSize(this.#protocol);
    // A lost connection that carried written requests is one failure for
    // the retry budget, however many it carried: a crash is one event, and
    // its idempotent requests all go elsewhere while the budget lasts.
    let counted = false;
    for (const request of Array.from(this.#pending.values())) {
      if (request.sentOn !== conn) continue;
      const written = request.offset < handed;
      let payload = written ? request.copy : (request.copy ??
        framed.unsentBytes(
          request.offset + headerBytes,
          request.size - headerBytes,
        ));
      if (written) {
        this.#outliers?.failed(conn.link.server);
        // A failed attempt: retried within the request's and the client's
        // budgets only.
        if (!counted) this.#throttle.failed();
        counted = true;
        if (
          ++request.lostAttempts >= this.#maxAttempts ||
          !this.#throttle.allowed
        ) payload = undefined;
      }
      if (payload !== undefined && !this.#closing) {
        request.sentOn = undefined;
        conn.inFlight--;
        try {
          this.#dispatch(request, payload);
          continue;
        } catch (failure) {
          request.reject(failure);
          continue;
        }
      }
      const budget = written && request.copy !== undefined
        ? request.lostAttempts >= this.#maxAttempts
          ? ` (attempt ${request.lostAttempts} of ${this.#maxAttempts})`
          : " (retries paused: most recent attempts failed)"
        : "";
      request.reject(
        new ConnectionLostError(
          `Connection to ${conn.link.server} lost before the reply arrived${budget}`,
          written,
          conn.link.server,
          { cause: error },
        ),
      );
    }
  }

  /**
   * The `send()` messages of a lost connection that never left the process
   * (still in its write buffer) go out again over another connection, or the
   * next one: they cannot have been read.
   */
  #resend(conn: Conn): void {
    for (const frame of conn.framed.unsentFrames()) {
      if (
        frame.sign !== SIGN_DATA || this.#pending.has(frame.uuid) ||
        conn.withdrawn?.has(frame.uuid)
      ) continue;
      try {
        this.#send(frame, this.#pool.pick());
      } catch (error) {
        this[emit]("exception", error, conn.link.server);
      }
    }
  }

  /** The server set changed: the pool follows, and the change is told. */
  #serversChanged(added: ServerAddress[], removed: string[]): void {
    if (this.#closing) return;
    for (const server of removed) {
      this.#pool.retire(server);
      this.#outliers?.forget(server);
    }
    for (const address of added) {
      this.#pool.add(address, this.#outliers?.track(serverName(address)));
    }
    const change: ServersChange = {
      added: added.map(serverName),
      removed,
      servers: this.servers,
    };
    if (channels?.servers.hasSubscribers) {
      channels.servers.publish({ client: this, ...change });
    }
    this[emit]("servers", change);
  }

  #receive(frame: Frame): void {
    // Hashing a fresh 36-character key costs more than the rest of a `send`
    // reply's path: look only when some request waits.
    const request = this.#pending.size > 0
      ? this.#pending.get(frame.uuid)
      : undefined;
    if (request) {
      this.#throttle.succeeded();
      const health = request.sentOn?.link.health;
      if (health !== undefined) {
        health.failuresInRow = 0;
        if (request.sentAt !== 0) {
          health.replies++;
          health.replyMs += performance.now() - request.sentAt;
        }
      }
      // A reply is read after the frame's turn: a lent payload is copied.
      // (The typed array's slice: a Node.js Buffer's own does not copy.)
      request.resolve(
        this.#borrowPayloads
          ? Uint8Array.prototype.slice.call(frame.payload)
          : frame.payload,
      );
      return;
    }
    this[emit]("data", { uuid: frame.uuid, data: frame.payload });
  }
}

function clientDetail(type: keyof ClientEvents, args: unknown[]): unknown {
  switch (type) {
    case "connected":
      return { server: args[0], peerCertificate: args[1] };
    case "closed":
      return { server: args[0] };
    case "exception":
      return { error: args[0], server: args[1] };
    case "data":
    case "servers":
      return args[0];
    default:
      return null;
  }
}
