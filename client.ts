/**
 * The request client: connects at once, pings every `heartbeat` seconds,
 * drops a silent connection after `timeout`, reconnects with backoff, and
 * queues (within bounds) what is sent while disconnected.
 *
 * @example
 * ```ts
 * import { Client } from "@qtk/tcp-framework/client";
 * import { Server } from "@qtk/tcp-framework/server";
 * await using server = new Server({ host: "127.0.0.1", port: 0 });
 * server.on("data", (socket, message) => socket.send(message));
 * await server.start();
 * await using client = new Client({ host: "127.0.0.1", port: server.port });
 * const reply = await client.request(new TextEncoder().encode("echo"));
 * console.assert(new TextDecoder().decode(reply) === "echo");
 * ```
 *
 * @module
 */

import {
  type Frame,
  headerSize,
  type ProtocolVersion,
  SIGN_DATA,
  SIGN_PING,
} from "./codec.ts";
import { FramedConnection } from "./_connection.ts";
import { controlFrame, controlKind } from "./_control.ts";
import { type Deadline, DeadlineTimer, gracePeriod } from "./_deadlines.ts";
import { emit, TypedEventTarget } from "./events.ts";
import {
  hasMessageShape,
  type Message,
  type SendOptions,
  takePayload,
  toDataFrame,
  wantsTransfer,
} from "./message.ts";
import {
  checkCount,
  checkSeconds,
  parseCommonOptions,
  toMs,
} from "./_options.ts";
import { quote } from "./_quote.ts";
import { PayloadCopies } from "./_payload_copies.ts";
import { BufferFullError, ClosedError, TimeoutError } from "./errors.ts";
import type { ClientTlsOptions, Transport } from "./transport/transport.ts";
import { checkClientTls } from "./transport/_tls.ts";

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
 * import { reconnectDelay } from "@qtk/tcp-framework";
 * console.assert(reconnectDelay(1) === 200);
 * console.assert(reconnectDelay(20) <= 5000);
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
export interface ClientOptions {
  /**
   * Host name or IP address of the server.
   * @default {"localhost"}
   */
  host?: string;
  /** TCP port of the server. */
  port: number;
  /**
   * Seconds between PINGs. Fractions allowed.
   * @default {20}
   */
  heartbeat?: number;
  /**
   * Seconds without receiving any byte after which the connection is closed
   * (and, unless turned off, made again).
   * @default {30}
   */
  timeout?: number;
  /**
   * Seconds a connect attempt may take, TLS handshake included, before it is
   * given up (with a `TimeoutError` as `exception`) and retried per
   * `reconnect`: against a host that drops packets, the system's own limit is
   * minutes. Infinity leaves it to the system.
   * @default {the timeout}
   */
  connectTimeout?: number;
  /**
   * Largest payload accepted from the server, in bytes.
   * @default {64 MiB}
   */
  maxFrameSize?: number;
  /**
   * Bytes accepted by `send` and not yet written — queued while disconnected
   * or waiting for the socket — past which `send` throws `BufferFullError`.
   * @default {8 MiB}
   */
  maxBufferedBytes?: number;
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
   * Seconds that `close()` gives buffered frames to go out.
   * @default {1}
   */
  gracePeriod?: number;
  /**
   * Wire protocol: 3 (the 3.x layout) or 2 (legacy 2.x, for migration).
   * @default {3}
   */
  protocol?: ProtocolVersion;
  /**
   * Speak TLS, using the runtime's own TLS: `true` (or `{}`) verifies the
   * server against the default trust store; `{ ca, serverName }` names the
   * trusted CA certificate(s) (PEM) and the name the certificate must carry.
   * The handshake counts in `connectTimeout`.
   * @default {false}
   */
  tls?: boolean | ClientTlsOptions;
  /** Socket implementation; the running runtime's by default. For tests. */
  transport?: Transport;
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

/**
 * The client's events and their positional arguments, as passed to
 * {@linkcode Client.on}.
 *
 * @example
 * ```ts
 * import type { ClientEvents } from "@qtk/tcp-framework";
 * type DataArgs = ClientEvents["data"]; // [{ uuid, data }]
 * ```
 */
export interface ClientEvents {
  /** A connection is open (again). */
  connected: [];
  /** The open connection closed. */
  closed: [];
  /** Something failed: a connect attempt, the connection, a listener. */
  exception: [error: unknown];
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
 *   const { error }: ClientEventDetails["exception"] = event.detail;
 *   console.log(error);
 * });
 * await client.close();
 * ```
 */
export interface ClientEventDetails {
  /** No detail. */
  connected: null;
  /** No detail. */
  closed: null;
  /** The error. */
  exception: { error: unknown };
  /** The message. */
  data: Message;
}

/**
 * A request waiting for its reply. A class rather than an object of closures:
 * `request()` is called once per message, and each closure is an allocation.
 */
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

class PendingRequest implements Deadline {
  heapIndex = -1;
  /** The connection the request was written on, if it has left the queue. */
  sentOn: FramedConnection | undefined = undefined;
  /** Its frame, while it waits in the disconnected queue. */
  queued: QueuedFrame | undefined = undefined;
  onAbort: (() => void) | undefined = undefined;

  constructor(
    readonly uuid: string,
    readonly deadline: number,
    readonly timeout: number,
    readonly signal: AbortSignal | undefined,
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
 * A `@qtk/tcp-framework` client. It connects as soon as it is made, as the
 * Node.js package does. Extends `EventTarget`; also offers `on`/`once`/`off`
 * with the Node.js package's positional listener arguments.
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
  /** The server's host, as configured. */
  readonly host: string;
  /** The server's port, as configured. */
  readonly port: number;
  readonly #heartbeatMs: number | undefined;
  readonly #timeoutMs: number | undefined;
  readonly #connectTimeoutMs: number | undefined;
  readonly #tickMs: number | undefined;
  readonly #graceMs: number;
  readonly #requestTimeoutMs: number;
  readonly #maxQueuedMessages: number;
  readonly #reconnect: ((attempt: number) => number) | undefined;
  readonly #protocol: ProtocolVersion;
  readonly #connectionOptions: {
    protocol: ProtocolVersion;
    maxFrameSize: number;
    maxBufferedBytes: number;
  };
  readonly #transport: Transport;
  readonly #pending = new Map<string, PendingRequest>();
  readonly #deadlines = new DeadlineTimer();
  readonly #forgetRequest = (request: PendingRequest) => this.#forget(request);
  #connection: FramedConnection | undefined;
  /**
   * Connections whose server said `going-away`: nothing more is written on
   * them; each closes once the replies due on it are in.
   */
  readonly #leaving = new Set<FramedConnection>();
  /** Requests written on each connection and not yet settled. */
  readonly #inFlight = new Map<FramedConnection, number>();
  #connecting: Promise<void> | undefined;
  #attemptAbort: AbortController | undefined;
  readonly #tls: ClientTlsOptions | undefined;
  #queue: QueuedFrame[] = [];
  /** Entries of `#queue` still holding a frame. */
  #queuedMessages = 0;
  readonly #queueCopies = new PayloadCopies();
  #queuedBytes = 0;
  #attempt = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #tickTimer: ReturnType<typeof setInterval> | undefined;
  #lastPing = 0;
  #closing: Promise<void> | undefined;
  #drainWaiters: Array<{ resolve(): void; reject(error: unknown): void }> = [];

  /**
   * Makes the client and starts connecting.
   *
   * @param options Where to connect and how to keep the connection alive.
   * @throws {TypeError | RangeError} If an option is invalid; the message names it.
   */
  constructor(options: ClientOptions) {
    super({
      detail: clientDetail,
      listenerFailed: (_type, _args, error) => this[emit]("exception", error),
    });
    const common = parseCommonOptions(options);
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
    this.#tls = checkClientTls("tls", options.tls);
    this.#transport = common.transport;
    this.#connect();
  }

  /**
   * True while a connection is open.
   *
   * @example
   * ```ts
   * import { Client } from "@qtk/tcp-framework";
   * const client = new Client({ host: "127.0.0.1", port: 9, reconnect: false });
   * console.assert(!client.connected);
   * await client.close();
   * ```
   */
  get connected(): boolean {
    return this.#connection !== undefined && !this.#connection.closed;
  }

  /**
   * True once `close()` was called.
   *
   * @example
   * ```ts
   * import { Client } from "@qtk/tcp-framework";
   * const client = new Client({ host: "127.0.0.1", port: 9, reconnect: false });
   * await client.close();
   * console.assert(client.closed);
   * ```
   */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Bytes accepted by `send` and not yet written: queued while disconnected,
   * or waiting for the socket.
   *
   * @example
   * ```ts
   * import { Client } from "@qtk/tcp-framework";
   * const client = new Client({ host: "127.0.0.1", port: 9, reconnect: false });
   * console.assert(client.bufferedAmount === 0);
   * await client.close();
   * ```
   */
  get bufferedAmount(): number {
    return this.#queuedBytes + (this.#connection?.bufferedAmount ?? 0);
  }

  /**
   * Sends a message: at once when connected, otherwise queued until the next
   * connection, in order. The payload is copied or written before `send`
   * returns, so the caller may reuse it at once; with `{ transfer: true }`
   * its memory is taken instead, without a copy, and the caller's buffer is
   * detached once `send` accepts the message (see {@linkcode SendOptions}).
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
    const connection = this.#connection;
    if (
      connection !== undefined && !connection.closed && !this.#closing &&
      hasMessageShape(message, this.#protocol)
    ) {
      // Connected: the uuid's characters are checked as they are encoded.
      connection.sendData(message.uuid, message.data, transfer);
      return;
    }
    this.#send(toDataFrame(message, this.#protocol), transfer);
  }

  /**
   * Sends `data` under a fresh uuid and resolves with the reply's payload. The
   * reply is not also emitted as `data`. Like `send`, copies or writes `data`
   * before returning, so the caller may reuse it at once, or with
   * `transfer: true` takes its memory and detaches the caller's buffer.
   *
   * @param data The request payload.
   * @param options Time limit (ms) and abort signal.
   * @returns The payload of the reply.
   * @throws {TypeError} If `data` is not a `Uint8Array`.
   * @throws {TimeoutError} If no reply arrives in time.
   * @throws {ClosedError} If the client closes, or the connection that carried
   *   the request closes, before the reply.
   * @throws {BufferFullError} If the request cannot be queued.
   *
   * @example
   * ```ts
   * import { Client, Server } from "@qtk/tcp-framework";
   * await using server = new Server({ host: "127.0.0.1", port: 0 });
   * server.on("data", (socket, message) => socket.send(message));
   * await server.start();
   * await using client = new Client({ host: "127.0.0.1", port: server.port });
   * const reply = await client.request(new Uint8Array([42]), { timeout: 1000 });
   * console.assert(reply[0] === 42);
   * ```
   */
  request(data: Uint8Array, options: RequestOptions = {}): Promise<Uint8Array> {
    if (!(data instanceof Uint8Array)) {
      return Promise.reject(
        new TypeError(`Invalid data ${quote(data)}: expected a Uint8Array`),
      );
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
    const uuid = this.#protocol === 3
      ? crypto.randomUUID()
      : crypto.randomUUID().replaceAll("-", "");
    return new Promise<Uint8Array>((resolve, reject) => {
      const request = new PendingRequest(
        uuid,
        performance.now() + timeout,
        timeout,
        signal,
        this.#forgetRequest,
        resolve,
        reject,
      );
      try {
        request.queued = this.#send(
          { sign: SIGN_DATA, uuid, payload: data },
          transfer,
        );
      } catch (error) {
        reject(error);
        return;
      }
      this.#pending.set(uuid, request);
      // A queued frame waits for the next connection, so the close of the
      // current one (if closing) must not reject it.
      if (request.queued === undefined) this.#wrote(request, this.#connection!);
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
      return this.#connection?.drained() ?? Promise.resolve();
    }
    return new Promise((resolve, reject) =>
      this.#drainWaiters.push({ resolve, reject })
    );
  }

  /**
   * Closes the client for good: no more reconnects, pending requests reject
   * with `ClosedError`, queued messages are dropped, and what is buffered on an
   * open connection gets the grace period to go out. Leaves no timer or socket
   * behind. Calling it again returns the same promise.
   *
   * @returns Resolves once the connection is closed.
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
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#deadlines.clear();
    const closed = new ClosedError("Client is closed");
    // Before the requests: the last queued one leaving would resolve them.
    for (const waiter of this.#drainWaiters.splice(0)) waiter.reject(closed);
    for (const request of Array.from(this.#pending.values())) {
      request.reject(closed);
    }
    this.#emptyQueue();
    this.#attemptAbort?.abort(closed);
    await this.#connecting;
    const connections = [...this.#leaving];
    if (this.#connection) connections.push(this.#connection);
    if (connections.length === 0) return;
    const grace = gracePeriod(this.#graceMs);
    try {
      await Promise.all(connections.map((c) => c.close(grace.over)));
    } finally {
      grace.end();
    }
  }

  /** Writes `frame`, or queues it and returns its place in the queue. */
  #send(frame: Frame, transfer = false): QueuedFrame | undefined {
    if (this.#closing) {
      throw new ClosedError("Cannot send: the client is closed");
    }
    const connection = this.#connection;
    if (connection && !connection.closed) {
      connection.send(frame, transfer);
      return undefined;
    }
    const size = frame.payload.length + headerSize(this.#protocol);
    const limit = this.#connectionOptions.maxBufferedBytes;
    if (this.#queuedBytes > 0 && this.#queuedBytes + size > limit) {
      throw new BufferFullError(this.#queuedBytes, limit, size);
    }
    if (this.#queuedMessages >= this.#maxQueuedMessages) {
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
        payload: transfer
          ? takePayload(frame.payload)
          : this.#queueCopies.copy(frame.payload),
      },
      size,
    };
    this.#queue.push(queued);
    this.#queuedMessages++;
    this.#queuedBytes += size;
    return queued;
  }

  /** Notes that `request` went out on `connection`. */
  #wrote(request: PendingRequest, connection: FramedConnection): void {
    request.sentOn = connection;
    this.#inFlight.set(connection, (this.#inFlight.get(connection) ?? 0) + 1);
  }

  #forget(request: PendingRequest): void {
    const connection = request.sentOn;
    if (connection !== undefined) {
      request.sentOn = undefined;
      const left = this.#inFlight.get(connection)! - 1;
      if (left > 0) this.#inFlight.set(connection, left);
      else {
        this.#inFlight.delete(connection);
        if (this.#leaving.has(connection)) this.#leave(connection);
      }
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

  #connect(): void {
    this.#reconnectTimer = undefined;
    let connection: FramedConnection | undefined;
    const attempt = this.#attemptAbort = new AbortController();
    const limitMs = this.#connectTimeoutMs;
    const timer = limitMs === undefined ? undefined : setTimeout(
      () =>
        attempt.abort(
          new TimeoutError(
            `No connection to ${this.host}:${this.port} within ${limitMs} ms`,
            limitMs,
          ),
        ),
      limitMs,
    );
    const connecting = this.#transport.connect(
      { hostname: this.host, port: this.port },
      (transport) =>
        connection = new FramedConnection(
          transport,
          this.#connectionOptions,
          {
            frame: (frame) => this.#receive(frame, connection!),
            protocolError: (error) => this[emit]("exception", error),
            closed: (error) => this.#lost(connection!, error),
          },
        ),
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
    this.#connecting = Promise.race([connecting, abandoned]).then(
      () => this.#opened(connection!),
      (error) => {
        if (this.#closing) return;
        this[emit]("exception", error);
        this.#scheduleReconnect();
      },
    ).finally(() => {
      clearTimeout(timer);
      this.#attemptAbort = undefined;
      this.#connecting = undefined;
    });
  }

  #opened(connection: FramedConnection): void {
    if (this.#closing || connection.closed) {
      connection.close();
      if (!this.#closing) this.#scheduleReconnect();
      return;
    }
    this.#connection = connection;
    this.#attempt = 0;
    // First, before anything queued: the server answers it if it can tell
    // this client to go away (a 3.x server echoes it).
    connection.send(controlFrame("hello", this.#protocol));
    const queue = this.#queue;
    this.#emptyQueue();
    for (const queued of queue) {
      const frame = queued.frame;
      if (frame === undefined) continue;
      queued.frame = undefined;
      connection.send(frame);
      const request = this.#pending.get(frame.uuid);
      if (request) {
        this.#wrote(request, connection);
        request.queued = undefined;
      }
    }
    if (this.#drainWaiters.length > 0) {
      const waiters = this.#drainWaiters.splice(0);
      connection.drained().then(
        () => waiters.forEach((waiter) => waiter.resolve()),
        (error) => waiters.forEach((waiter) => waiter.reject(error)),
      );
    }
    this.#lastPing = performance.now();
    if (this.#tickMs !== undefined) {
      this.#tickTimer = setInterval(() => this.#tick(), this.#tickMs);
    }
    this[emit]("connected");
  }

  #lost(connection: FramedConnection, error: unknown): void {
    if (this.#leaving.delete(connection)) {
      this.#rejectSentOn(connection, error);
      if (error !== undefined) this[emit]("exception", error);
      this[emit]("closed");
      return;
    }
    if (this.#connection !== connection) return;
    this.#connection = undefined;
    clearInterval(this.#tickTimer);
    this.#tickTimer = undefined;
    this.#rejectSentOn(connection, error);
    // No request left to time out: no timer either.
    if (this.#pending.size === 0) this.#deadlines.clear();
    if (error !== undefined) this[emit]("exception", error);
    this[emit]("closed");
    if (!this.#closing) this.#scheduleReconnect();
  }

  #rejectSentOn(connection: FramedConnection, error: unknown): void {
    if (!this.#inFlight.has(connection)) return;
    for (const request of Array.from(this.#pending.values())) {
      if (request.sentOn === connection) {
        request.reject(
          new ClosedError("Connection closed before the reply arrived", {
            cause: error,
          }),
        );
      }
    }
  }

  /**
   * The server said `going-away`: write nothing more on this connection but
   * `done-writing` (so the server knows it has read everything), send from
   * now on over a new connection, and close this one once its replies are in.
   */
  #goAway(connection: FramedConnection): void {
    if (connection.closed || this.#leaving.has(connection)) return;
    this.#leaving.add(connection);
    try {
      connection.send(controlFrame("done-writing", this.#protocol));
    } catch { /* full: the server closes it at the end of its grace period */ }
    if (this.#connection === connection) {
      this.#connection = undefined;
      clearInterval(this.#tickTimer);
      this.#tickTimer = undefined;
      // Without reconnect, what is sent from now on waits in the queue.
      if (!this.#closing && this.#reconnect) {
        this.#attempt = 0;
        this.#connect();
      }
    }
    if (!this.#inFlight.has(connection)) this.#leave(connection);
  }

  /** Closes a connection that was told to go away, once nothing is due on it. */
  #leave(connection: FramedConnection): void {
    const grace = gracePeriod(this.#graceMs);
    connection.close(grace.over).finally(grace.end);
  }

  #scheduleReconnect(): void {
    if (!this.#reconnect || this.#closing || this.#reconnectTimer) return;
    this.#attempt++;
    let delay: number;
    try {
      delay = this.#reconnect(this.#attempt);
    } catch (error) {
      this[emit]("exception", error);
      delay = NaN;
    }
    // A bad delay from the caller's function must not become a reconnect
    // storm (setTimeout would read NaN as 0): fall back to the default.
    if (typeof delay !== "number" || !(delay >= 0) || delay === Infinity) {
      delay = reconnectDelay(this.#attempt);
    }
    this.#reconnectTimer = setTimeout(() => this.#connect(), delay);
  }

  #receive(frame: Frame, connection: FramedConnection): void {
    // The client never answers a PING: if both sides echoed, one PING
    // would bounce forever.
    if (frame.sign !== SIGN_DATA) {
      if (controlKind(frame.uuid, this.#protocol) === "going-away") {
        this.#goAway(connection);
      }
      return;
    }
    // Hashing a fresh 36-character key costs more than the rest of a `send`
    // reply's path: look only when some request waits.
    const request = this.#pending.size > 0
      ? this.#pending.get(frame.uuid)
      : undefined;
    if (request) {
      request.resolve(frame.payload);
      return;
    }
    this[emit]("data", { uuid: frame.uuid, data: frame.payload });
  }

  #tick(): void {
    const connection = this.#connection;
    if (!connection || connection.closed) return;
    const now = performance.now();
    connection.stamp(now);
    if (now - connection.lastProgress >= (this.#timeoutMs ?? Infinity)) {
      this[emit](
        "exception",
        new TimeoutError(
          `${
            connection.headerSince === undefined
              ? "Connection silent"
              : "Frame header incomplete"
          } for over ${this.#timeoutMs} ms`,
          this.#timeoutMs!,
        ),
      );
      connection.close();
      return;
    }
    if (now - this.#lastPing >= (this.#heartbeatMs ?? Infinity)) {
      this.#lastPing = now;
      try {
        connection.send({
          sign: SIGN_PING,
          uuid: this.#protocol === 3
            ? crypto.randomUUID()
            : crypto.randomUUID().replaceAll("-", ""),
          payload: new Uint8Array(0),
        });
      } catch { /* a full buffer: the connection is busy, not idle */ }
    }
  }
}

function clientDetail(type: keyof ClientEvents, args: unknown[]): unknown {
  switch (type) {
    case "exception":
      return { error: args[0] };
    case "data":
      return args[0];
    default:
      return null;
  }
}
