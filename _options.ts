// Option checks shared by Server and Client: each throws a TypeError or
// RangeError that names the option and quotes the value.

import { DEFAULT_MAX_FRAME_SIZE, type ProtocolVersion } from "./codec.ts";
import { quote } from "./_quote.ts";
import { checkKnownKeys } from "./_known_keys.ts";
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
 * Every key of {@linkcode ConnectionOptions}, for the lists of known option
 * keys of Server and Client (any other key is refused as a typo).
 */
export const CONNECTION_OPTIONS: Record<keyof ConnectionOptions, true> = {
  heartbeat: true,
  timeout: true,
  maxFrameSize: true,
  maxBufferedBytes: true,
  gracePeriod: true,
  protocol: true,
  borrowPayloads: true,
  transport: true,
};

/** What parseCommonOptions reads: the connection options and the address. */
export interface CommonOptions extends ConnectionOptions {
  host?: string;
  port: number;
}

/** The shared options, checked, with defaults filled in and times in ms. */
export interface ParsedCommonOptions {
  host: string;
  port: number;
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
 * Checks the options Server and Client share, after refusing any key not in
 * `known` (the class's whole option list).
 * @throws {TypeError | RangeError} Naming the first invalid option.
 */
export function parseCommonOptions(
  options: CommonOptions,
  known: Readonly<Record<string, true>>,
): ParsedCommonOptions {
  checkObject("options", options);
  checkKnownKeys("option", options, known);
  const timeout = checkSeconds("timeout", options.timeout ?? DEFAULT_TIMEOUT);
  // Unset, it keeps the default's ratio to a shorter timeout, so that setting
  // only `timeout` never makes a configuration that drops live peers.
  const heartbeat = options.heartbeat === undefined
    ? Math.min(DEFAULT_HEARTBEAT, timeout * 2 / 3)
    : checkSeconds("heartbeat", options.heartbeat);
  if (Number.isFinite(heartbeat) && !(heartbeat < timeout)) {
    throw new RangeError(
      `Invalid heartbeat ${quote(heartbeat)} with timeout ${
        quote(timeout)
      }: the heartbeat must be below the timeout (or Infinity for none), or a peer that answers every PING is still dropped`,
    );
  }
  return {
    host: checkHost("host", options.host ?? DEFAULT_HOST),
    port: checkPort("port", options.port),
    heartbeatMs: toMs(heartbeat),
    timeoutMs: toMs(timeout),
    tickMs: tickMs(heartbeat, timeout),
    graceMs: checkSeconds(
      "gracePeriod",
      options.gracePeriod ?? DEFAULT_GRACE_PERIOD,
    ) * 1000,
    connection: {
      protocol: checkProtocol("protocol", options.protocol ?? 3),
      maxFrameSize: checkCount(
        "maxFrameSize",
        options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE,
      ),
      maxBufferedBytes: checkCount(
        "maxBufferedBytes",
        options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES,
      ),
      borrowPayloads: checkBoolean(
        "borrowPayloads",
        options.borrowPayloads ?? false,
      ),
    },
    transport: options.transport ?? runtimeTransport(),
  };
}

function checkBoolean(name: string, value: unknown): boolean {
  if (typeof value !== "boolean") {
    throw new TypeError(`Invalid ${name} ${quote(value)}: expected a boolean`);
  }
  return value;
}

export function checkHost(name: string, value: unknown): string {
  if (typeof value !== "string" || value.length === 0) {
    throw new TypeError(
      `Invalid ${name} ${quote(value)}: expected a non-empty string`,
    );
  }
  return value;
}

export function checkPort(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new TypeError(`Invalid ${name} ${quote(value)}: expected an integer`);
  }
  if (value < 0 || value > 65535) {
    throw new RangeError(
      `Invalid ${name} ${quote(value)}: expected 0 to 65535`,
    );
  }
  return value;
}

/** A positive duration in seconds (fractions allowed, Infinity for never). */
export function checkSeconds(name: string, value: unknown): number {
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw new TypeError(
      `Invalid ${name} ${quote(value)}: expected a number of seconds`,
    );
  }
  if (!(value > 0)) {
    throw new RangeError(
      `Invalid ${name} ${quote(value)}: expected more than 0 seconds`,
    );
  }
  return value;
}

/** A count (bytes, messages): a positive integer, or Infinity where allowed. */
export function checkCount(
  name: string,
  value: unknown,
  allowInfinity = false,
): number {
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw new TypeError(`Invalid ${name} ${quote(value)}: expected a number`);
  }
  const whole = Number.isSafeInteger(value) ||
    (allowInfinity && value === Infinity);
  if (!whole || value < 1) {
    throw new RangeError(
      `Invalid ${name} ${quote(value)}: expected a positive integer${
        allowInfinity ? " or Infinity" : ""
      }`,
    );
  }
  return value;
}

function checkProtocol(name: string, value: unknown): 2 | 3 {
  if (value !== 2 && value !== 3) {
    throw new RangeError(`Invalid ${name} ${quote(value)}: expected 2 or 3`);
  }
  return value;
}

export function checkObject(name: string, value: unknown): void {
  if (value === null || typeof value !== "object") {
    throw new TypeError(`Invalid ${name} ${quote(value)}: expected an object`);
  }
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
