// The options Server and Client share (ConnectionOptions), their table and
// defaults, and what the two make of them.

import { DEFAULT_MAX_FRAME_SIZE, type ProtocolVersion } from "./codec.ts";
import { quote } from "./_quote.ts";
import {
  checkBoolean,
  checkCount,
  checkHost,
  checkNothing,
  checkPort,
  checkProtocol,
  checkSeconds,
} from "./_checks.ts";
import type { OptionTable, ParsedOptions } from "./_option_table.ts";
import { runtimeTransport } from "./transport/runtime.ts";
import type { Transport } from "./transport/transport.ts";

/**
 * Default host a server listens on.
 * @example `new Server({ port: 0 }).host === DEFAULT_HOST`
 */
export const DEFAULT_HOST = "localhost";
/**
 * Default heartbeat period in seconds.
 * @example `DEFAULT_HEARTBEAT === 20`
 */
export const DEFAULT_HEARTBEAT = 20;
/**
 * Default silence, in seconds, after which a connection is closed.
 * @example `DEFAULT_TIMEOUT === 30`
 */
export const DEFAULT_TIMEOUT = 30;
/**
 * Default limit, per connection, on bytes accepted by `send` but not yet
 * written (8 MiB).
 * @example `DEFAULT_MAX_BUFFERED_BYTES === 8 * 1024 * 1024`
 */
export const DEFAULT_MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
/**
 * Default time, in seconds, that a server gives a draining connection
 * (`stop()`, `maxConnectionAge`) to finish, and that a client's `close()`
 * gives buffered frames to go out, before the connection is cut.
 * @example `DEFAULT_GRACE_PERIOD === 10`
 */
export const DEFAULT_GRACE_PERIOD = 10;

/**
 * The options of every connection, a {@linkcode Server}'s or a
 * {@linkcode Client}'s: {@linkcode ServerOptions} and {@linkcode ClientOptions}
 * extend it.
 *
 * @example
 * ```ts
 * import type { ConnectionOptions } from "@qtk/tcp-framework";
 * const shared: ConnectionOptions = { heartbeat: 5, timeout: 15, protocol: 3 };
 * ```
 */
export interface ConnectionOptions {
  /**
   * Seconds between heartbeat PINGs, fractions allowed: a Client sends one
   * every `heartbeat`; a Server sends one on each connection it has sent
   * nothing on for that long, so even peers that never ping see traffic.
   * Must be below `timeout`, or Infinity for none.
   * @default {20, or two thirds of a shorter `timeout`}
   */
  heartbeat?: number;
  /**
   * Seconds without receiving any byte after which a connection is closed
   * (a Client then connects again, unless `reconnect` is off).
   * @default {30}
   */
  timeout?: number;
  /**
   * Largest payload accepted from the peer, in bytes; a larger one closes
   * that connection with a `FrameTooLargeError`.
   * @default {64 MiB}
   */
  maxFrameSize?: number;
  /**
   * Per connection, bytes accepted by `send` and not yet taken by the runtime
   * (on a Client, also those queued while disconnected); past it `send`
   * throws `BufferFullError`.
   * @default {8 MiB}
   */
  maxBufferedBytes?: number;
  /**
   * Seconds that closing gives a connection to finish before it is cut: a
   * Server's `stop()` (or `maxConnectionAge`) drains each connection, telling
   * its client to go away and answering until it is done; a Client's
   * `close()` lets its buffered frames go out. Chosen to fit a slow handler
   * well inside the 30 s that container platforms usually wait after SIGTERM.
   * @default {10}
   */
  gracePeriod?: number;
  /**
   * Wire protocol: 3 (the 3.x layout) or 2 (legacy 2.x, for migration).
   * @default {3}
   */
  protocol?: ProtocolVersion;
  /**
   * Lend each `data` event's payload to its listeners instead of giving it:
   * it is valid while the listeners run (synchronously) and detached once
   * they return, so any view of it kept longer reads as empty, never as
   * other bytes; `new Uint8Array(data)` keeps a copy (so does `data.slice()`
   * on Deno and Bun, not on Node.js, where payloads are `Buffer`s). In exchange the connection may
   * read into memory it reuses (no allocation per read on Deno, and a large
   * payload's memory is reused on every runtime). A Client's `request()`
   * reply is not lent: it is a copy the caller keeps. Without
   * `ArrayBuffer.prototype.transfer` (Node.js 20) nothing is detached or
   * reused, and payloads behave as without this option. It pays on Deno;
   * on Bun, whose `transfer()` copies and whose reads come in fresh memory
   * anyway, it would cost more than it saves, so there it does nothing
   * either (bench/README.md has the figures).
   * @default {false}
   */
  borrowPayloads?: boolean;
  /** Socket implementation; the running runtime's by default. For tests. */
  transport?: Transport;
}

/**
 * The table of {@linkcode ConnectionOptions}, the rows Server's and Client's
 * tables begin with. Its order is the order of the known keys in the
 * unknown-option message.
 */
export const CONNECTION_TABLE = {
  heartbeat: {
    check: checkSeconds,
    unit: "s",
    doc:
      "seconds between heartbeat PINGs (default 20, or 2/3 of a shorter timeout)",
  },
  timeout: {
    check: checkSeconds,
    default: DEFAULT_TIMEOUT,
    unit: "s",
    doc: "silence after which a connection is closed",
  },
  maxFrameSize: {
    check: checkCount,
    default: DEFAULT_MAX_FRAME_SIZE,
    unit: "bytes",
    doc: "largest payload accepted from the peer",
  },
  maxBufferedBytes: {
    check: checkCount,
    default: DEFAULT_MAX_BUFFERED_BYTES,
    unit: "bytes",
    doc: "per connection, bytes sent and not yet written",
  },
  gracePeriod: {
    check: checkSeconds,
    default: DEFAULT_GRACE_PERIOD,
    unit: "s",
    doc: "time a closing connection has to finish before it is cut",
  },
  protocol: {
    check: checkProtocol,
    default: 3,
    doc: "wire protocol: 3, or 2 for @qtk/tcp-framework 2.x peers",
  },
  borrowPayloads: {
    check: checkBoolean,
    default: false,
    doc: "lend each data event's payload instead of giving it",
  },
  transport: {
    check: checkNothing<Transport>,
    doc: "socket implementation (the running runtime's), for tests",
  },
} as const satisfies OptionTable<ConnectionOptions>;

/**
 * The rows of a Client's one server, in its table and in the command line's
 * client subcommands (which offer no other Client option).
 */
export const SERVER_ADDRESS_TABLE = {
  host: {
    check: checkHost,
    default: DEFAULT_HOST,
    doc: "server address",
  },
  port: {
    check: checkPort,
    doc: "server port",
  },
} as const;

/** The options of every connection, parsed by a Server's or Client's table. */
export type ParsedConnectionOptions = ParsedOptions<typeof CONNECTION_TABLE>;

/** The shared options, with defaults filled in and times in ms. */
export interface ConnectionSettings {
  /** undefined: never (Infinity seconds). */
  heartbeatMs: number | undefined;
  timeoutMs: number | undefined;
  /** Period of the one liveness timer; undefined when nothing needs it. */
  tickMs: number | undefined;
  graceMs: number;
  connection: {
    protocol: ProtocolVersion;
    maxFrameSize: number;
    maxBufferedBytes: number;
    borrowPayloads: boolean;
  };
  transport: Transport;
}

/**
 * What Server and Client make of the connection options their table
 * parsed: the heartbeat that the timeout allows, times in ms.
 * @throws {RangeError} If the heartbeat is not below the timeout.
 */
export function connectionSettings(
  options: ParsedConnectionOptions,
): ConnectionSettings {
  const timeout = options.timeout;
  // Unset, it keeps the default's ratio to a shorter timeout, so that setting
  // only `timeout` never makes a configuration that drops live peers.
  const heartbeat = options.heartbeat ??
    Math.min(DEFAULT_HEARTBEAT, timeout * 2 / 3);
  if (Number.isFinite(heartbeat) && !(heartbeat < timeout)) {
    throw new RangeError(
      `Invalid heartbeat ${quote(heartbeat)} with timeout ${
        quote(timeout)
      }: the heartbeat must be below the timeout (or Infinity for none), or a peer that answers every PING is still dropped`,
    );
  }
  return {
    heartbeatMs: toMs(heartbeat),
    timeoutMs: toMs(timeout),
    tickMs: tickMs(heartbeat, timeout),
    graceMs: options.gracePeriod * 1000,
    connection: {
      protocol: options.protocol,
      maxFrameSize: options.maxFrameSize,
      maxBufferedBytes: options.maxBufferedBytes,
      borrowPayloads: options.borrowPayloads,
    },
    transport: options.transport ?? runtimeTransport(),
  };
}

/** Seconds to a timer delay in ms; Infinity (never) maps to undefined. */
export function toMs(seconds: number): number | undefined {
  return Number.isFinite(seconds) ? seconds * 1000 : undefined;
}

/**
 * How often the liveness check runs: often enough that a timeout or heartbeat
 * fires within a quarter of its period (at most 1 s late, like the original).
 */
export function tickMs(heartbeat: number, timeout: number): number | undefined {
  const shortest = Math.min(heartbeat, timeout);
  if (!Number.isFinite(shortest)) return undefined;
  return Math.max(5, Math.min(1000, (shortest * 1000) / 4));
}
