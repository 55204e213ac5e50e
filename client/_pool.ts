// The client's connections: for each server, `connectionsPerServer` links,
// each with its own connect attempts, backoff, hello and liveness; going-away
// and leaving; and servers that leave the set. What a message is and whom it
// answers is the facade's (client.ts); which ready link it takes is the
// balancer's.

import { ping, silence, TickClock } from "../_liveness.ts";
import type { Frame, ProtocolVersion } from "../codec.ts";
import { SIGN_DATA } from "../codec.ts";
import { FramedConnection, sendFrame } from "../_connection.ts";
import { controlFrame, controlKind } from "../_control.ts";
import { gracePeriod } from "../_deadlines.ts";
import { ClosedError, TimeoutError } from "../errors.ts";
import type {
  ClientTlsOptions,
  PeerCertificate,
  Transport,
} from "../transport/transport.ts";
import type { ClientServerStats } from "../stats.ts";
import { trafficOf, TrafficTotals } from "../_stats.ts";
import { type Channel, channels } from "../_diagnostics.ts";
import { Balancer } from "./_balancer.ts";
import type { Health } from "./_outliers.ts";

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
 * How long a new connection waits for the server's answer to its hello (or
 * `connectTimeout`, if shorter). One unanswered is a failed attempt: a
 * server that does not read (hung, stopped, a listener's backlog, a load
 * balancer with no backend), or one of the other protocol.
 */
export const HELLO_TIMEOUT_MS = 5000;

/**
 * A connection that served this long before it was lost or sent away
 * resets the reconnect backoff, and is replaced at once when sent away; a
 * younger one is a failure of the server's, and the backoff grows.
 */
export const SERVED_WHILE_MS = 3000;

/**
 * A leaving connection whose requests are settled closes once nothing has
 * arrived on it for this long (or its server closed it, or `gracePeriod`
 * ran out): replies to `send()`s, which the client does not track, arrive
 * meanwhile. A server of this package closes it first, once it has answered
 * every message it read.
 */
export const LEAVE_QUIET_MS = 1000;

/**
 * A connection told to go away after serving a while is replaced after a
 * random delay up to this long: the clients of a server that stops do not
 * all land on the next one in the same instant.
 */
export const RETURN_JITTER_MS = 200;

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

/** `"host:port"` (`"[v6]:port"`) of an address. */
export function serverName(address: ServerAddress): string {
  return address.host.includes(":")
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}

/** One open connection, with what the client keeps about it. */
export class Conn {
  /** Requests written on it and not yet settled. */
  inFlight = 0;
  /**
   * Nothing more is written on it: its server said `going-away`, or left the
   * client's set. It closes once its requests are settled.
   */
  leaving = false;
  /** It said `done-writing`: not even a PING follows. */
  doneWriting = false;
  /** The server answered its hello: messages may be written on it. */
  greeted = false;
  /** When it was greeted. */
  greetedAt = 0;
  /**
   * Its failure was reported already (an unanswered hello, a protocol
   * error), and is `failure`.
   */
  reported = false;
  failure: unknown;
  /**
   * Requests that settled (timed out, aborted) while their frame was still
   * in its write buffer: if it is lost, their frames are not sent elsewhere.
   */
  withdrawn: Set<string> | undefined;
  helloTimer: ReturnType<typeof setTimeout> | undefined;
  /** Checks when a leaving connection may close. */
  leaveTimer: ReturnType<typeof setTimeout> | undefined;
  /** When it began to leave. */
  leavingSince = 0;
  lastPing = performance.now();

  constructor(readonly framed: FramedConnection, readonly link: Link) {}
}

/**
 * One of the connections kept to a server: its own connect attempts,
 * backoff and liveness.
 */
export class Link {
  /** The open connection messages may be written on, if any. */
  conn: Conn | undefined;
  connecting: Promise<void> | undefined;
  attemptAbort: AbortController | undefined;
  attempt = 0;
  /** When the current connect attempt began. */
  attemptStartedAt = 0;
  reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  /** Until when it is warming up (the balancer's slow start). */
  warmUntil = 0;
  /** When it last became ready (the balancer's). */
  readyAt = 0;
  /** Its server left the set: no more connects, no more messages. */
  retired = false;
  /** Its server's record for outlier ejection, if that is on. */
  health: Health | undefined;
  // Counters for stats(): traffic of its closed connections, and events.
  readonly traffic = new TrafficTotals();
  connectionsTotal = 0;
  connectFailures = 0;
  reconnects = 0;
  timeouts = 0;

  constructor(readonly address: ServerAddress, readonly server: string) {}
}

/** What the pool tells its client. */
export interface PoolHooks {
  /** A DATA frame arrived on `conn`. */
  data(frame: Frame, conn: Conn): void;
  /** `conn` is ready (its server answered): flush what waits. */
  ready(conn: Conn): void;
  /**
   * `conn` was lost, and is out of the pool: its requests and unsent
   * messages are the client's to send elsewhere or fail.
   */
  lost(conn: Conn, error: unknown): void;
  /** No connection will be made again: reconnect is off, and all failed. */
  exhausted(): void;
  /**
   * The `connected`, `closed` and `exception` events; `connected` with the
   * server's certificate, with TLS.
   */
  connected(server: string, peerCertificate: PeerCertificate | undefined): void;
  closed(server: string): void;
  exception(error: unknown, server: string | undefined): void;
}

/** The pool's settings, read from the client's options. */
export interface PoolOptions {
  /** Named in diagnostics messages as `client`. */
  readonly owner: object;
  readonly transport: Transport;
  readonly tls: ClientTlsOptions | undefined;
  readonly connection: {
    protocol: ProtocolVersion;
    maxFrameSize: number;
    maxBufferedBytes: number;
    borrowPayloads: boolean;
  };
  readonly connectionsPerServer: number;
  readonly connectTimeoutMs: number | undefined;
  readonly heartbeatMs: number | undefined;
  readonly timeoutMs: number | undefined;
  readonly tickMs: number | undefined;
  readonly graceMs: number;
  readonly reconnect: ((attempt: number) => number) | undefined;
  readonly roundRobin: boolean;
}

/** Stats counters of links, summed. */
type LinkCounts = Omit<
  ClientServerStats,
  "server" | "host" | "port" | "ejected" | "ejections"
>;

/** The links to the servers of the set, and their connections. */
export class Pool {
  /** Links of the servers in the set, in the order servers were added. */
  readonly links: Link[] = [];
  /** Every open connection, including those leaving. */
  readonly conns = new Set<Conn>();
  readonly balancer: Balancer<Link>;
  /** Counters of links whose server left the set. */
  readonly formerLinks: Link[] = [];
  readonly #options: PoolOptions;
  readonly #hooks: PoolHooks;
  readonly #protocol: ProtocolVersion;
  /** TLS settings of the connections made from now on (see `setTls`). */
  #tls: ClientTlsOptions | undefined;
  #tickTimer: ReturnType<typeof setInterval> | undefined;
  #tickClock: TickClock | undefined;
  #closing = false;
  /** Servers ejected as outliers. */
  readonly #ejected = new Set<string>();

  constructor(options: PoolOptions, hooks: PoolHooks) {
    this.#options = options;
    this.#hooks = hooks;
    this.#protocol = options.connection.protocol;
    this.#tls = options.tls;
    this.balancer = new Balancer(options.roundRobin);
  }

  /**
   * Replaces the TLS settings for the connections made from now on; open
   * ones keep theirs.
   */
  setTls(tls: ClientTlsOptions): void {
    this.#tls = tls;
  }

  /** The link for the next message, or undefined with none ready. */
  pick(): Link | undefined {
    return this.balancer.size > 0
      ? this.balancer.pick((link) => this.#unready(link))
      : undefined;
  }

  /**
   * True when no connection will be made again: reconnect is off, and no
   * link is connected, connecting or waiting to.
   */
  get exhausted(): boolean {
    if (this.#options.reconnect || this.#closing || this.links.length === 0) {
      return false;
    }
    for (const conn of this.conns) {
      if (!conn.leaving && !conn.framed.closed) return false;
    }
    return this.links.every((link) =>
      link.connecting === undefined && link.reconnectTimer === undefined
    );
  }

  #checkExhausted(): void {
    if (this.exhausted) this.#hooks.exhausted();
  }

  /** Starts connecting to a server that joined the set. */
  add(address: ServerAddress, health?: Health): void {
    const server = serverName(address);
    for (let n = 0; n < this.#options.connectionsPerServer; n++) {
      const link = new Link(address, server);
      link.health = health;
      this.links.push(link);
      this.#connect(link);
    }
  }

  /**
   * A server left the set: it takes no new message, its attempts stop, and
   * its connections close once their requests are settled (as after a
   * `going-away`, but without `done-writing`: the server is not draining, and
   * pings keep the connection alive while it finishes).
   */
  retire(server: string): void {
    for (let i = this.links.length - 1; i >= 0; i--) {
      const link = this.links[i];
      if (link.server !== server) continue;
      this.links.splice(i, 1);
      this.formerLinks.push(link);
      link.retired = true;
      clearTimeout(link.reconnectTimer);
      link.reconnectTimer = undefined;
      link.attemptAbort?.abort(
        new ClosedError(`${server} left the client's servers`),
      );
      if (link.conn !== undefined) this.#unready(link);
    }
    this.#ejected.delete(server);
    for (const conn of this.conns) {
      // One told to go away is on its way out already.
      if (!conn.link.retired || conn.leaving) continue;
      conn.leaving = true;
      conn.leavingSince = performance.now();
      clearTimeout(conn.helloTimer);
      if (conn.inFlight === 0) this.leave(conn);
    }
  }

  /**
   * Outlier ejection: `server` takes no new message (its connections stay
   * open, pinged) until restored.
   */
  eject(server: string): void {
    this.#ejected.add(server);
    for (const link of this.links) {
      if (link.server === server) this.balancer.remove(link);
    }
  }

  /** An ejected server may take messages again (warming up). */
  restore(server: string): void {
    if (!this.#ejected.delete(server)) return;
    for (const link of this.links) {
      const conn = link.conn;
      if (
        link.server === server && conn !== undefined && !conn.leaving &&
        !conn.framed.closed
      ) this.balancer.add(link);
    }
  }

  /**
   * Closes a leaving connection whose requests are settled, once quiet (see
   * {@linkcode LEAVE_QUIET_MS}).
   */
  leave(conn: Conn): void {
    if (conn.framed.closed || conn.leaveTimer !== undefined) return;
    const graceMs = this.#options.graceMs;
    const check = () => {
      conn.leaveTimer = undefined;
      if (conn.framed.closed) return;
      const now = performance.now();
      conn.framed.stamp(now);
      const quiet = now - conn.framed.lastReceived;
      const waited = now - conn.leavingSince;
      if (quiet >= LEAVE_QUIET_MS || waited >= graceMs || this.#closing) {
        const grace = gracePeriod(graceMs);
        conn.framed.close(grace.over).finally(grace.end);
        return;
      }
      conn.leaveTimer = setTimeout(
        check,
        Math.min(LEAVE_QUIET_MS - quiet, graceMs - waited),
      );
    };
    check();
  }

  /**
   * Stops connecting and closes every connection, giving what is buffered
   * the grace period to go out.
   */
  async close(reason: unknown): Promise<void> {
    this.#closing = true;
    const links = [...this.links, ...this.formerLinks];
    for (const link of links) {
      clearTimeout(link.reconnectTimer);
      link.reconnectTimer = undefined;
      link.attemptAbort?.abort(reason);
    }
    await Promise.all(links.map((link) => link.connecting));
    for (const conn of this.conns) {
      clearTimeout(conn.helloTimer);
      clearTimeout(conn.leaveTimer);
    }
    clearInterval(this.#tickTimer);
    this.#tickTimer = undefined;
    if (this.conns.size === 0) return;
    const grace = gracePeriod(this.#options.graceMs);
    try {
      await Promise.all(
        Array.from(this.conns, (conn) => conn.framed.close(grace.over)),
      );
    } finally {
      grace.end();
    }
  }

  /** Per server in the set: its counters, summed over its links. */
  serverStats(): Map<string, ClientServerStats> {
    const byServer = new Map<string, ClientServerStats>();
    for (const link of this.links) {
      const counts = this.#countsOf(link);
      const entry = byServer.get(link.server);
      if (entry === undefined) {
        byServer.set(link.server, {
          server: link.server,
          host: link.address.host,
          port: link.address.port,
          ...counts,
          ejected: this.#ejected.has(link.server),
          ejections: link.health?.ejections ?? 0,
        });
      } else {
        entry.connected ||= counts.connected;
        addCounts(entry, counts);
      }
    }
    return byServer;
  }

  /** Counters of the servers that left the set, summed into `into`. */
  addFormerCounts(into: object): void {
    for (const link of this.formerLinks) addCounts(into, this.#countsOf(link));
  }

  #countsOf(link: Link): LinkCounts {
    const open: FramedConnection[] = [];
    for (const conn of this.conns) {
      if (conn.link === link) open.push(conn.framed);
    }
    return {
      connected: link.conn !== undefined,
      connectionsOpen: open.length,
      connectionsTotal: link.connectionsTotal,
      connectFailures: link.connectFailures,
      reconnects: link.reconnects,
      timeouts: link.timeouts,
      ...link.traffic.with(open),
    };
  }

  #publish(
    channel: Channel,
    link: Link,
    framed: FramedConnection | undefined,
    extra: object,
  ): void {
    channel.publish({
      side: "client",
      client: this.#options.owner,
      server: link.server,
      host: link.address.host,
      port: link.address.port,
      remoteAddr: framed?.remoteAddr,
      ...extra,
    });
  }

  #connect(link: Link): void {
    link.reconnectTimer = undefined;
    let framed: FramedConnection | undefined;
    let conn: Conn | undefined;
    const attempt = link.attemptAbort = new AbortController();
    link.attemptStartedAt = performance.now();
    const limitMs = this.#options.connectTimeoutMs;
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
    const connecting = this.#options.transport.connect(
      { hostname: link.address.host, port: link.address.port },
      (transport) => {
        framed = new FramedConnection(
          transport,
          this.#options.connection,
          {
            frame: (frame) => this.#receive(frame, conn),
            protocolError: (error) => {
              if (channels?.protocolError.hasSubscribers) {
                this.#publish(channels.protocolError, link, framed, { error });
              }
              if (conn !== undefined) {
                conn.reported = true;
                conn.failure = error;
              }
              this.#hooks.exception(error, link.server);
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
        if (this.#closing || link.retired) return;
        link.connectFailures++;
        if (channels?.failed.hasSubscribers) {
          this.#publish(channels.failed, link, undefined, { error });
        }
        this.#hooks.exception(error, link.server);
        this.#scheduleReconnect(link);
      },
    ).finally(() => {
      clearTimeout(timer);
      link.attemptAbort = undefined;
      link.connecting = undefined;
      this.#checkExhausted();
    });
  }

  #opened(conn: Conn): void {
    const link = conn.link;
    const framed = conn.framed;
    if (this.#closing || link.retired || framed.closed) {
      framed.close();
      this.#scheduleReconnect(link);
      return;
    }
    link.connectionsTotal++;
    this.conns.add(conn);
    if (channels?.opened.hasSubscribers) {
      this.#publish(channels.opened, link, framed, {});
    }
    // Nothing else is written until the server answers (ours with
    // hello-ack, a 3.x or 2.x one with its echo): a connection the system
    // completed but no server will read (in the backlog of a listener about
    // to close, or a load balancer with no backend) then loses nothing.
    sendFrame(framed, controlFrame("hello", this.#protocol));
    // The answer counts in the attempt's connectTimeout too.
    const helloMs = Math.max(
      0,
      Math.min(
        HELLO_TIMEOUT_MS,
        (this.#options.connectTimeoutMs ?? Infinity) -
          (performance.now() - link.attemptStartedAt),
      ),
    );
    conn.helloTimer = setTimeout(
      () => this.#unanswered(conn, helloMs),
      helloMs,
    );
    conn.lastPing = performance.now();
    const tickMs = this.#options.tickMs;
    if (tickMs !== undefined && this.#tickTimer === undefined) {
      this.#tickClock = new TickClock(tickMs);
      this.#tickTimer = setInterval(() => this.#tick(), tickMs);
    }
  }

  /** The server answered nothing in time: a failed attempt. */
  #unanswered(conn: Conn, ms: number): void {
    conn.helloTimer = undefined;
    if (conn.greeted || conn.framed.closed || this.#closing) return;
    const link = conn.link;
    link.connectFailures++;
    conn.reported = true;
    const error = conn.failure = new TimeoutError(
      `${link.server} accepted the connection but answered nothing within ` +
        `${
          Math.round(ms)
        } ms: a server that does not read (hung, stopped, or no ` +
        `backend behind a load balancer), or one of another protocol ` +
        `(a ${
          this.#protocol === 3
            ? "2.x server: set protocol: 2"
            : "3.x or 4.x server: leave protocol at 3"
        })`,
      ms,
    );
    if (channels?.failed.hasSubscribers) {
      this.#publish(channels.failed, link, conn.framed, { error });
    }
    this.#hooks.exception(error, link.server);
    conn.framed.close();
  }

  /** The server answered the hello: messages may flow. */
  #greeted(conn: Conn): void {
    clearTimeout(conn.helloTimer);
    conn.helloTimer = undefined;
    if (conn.greeted || conn.leaving || conn.framed.closed || this.#closing) {
      return;
    }
    conn.greeted = true;
    conn.greetedAt = performance.now();
    const link = conn.link;
    link.conn = conn;
    if (!this.#ejected.has(link.server)) this.balancer.add(link);
    this.#hooks.ready(conn);
    this.#hooks.connected(link.server, conn.framed.peerCertificate);
  }

  /** Takes a link out of those messages may be written on. */
  #unready(link: Link): void {
    link.conn = undefined;
    this.balancer.remove(link);
  }

  #lost(conn: Conn, error: unknown): void {
    if (!this.conns.delete(conn)) return;
    clearTimeout(conn.helloTimer);
    clearTimeout(conn.leaveTimer);
    const link = conn.link;
    link.traffic.add(conn.framed);
    if (channels?.closed.hasSubscribers) {
      this.#publish(channels.closed, link, conn.framed, {
        error,
        stats: trafficOf(conn.framed),
      });
    }
    if (link.conn === conn) this.#unready(link);
    if (this.conns.size === 0) {
      clearInterval(this.#tickTimer);
      this.#tickTimer = undefined;
    }
    // Lost for a reason said already: that reason, said once.
    if (conn.reported) error ??= conn.failure;
    this.#hooks.lost(conn, error);
    this.#forgetBackoff(conn);
    // `closed` only follows `connected`; a connection lost before its
    // server answered is a failed attempt, reported as one.
    if (conn.reported) error = undefined;
    else if (
      !conn.greeted && error === undefined && !this.#closing && !link.retired
    ) {
      error = new ClosedError(
        `Connection to ${link.server} closed before the server answered`,
      );
    }
    if (error !== undefined) this.#hooks.exception(error, link.server);
    if (conn.greeted) this.#hooks.closed(link.server);
    // One told to go away has its successor under way already.
    if (!conn.leaving) this.#scheduleReconnect(link);
    this.#checkExhausted();
  }

  /**
   * The server said `going-away`: write nothing more on this connection but
   * `done-writing` (so the server knows it has read everything), send from
   * now on over another (with one server, a new one), and close this one
   * once its replies are in.
   */
  #goAway(conn: Conn): void {
    if (conn.framed.closed || conn.doneWriting) return;
    // One whose server left the set is closing once settled already.
    const closingAlready = conn.leaving;
    conn.leaving = true;
    if (!closingAlready) conn.leavingSince = performance.now();
    conn.doneWriting = true;
    try {
      sendFrame(conn.framed, controlFrame("done-writing", this.#protocol));
    } catch { /* full: the server closes it at the end of its grace period */ }
    clearTimeout(conn.helloTimer);
    const link = conn.link;
    if (link.conn === conn) this.#unready(link);
    // Its successor, soon (a jitter of RETURN_JITTER_MS) if this one served a while, else after the
    // backoff: a server that sends every connection away (a tiny
    // maxConnectionAge) must not get a connection storm. Without reconnect,
    // what is sent from now on waits in the queue.
    if (
      !this.#closing && !link.retired && this.#options.reconnect &&
      link.conn === undefined && link.connecting === undefined &&
      link.reconnectTimer === undefined
    ) {
      if (this.#forgetBackoff(conn)) {
        link.reconnectTimer = setTimeout(
          () => this.#connect(link),
          Math.random() * RETURN_JITTER_MS,
        );
      } else this.#scheduleReconnect(link);
    }
    if (conn.inFlight === 0 && !closingAlready) this.leave(conn);
  }

  /**
   * Resets the backoff if `conn` served a while: the answer to a hello alone
   * does not, or a server that sends every connection away (or crashes on
   * every message) would get a new one every 200 ms.
   * @returns Whether it served a while.
   */
  #forgetBackoff(conn: Conn): boolean {
    if (
      !conn.greeted || performance.now() - conn.greetedAt < SERVED_WHILE_MS
    ) return false;
    conn.link.attempt = 0;
    return true;
  }

  #scheduleReconnect(link: Link): void {
    const reconnect = this.#options.reconnect;
    if (
      !reconnect || this.#closing || link.retired || link.reconnectTimer
    ) return;
    link.attempt++;
    let delay: number;
    try {
      delay = reconnect(link.attempt);
    } catch (error) {
      this.#hooks.exception(error, link.server);
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
    if (conn === undefined) return;
    // The client never answers a PING: if both sides echoed, one PING
    // would bounce forever.
    if (frame.sign !== SIGN_DATA) {
      const kind = controlKind(frame.uuid, this.#protocol);
      if (kind === "going-away") this.#goAway(conn);
      else if (
        !conn.greeted && (kind === "hello-ack" || kind === "hello")
      ) this.#greeted(conn);
      else if (kind !== undefined) conn.framed.controlIgnored++;
      return;
    }
    // A server that speaks first is there too.
    if (!conn.greeted) this.#greeted(conn);
    this.#hooks.data(frame, conn);
  }

  #tick(): void {
    const now = performance.now();
    const late = this.#tickClock?.lateness(now) ?? 0;
    const timeoutMs = this.#options.timeoutMs ?? Infinity;
    const heartbeatMs = this.#options.heartbeatMs ?? Infinity;
    for (const conn of this.conns) {
      const framed = conn.framed;
      if (framed.closed) continue;
      const silent = silence(framed, now, late, timeoutMs);
      if (silent) {
        conn.link.timeouts++;
        this.#hooks.exception(silent, conn.link.server);
        framed.close();
        continue;
      }
      // Nothing more, not even a PING, after done-writing.
      if (!conn.doneWriting && now - conn.lastPing >= heartbeatMs) {
        conn.lastPing = now;
        ping(framed, this.#protocol);
      }
    }
  }
}

/** Adds `more`'s numeric fields to `into`'s (the fields `into` has). */
export function addCounts(into: object, more: object): void {
  const target = into as Record<string, unknown>;
  for (const [key, value] of Object.entries(more)) {
    if (typeof value === "number" && typeof target[key] === "number") {
      target[key] = (target[key] as number) + value;
    }
  }
}
