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

import { ping, silence, TickClock } from "./_liveness.ts";
import {
  type Frame,
  headerSize,
  type ProtocolVersion,
  SIGN_DATA,
} from "./codec.ts";
import { FramedConnection } from "./_connection.ts";
import { controlFrame, controlKind } from "./_control.ts";
import { type Deadline, DeadlineTimer, gracePeriod } from "./_deadlines.ts";
import { emit, TypedEventTarget } from "./events.ts";
import {
  hasMessageShape,
  type Message,
  randomUuid,
  type SendOptions,
  takePayload,
  toDataFrame,
  wantsTransfer,
} from "./message.ts";
import {
  checkCount,
  checkHost,
  checkObject,
  checkPort,
  checkSeconds,
  type CommonOptions,
  CONNECTION_OPTIONS,
  type ConnectionOptions,
  parseCommonOptions,
  toMs,
} from "./_options.ts";
import { quote } from "./_quote.ts";
import { checkKnownKeys } from "./_known_keys.ts";
import { PayloadCopies } from "./_payload_copies.ts";
import {
  BufferFullError,
  ClosedError,
  ConnectionLostError,
  TimeoutError,
} from "./errors.ts";
import type { ClientTlsOptions, Transport } from "./transport/transport.ts";
import { checkClientTls } from "./transport/_tls.ts";
import type { ClientServerStats, ClientStats } from "./stats.ts";
import { trafficOf, TrafficTotals } from "./_stats.ts";
import type { RequestContext } from "./diagnostics.ts";
import {
  type Channel,
  channels,
  loadChannels,
  type Trace,
  traceSync,
  tracing,
} from "./_diagnostics.ts";

/**
 * Default limit on messages queued while disconnected.
 * @example `DEFAULT_MAX_QUEUED_MESSAGES === 65536`
 */
export const DEFAULT_MAX_QUEUED_MESSAGES = 65536;
/**
 * Default time limit of {@linkcode Client.request}, in seconds.
 * @example `DEFAULT_REQUEST_TIMEOUT === 30`
 */
export const DEFAULT_REQUEST_TIMEOUT = 30;

/**
 * The default reconnect delay: 200 ms before the first retry, as the Node.js
 * package waits, then doubling per failed attempt up to 5 s, with up to 20%
 * jitter taken off so that many clients do not retry in step.
 *
 * @param attempt 1 for the first retry after a connection is lost or fails.
 * @returns Milliseconds to wait before connecting again.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { reconnectDelay } from "@qtk/tcp-framework";
 * assert.equal(reconnectDelay(1), 200);
 * assert.ok(reconnectDelay(20) <= 5000);
 * ```
 */
export function reconnectDelay(attempt: number): number {
  if (attempt <= 1) return 200;
  const delay = Math.min(200 * 2 ** (attempt - 1), 5000);
  return Math.round(delay * (1 - Math.random() * 0.2));
}

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
   * `TypeError`): `"host:port"` strings (`"[::1]:8212"` for IPv6) or
   * `{ host, port }`. The client keeps `connectionsPerServer` connections to
   * each, each with its own heartbeat, timeout and reconnect backoff, and
   * sends each message over one of those connected (see `balance`); a server
   * that is down holds up no other. With none connected, messages wait in
   * the one bounded queue. Messages sent over one server arrive in the order
   * sent; across servers there is no order.
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
   * Speak TLS, using the runtime's own TLS: `true` (or `{}`) verifies the
   * server against the default trust store; `{ ca, serverName }` names the
   * trusted CA certificate(s) (PEM) and the name the certificate must carry.
   * The handshake counts in `connectTimeout`.
   * @default {false}
   */
  tls?: boolean | ClientTlsOptions;
}

/** Every key of {@linkcode ClientOptions}: any other is refused as a typo. */
const CLIENT_OPTIONS: Record<keyof ClientOptions, true> = {
  ...CONNECTION_OPTIONS,
  host: true,
  port: true,
  servers: true,
  connectionsPerServer: true,
  shuffle: true,
  balance: true,
  connectTimeout: true,
  maxQueuedMessages: true,
  reconnect: true,
  requestTimeout: true,
  tls: true,
};

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

const REQUEST_OPTIONS: Record<keyof RequestOptions, true> = {
  timeout: true,
  signal: true,
  idempotent: true,
  transfer: true,
};

/**
 * A server of a client's `servers` list.
 *
 * @example
 * ```ts
 * import type { ServerAddress } from "@qtk/tcp-framework";
 * const address: ServerAddress = { host: "10.0.0.2", port: 8212 };
 * ```
 */
export interface ServerAddress {
  /** Host name or IP address. */
  host: string;
  /** TCP port. */
  port: number;
}

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
  /** A connection to `server` is open (again). */
  connected: [server: string];
  /** A connection to `server` closed. */
  closed: [server: string];
  /**
   * Something failed: a connect attempt, a connection, a listener. `server`
   * is the server concerned, if any.
   */
  exception: [error: unknown, server: string | undefined];
  /** A message arrived that is not the reply to a pending `request()`. */
  data: [message: Message];
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
  /** The server, as `"host:port"`. */
  connected: { server: string };
  /** The server, as `"host:port"`. */
  closed: { server: string };
  /** The error, and the server concerned, if any. */
  exception: { error: unknown; server: string | undefined };
  /** The message. */
  data: Message;
}

/**
 * A frame queued while disconnected. A request that settles before the next
 * connection takes its frame back out (`frame` becomes undefined), so what
 * timed out or was aborted is never sent.
 */
interface QueuedFrame {
  frame: Frame | undefined;
  /** Bytes it counts in `bufferedAmount`: header and payload. */
  readonly size: number;
}

/** One open connection, with what the client keeps about it. */
class Conn {
  /** Requests written on it and not yet settled. */
  inFlight = 0;
  /** Its server said `going-away`: nothing more is written on it. */
  leaving = false;
  /** The server answered its hello: messages may be written on it. */
  greeted = false;
  /**
   * Requests that settled (timed out, aborted) while their frame was still
   * in its write buffer: if it is lost, their frames are not sent elsewhere.
   */
  withdrawn: Set<string> | undefined;
  helloTimer: ReturnType<typeof setTimeout> | undefined;
  lastPing = performance.now();
  readonly openedAt = this.lastPing;

  constructor(readonly framed: FramedConnection, readonly link: Link) {}
}

/**
 * One of the connections kept to a server: its own connect attempts,
 * backoff and liveness.
 */
class Link {
  /** The open connection messages may be written on, if any. */
  conn: Conn | undefined;
  connecting: Promise<void> | undefined;
  attemptAbort: AbortController | undefined;
  attempt = 0;
  reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  // Counters for stats(): traffic of its closed connections, and events.
  readonly traffic = new TrafficTotals();
  connectionsTotal = 0;
  connectFailures = 0;
  reconnects = 0;
  timeouts = 0;

  constructor(readonly address: ServerAddress, readonly server: string) {}
}

/**
 * A request waiting for its reply. A class rather than an object of closures:
 * `request()` is called once per message, and each closure is an allocation.
 */
class PendingRequest implements Deadline {
  heapIndex = -1;
  /** The connection the request was written on, if it has left the queue. */
  sentOn: Conn | undefined = undefined;
  /** Where its frame starts in that connection's outgoing stream. */
  offset = 0;
  /** Its frame, while it waits in the disconnected queue. */
  queued: QueuedFrame | undefined = undefined;
  onAbort: (() => void) | undefined = undefined;

  constructor(
    readonly uuid: string,
    readonly deadline: number,
    readonly timeout: number,
    readonly signal: AbortSignal | undefined,
    /** With `idempotent`: a copy of the payload, to send it again. */
    readonly copy: Uint8Array | undefined,
    readonly size: number,
    /** Removes the request from the client's map, heap and signal. */
    readonly forget: (request: PendingRequest) => void,
    readonly settled: (data: Uint8Array) => void,
    readonly failed: (error: unknown) => void,
  ) {}

  resolve(data: Uint8Array): void {
    this.forget(this);
    this.settled(data);
  }

  reject(error: unknown): void {
    this.forget(this);
    this.failed(error);
  }

  expire(): void {
    this.reject(
      new TimeoutError(`No reply within ${this.timeout} ms`, this.timeout),
    );
  }
}

/**
 * How long a new connection waits for the server's answer to its hello
 * before messages are written on it anyway (a server that answers no PING).
 */
const HELLO_WAIT_MS = 1000;

/**
 * A connection told to go away after serving this long is replaced at once;
 * a younger one after the reconnect backoff.
 */
const STEADY_MS = 250;

/** `"host:port"` (`"[v6]:port"`) of an address. */
function serverName(address: ServerAddress): string {
  return address.host.includes(":")
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}

/** Reads the `servers` option into addresses, checked. */
function parseServers(value: unknown): ServerAddress[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new TypeError(
      `Invalid servers ${quote(value)}: expected a non-empty array`,
    );
  }
  return value.map((entry, i) => {
    const name = `servers[${i}]`;
    if (typeof entry === "string") {
      const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(entry);
      if (!match) {
        throw new TypeError(
          `Invalid ${name} ${
            quote(entry)
          }: expected "host:port" or "[ipv6]:port"`,
        );
      }
      return {
        host: match[1] ?? match[2],
        port: checkPort(name + " port", Number(match[3])),
      };
    }
    checkObject(name, entry);
    const { host, port } = entry as ServerAddress;
    return {
      host: checkHost(name + ".host", host),
      port: checkPort(name + ".port", port),
    };
  });
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
  /** The (first) server's host, as configured. */
  readonly host: string;
  /** The (first) server's port, as configured. */
  readonly port: number;
  /** Every server, as `"host:port"`, in the order they are tried. */
  readonly servers: readonly string[];
  readonly #heartbeatMs: number | undefined;
  readonly #timeoutMs: number | undefined;
  readonly #connectTimeoutMs: number | undefined;
  readonly #tickMs: number | undefined;
  readonly #graceMs: number;
  readonly #requestTimeoutMs: number;
  readonly #maxQueuedMessages: number;
  readonly #reconnect: ((attempt: number) => number) | undefined;
  readonly #protocol: ProtocolVersion;
  readonly #roundRobin: boolean;
  readonly #connectionOptions: {
    protocol: ProtocolVersion;
    maxFrameSize: number;
    maxBufferedBytes: number;
    borrowPayloads: boolean;
  };
  readonly #borrowPayloads: boolean;
  readonly #transport: Transport;
  readonly #pending = new Map<string, PendingRequest>();
  readonly #deadlines = new DeadlineTimer();
  readonly #forgetRequest = (request: PendingRequest) => this.#forget(request);
  readonly #links: Link[] = [];
  /** Links with a connection messages may be written on. */
  #ready: Link[] = [];
  /** Where the next pick starts, so ties (and round robin) take turns. */
  #turn = 0;
  /** Every open connection, including those told to go away. */
  readonly #conns = new Set<Conn>();
  readonly #tls: ClientTlsOptions | undefined;
  #queue: QueuedFrame[] = [];
  /** Entries of `#queue` still holding a frame. */
  #queuedMessages = 0;
  readonly #queueCopies = new PayloadCopies();
  #queuedBytes = 0;
  #tickTimer: ReturnType<typeof setInterval> | undefined;
  #tickClock: TickClock | undefined;
  #closing: Promise<void> | undefined;
  #drainWaiters: Array<{ resolve(): void; reject(error: unknown): void }> = [];
  /** Sends refused by the queue's bounds (for stats). */
  #queueRefusals = 0;

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
    checkKnownKeys("option", options, CLIENT_OPTIONS);
    let addresses: ServerAddress[] | undefined;
    if (options.servers !== undefined) {
      if (options.host !== undefined || options.port !== undefined) {
        throw new TypeError(
          "Invalid options: give either host and port (one server) or servers, not both",
        );
      }
      addresses = parseServers(options.servers);
    }
    const common = parseCommonOptions(
      addresses ? { ...options, ...addresses[0] } : options as CommonOptions,
      CLIENT_OPTIONS,
    );
    addresses ??= [{ host: common.host, port: common.port }];
    this.host = common.host;
    this.port = common.port;
    this.#heartbeatMs = common.heartbeatMs;
    this.#timeoutMs = common.timeoutMs;
    this.#connectTimeoutMs = options.connectTimeout === undefined
      ? common.timeoutMs
      : toMs(checkSeconds("connectTimeout", options.connectTimeout));
    this.#tickMs = common.tickMs;
    this.#graceMs = common.graceMs;
    this.#connectionOptions = common.connection;
    this.#borrowPayloads = common.connection.borrowPayloads;
    this.#protocol = common.connection.protocol;
    this.#requestTimeoutMs = checkSeconds(
      "requestTimeout",
      options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT,
    ) * 1000;
    this.#maxQueuedMessages = checkCount(
      "maxQueuedMessages",
      options.maxQueuedMessages ?? DEFAULT_MAX_QUEUED_MESSAGES,
    );
    const reconnect = options.reconnect ?? true;
    if (typeof reconnect === "function") this.#reconnect = reconnect;
    else if (reconnect === true) this.#reconnect = reconnectDelay;
    else if (reconnect !== false) {
      throw new TypeError(
        `Invalid reconnect ${
          quote(reconnect)
        }: expected a boolean or a function`,
      );
    }
    const perServer = checkCount(
      "connectionsPerServer",
      options.connectionsPerServer ?? 1,
    );
    const shuffle = options.shuffle ?? true;
    if (typeof shuffle !== "boolean") {
      throw new TypeError(
        `Invalid shuffle ${quote(shuffle)}: expected a boolean`,
      );
    }
    const balance = options.balance ?? "least-pending";
    if (balance !== "least-pending" && balance !== "round-robin") {
      throw new TypeError(
        `Invalid balance ${
          quote(balance)
        }: expected "least-pending" or "round-robin"`,
      );
    }
    this.#roundRobin = balance === "round-robin";
    this.#tls = checkClientTls("tls", options.tls);
    this.#transport = common.transport;
    if (shuffle) {
      for (let i = addresses.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [addresses[i], addresses[j]] = [addresses[j], addresses[i]];
      }
    }
    this.servers = addresses.map(serverName);
    for (let n = 0; n < perServer; n++) {
      for (const [i, address] of addresses.entries()) {
        this.#links.push(new Link(address, this.servers[i]));
      }
    }
    loadChannels();
    for (const link of this.#links) this.#connect(link);
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
    const byServer = new Map<string, ClientServerStats>();
    for (const link of this.#links) {
      const open = Array.from(this.#conns).filter((conn) => conn.link === link)
        .map((conn) => conn.framed);
      const traffic = link.traffic.with(open);
      const entry = byServer.get(link.server);
      const counts = {
        connectionsOpen: open.length,
        connectionsTotal: link.connectionsTotal,
        connectFailures: link.connectFailures,
        reconnects: link.reconnects,
        timeouts: link.timeouts,
      };
      if (entry === undefined) {
        byServer.set(link.server, {
          server: link.server,
          host: link.address.host,
          port: link.address.port,
          connected: link.conn !== undefined,
          ...counts,
          ...traffic,
        });
      } else {
        entry.connected ||= link.conn !== undefined;
        addCounts(entry, { ...counts, ...traffic });
      }
    }
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
    total.bufferFull += this.#queueRefusals;
    return {
      ...total,
      requestTimeouts: this.#deadlines.expired,
      pendingRequests: this.#pending.size,
      queuedMessages: this.#queuedMessages,
      queuedBytes: this.#queuedBytes,
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
    return this.#ready.length > 0;
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
    let bytes = this.#queuedBytes;
    for (const conn of this.#conns) bytes += conn.framed.bufferedAmount;
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
    const link = this.#ready.length > 0 ? this.#pick() : undefined;
    if (
      link !== undefined && !this.#closing &&
      hasMessageShape(message, this.#protocol)
    ) {
      // Connected: the uuid's characters are checked as they are encoded.
      link.conn!.framed.sendData(message.uuid, message.data, transfer);
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
    const context: RequestContext = {
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
    for (const key in options) {
      if (!Object.hasOwn(REQUEST_OPTIONS, key)) {
        try {
          checkKnownKeys("request option", options, REQUEST_OPTIONS);
        } catch (error) {
          return Promise.reject(error);
        }
      }
    }
    const timeout = options.timeout ?? this.#requestTimeoutMs;
    if (typeof timeout !== "number" || !(timeout >= 0)) {
      return Promise.reject(
        new RangeError(
          `Invalid timeout ${quote(timeout)}: expected milliseconds >= 0`,
        ),
      );
    }
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    let transfer: boolean;
    try {
      transfer = wantsTransfer({ transfer: options.transfer });
    } catch (error) {
      return Promise.reject(error);
    }
    const uuid = tracedUuid ?? randomUuid(this.#protocol);
    return new Promise<Uint8Array>((resolve, reject) => {
      const request = new PendingRequest(
        uuid,
        performance.now() + timeout,
        timeout,
        signal,
        // A copy: a Node.js Buffer's own slice() would be a view.
        options.idempotent === true ? new Uint8Array(data) : undefined,
        data.length + headerSize(this.#protocol),
        this.#forgetRequest,
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
    if (this.#queuedMessages === 0) {
      return Promise.all(
        Array.from(this.#conns, (conn) => conn.framed.drained()),
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
    this.#emptyQueue();
    for (const link of this.#links) {
      clearTimeout(link.reconnectTimer);
      link.reconnectTimer = undefined;
      link.attemptAbort?.abort(closed);
    }
    await Promise.all(this.#links.map((link) => link.connecting));
    for (const conn of this.#conns) clearTimeout(conn.helloTimer);
    clearInterval(this.#tickTimer);
    this.#tickTimer = undefined;
    if (this.#conns.size === 0) return;
    const grace = gracePeriod(this.#graceMs);
    try {
      await Promise.all(
        Array.from(this.#conns, (conn) => conn.framed.close(grace.over)),
      );
    } finally {
      grace.end();
    }
  }

  /**
   * The link a message goes to: among those connected, the one with the
   * fewest requests in flight (ties in turn), or the next in turn. The caller
   * has checked that one is connected.
   */
  #pick(): Link | undefined {
    const ready = this.#ready;
    // A connection closing (a protocol error, a failed write, a timeout)
    // takes nothing more; it is reported lost a few turns later.
    for (let i = ready.length - 1; i >= 0; i--) {
      if (ready[i].conn!.framed.closed) this.#unready(ready[i]);
    }
    const count = ready.length;
    if (count <= 1) return ready[0];
    const start = this.#turn++ % count;
    if (this.#turn >= count) this.#turn = 0;
    if (this.#roundRobin) return ready[start];
    let best = ready[start];
    let least = best.conn!.inFlight;
    for (let i = 1; i < count && least > 0; i++) {
      const link = ready[(start + i) % count];
      if (link.conn!.inFlight < least) {
        best = link;
        least = link.conn!.inFlight;
      }
    }
    return best;
  }

  /** Writes a request on a connected link, or queues it. */
  #dispatch(
    request: PendingRequest,
    payload: Uint8Array,
    transfer = false,
  ): void {
    const link = this.#ready.length > 0 ? this.#pick() : undefined;
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
      link.conn!.framed.send(frame, transfer);
      return undefined;
    }
    const size = frame.payload.length + headerSize(this.#protocol);
    const limit = this.#connectionOptions.maxBufferedBytes;
    if (this.#queuedBytes > 0 && this.#queuedBytes + size > limit) {
      this.#queueRefusals++;
      throw new BufferFullError(this.#queuedBytes, limit, size);
    }
    if (this.#queuedMessages >= this.#maxQueuedMessages) {
      this.#queueRefusals++;
      throw new BufferFullError(
        this.#queuedMessages,
        this.#maxQueuedMessages,
        size,
        "messages",
      );
    }
    // Copied, as a connection's write buffer would: the caller may reuse its
    // payload once `send` returns.
    const queued: QueuedFrame = {
      frame: {
        sign: frame.sign,
        uuid: frame.uuid,
        payload: (transfer ? takePayload(frame.payload) : undefined) ??
          this.#queueCopies.copy(frame.payload),
      },
      size,
    };
    this.#queue.push(queued);
    this.#queuedMessages++;
    this.#queuedBytes += size;
    return queued;
  }

  #publish(
    channel: Channel,
    link: Link,
    framed: FramedConnection | undefined,
    extra: object,
  ): void {
    channel.publish({
      side: "client",
      client: this,
      server: link.server,
      host: link.address.host,
      port: link.address.port,
      remoteAddr: framed?.remoteAddr,
      ...extra,
    });
  }

  /** Notes that `request` went out on `conn`, starting at `offset`. */
  #wrote(request: PendingRequest, conn: Conn, offset: number): void {
    request.sentOn = conn;
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
      if (--conn.inFlight === 0 && conn.leaving) this.#leave(conn);
    }
    this.#pending.delete(request.uuid);
    this.#deadlines.remove(request);
    if (request.onAbort) {
      request.signal!.removeEventListener("abort", request.onAbort);
    }
    const queued = request.queued;
    if (queued?.frame !== undefined) {
      // Settled before a connection took it: a retry by the caller must not
      // run it twice, so it leaves the queue with its bytes.
      queued.frame = undefined;
      this.#queuedBytes -= queued.size;
      if (--this.#queuedMessages === 0) {
        this.#emptyQueue();
        for (const waiter of this.#drainWaiters.splice(0)) waiter.resolve();
      }
    }
    request.queued = undefined;
  }

  #emptyQueue(): void {
    this.#queue = [];
    this.#queuedMessages = 0;
    this.#queueCopies.release();
    this.#queuedBytes = 0;
  }

  #connect(link: Link): void {
    link.reconnectTimer = undefined;
    let framed: FramedConnection | undefined;
    let conn: Conn | undefined;
    const attempt = link.attemptAbort = new AbortController();
    const limitMs = this.#connectTimeoutMs;
    const timer = limitMs === undefined ? undefined : setTimeout(
      () =>
        attempt.abort(
          new TimeoutError(
            `No connection to ${link.server} within ${limitMs} ms`,
            limitMs,
          ),
        ),
      limitMs,
    );
    const connecting = this.#transport.connect(
      { hostname: link.address.host, port: link.address.port },
      (transport) => {
        framed = new FramedConnection(
          transport,
          this.#connectionOptions,
          {
            frame: (frame) => this.#receive(frame, conn),
            protocolError: (error) => {
              if (channels?.protocolError.hasSubscribers) {
                this.#publish(channels.protocolError, link, framed, { error });
              }
              this[emit]("exception", error, link.server);
            },
            closed: (error) => conn && this.#lost(conn, error),
          },
        );
        conn = new Conn(framed, link);
        return framed;
      },
      { tls: this.#tls, signal: attempt.signal },
    );
    // The attempt is over when the transport settles or the signal aborts,
    // whichever comes first: a transport that cannot cancel its connect must
    // hold up neither the backoff nor close(). What it delivers later is closed.
    const abandoned = new Promise<never>((_, reject) =>
      attempt.signal.addEventListener(
        "abort",
        () => reject(attempt.signal.reason),
        { once: true },
      )
    );
    connecting.then(
      (late) => attempt.signal.aborted && late.close(),
      () => {},
    );
    link.connecting = Promise.race([connecting, abandoned]).then(
      () => this.#opened(conn!),
      (error) => {
        if (this.#closing) return;
        link.connectFailures++;
        if (channels?.failed.hasSubscribers) {
          this.#publish(channels.failed, link, undefined, { error });
        }
        this[emit]("exception", error, link.server);
        this.#scheduleReconnect(link);
      },
    ).finally(() => {
      clearTimeout(timer);
      link.attemptAbort = undefined;
      link.connecting = undefined;
    });
  }

  #opened(conn: Conn): void {
    const link = conn.link;
    const framed = conn.framed;
    if (this.#closing || framed.closed) {
      framed.close();
      if (!this.#closing) this.#scheduleReconnect(link);
      return;
    }
    link.connectionsTotal++;
    this.#conns.add(conn);
    if (channels?.opened.hasSubscribers) {
      this.#publish(channels.opened, link, framed, {});
    }
    // Nothing else is written until the server answers (ours with
    // hello-ack, a 3.x or 2.x one with its echo): a connection the system
    // completed but no server will read (in the backlog of a listener about
    // to close, or a load balancer with no backend) then loses nothing.
    framed.send(controlFrame("hello", this.#protocol));
    conn.helloTimer = setTimeout(() => this.#greeted(conn), HELLO_WAIT_MS);
    conn.lastPing = performance.now();
    if (this.#tickMs !== undefined && this.#tickTimer === undefined) {
      this.#tickClock = new TickClock(this.#tickMs);
      this.#tickTimer = setInterval(() => this.#tick(), this.#tickMs);
    }
  }

  /** The server answered the hello (or took too long to): messages may flow. */
  #greeted(conn: Conn): void {
    clearTimeout(conn.helloTimer);
    conn.helloTimer = undefined;
    if (conn.greeted || conn.leaving || conn.framed.closed || this.#closing) {
      return;
    }
    conn.greeted = true;
    const link = conn.link;
    const framed = conn.framed;
    link.conn = conn;
    link.attempt = 0;
    this.#ready.push(link);
    const queue = this.#queue;
    this.#emptyQueue();
    for (const queued of queue) {
      const frame = queued.frame;
      if (frame === undefined) continue;
      queued.frame = undefined;
      const request = this.#pending.get(frame.uuid);
      const offset = framed.acceptedBytes;
      framed.send(frame);
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
    this[emit]("connected", link.server);
  }

  /** Takes a link out of those messages may be written on. */
  #unready(link: Link): void {
    link.conn = undefined;
    const at = this.#ready.indexOf(link);
    if (at >= 0) this.#ready.splice(at, 1);
  }

  #lost(conn: Conn, error: unknown): void {
    if (!this.#conns.delete(conn)) return;
    clearTimeout(conn.helloTimer);
    const link = conn.link;
    link.traffic.add(conn.framed);
    if (channels?.closed.hasSubscribers) {
      this.#publish(channels.closed, link, conn.framed, {
        error,
        stats: trafficOf(conn.framed),
      });
    }
    if (link.conn === conn) this.#unready(link);
    if (this.#conns.size === 0) {
      clearInterval(this.#tickTimer);
      this.#tickTimer = undefined;
    }
    if (conn.inFlight > 0) this.#failover(conn, error);
    if (!this.#closing) this.#resend(conn, link);
    // No request left to time out: no timer either.
    if (this.#pending.size === 0) this.#deadlines.clear();
    // `closed` only follows `connected`; a connection lost before its
    // server answered is a failed attempt, reported as one.
    if (!conn.greeted && error === undefined && !this.#closing) {
      error = new ClosedError(
        `Connection to ${link.server} closed before the server answered`,
      );
    }
    if (error !== undefined) this[emit]("exception", error, link.server);
    if (conn.greeted) this[emit]("closed", link.server);
    // One told to go away has its successor under way already.
    if (!conn.leaving && !this.#closing) this.#scheduleReconnect(link);
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
    for (const request of Array.from(this.#pending.values())) {
      if (request.sentOn !== conn) continue;
      const written = request.offset < handed;
      const payload = written ? request.copy : (request.copy ??
        framed.unsentBytes(
          request.offset + headerBytes,
          request.size - headerBytes,
        ));
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
      request.reject(
        new ConnectionLostError(
          `Connection to ${conn.link.server} lost before the reply arrived`,
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
  #resend(conn: Conn, link: Link): void {
    for (const frame of conn.framed.unsentFrames()) {
      if (
        frame.sign !== SIGN_DATA || this.#pending.has(frame.uuid) ||
        conn.withdrawn?.has(frame.uuid)
      ) continue;
      try {
        this.#send(frame, this.#ready.length > 0 ? this.#pick() : undefined);
      } catch (error) {
        this[emit]("exception", error, link.server);
      }
    }
  }

  /**
   * The server said `going-away`: write nothing more on this connection but
   * `done-writing` (so the server knows it has read everything), send from
   * now on over another (with one server, a new one), and close this one
   * once its replies are in.
   */
  #goAway(conn: Conn): void {
    if (conn.framed.closed || conn.leaving) return;
    conn.leaving = true;
    try {
      conn.framed.send(controlFrame("done-writing", this.#protocol));
    } catch { /* full: the server closes it at the end of its grace period */ }
    clearTimeout(conn.helloTimer);
    const link = conn.link;
    if (link.conn === conn) this.#unready(link);
    // Its successor, at once if this one served a while, else after the
    // backoff: a server that sends every connection away (a tiny
    // maxConnectionAge) must not get a connection storm. Without reconnect,
    // what is sent from now on waits in the queue.
    if (
      !this.#closing && this.#reconnect && link.conn === undefined &&
      link.connecting === undefined && link.reconnectTimer === undefined
    ) {
      if (performance.now() - conn.openedAt >= STEADY_MS) {
        link.attempt = 0;
        this.#connect(link);
      } else this.#scheduleReconnect(link);
    }
    if (conn.inFlight === 0) this.#leave(conn);
  }

  /** Closes a connection that was told to go away, once nothing is due on it. */
  #leave(conn: Conn): void {
    const grace = gracePeriod(this.#graceMs);
    conn.framed.close(grace.over).finally(grace.end);
  }

  #scheduleReconnect(link: Link): void {
    if (!this.#reconnect || this.#closing || link.reconnectTimer) return;
    link.attempt++;
    let delay: number;
    try {
      delay = this.#reconnect(link.attempt);
    } catch (error) {
      this[emit]("exception", error, link.server);
      delay = NaN;
    }
    // A bad delay from the caller's function must not become a reconnect
    // storm (setTimeout would read NaN as 0): fall back to the default.
    if (typeof delay !== "number" || !(delay >= 0) || delay === Infinity) {
      delay = reconnectDelay(link.attempt);
    }
    link.reconnectTimer = setTimeout(() => {
      link.reconnects++;
      this.#connect(link);
    }, delay);
  }

  #receive(frame: Frame, conn: Conn | undefined): void {
    // The client never answers a PING: if both sides echoed, one PING
    // would bounce forever.
    if (frame.sign !== SIGN_DATA) {
      if (conn === undefined) return;
      const kind = controlKind(frame.uuid, this.#protocol);
      if (kind === "going-away") this.#goAway(conn);
      else if (
        !conn.greeted && (kind === "hello-ack" || kind === "hello")
      ) this.#greeted(conn);
      return;
    }
    // A server that speaks first is there too.
    if (conn !== undefined && !conn.greeted) this.#greeted(conn);
    // Hashing a fresh 36-character key costs more than the rest of a `send`
    // reply's path: look only when some request waits.
    const request = this.#pending.size > 0
      ? this.#pending.get(frame.uuid)
      : undefined;
    if (request) {
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

  #tick(): void {
    const now = performance.now();
    const late = this.#tickClock?.lateness(now) ?? 0;
    const timeoutMs = this.#timeoutMs ?? Infinity;
    const heartbeatMs = this.#heartbeatMs ?? Infinity;
    for (const conn of this.#conns) {
      const framed = conn.framed;
      if (framed.closed) continue;
      const silent = silence(framed, now, late, timeoutMs);
      if (silent) {
        conn.link.timeouts++;
        this[emit]("exception", silent, conn.link.server);
        framed.close();
        continue;
      }
      // Nothing more, not even a PING, after done-writing.
      if (!conn.leaving && now - conn.lastPing >= heartbeatMs) {
        conn.lastPing = now;
        ping(framed, this.#protocol);
      }
    }
  }
}

function clientDetail(type: keyof ClientEvents, args: unknown[]): unknown {
  switch (type) {
    case "connected":
    case "closed":
      return { server: args[0] };
    case "exception":
      return { error: args[0], server: args[1] };
    case "data":
      return args[0];
    default:
      return null;
  }
}

/** Adds `more`'s numeric fields to `into`'s (the fields `into` has). */
function addCounts<T extends object>(into: T, more: object): void {
  const target = into as Record<string, unknown>;
  for (const [key, value] of Object.entries(more)) {
    if (typeof value === "number" && typeof target[key] === "number") {
      target[key] = (target[key] as number) + value;
    }
  }
}
