// Outlier ejection, after gRPC's outlier detection (gRFC A50): a server
// whose requests fail several times in a row, or whose replies come far
// slower than its peers', takes no new request for an ejection time that
// grows with each repeat, then is tried again. Never more than a share of
// the servers at once, so a fleet-wide failure is not mistaken for sick
// instances.

import {
  checkCount,
  checkFactor,
  checkObject,
  checkPercent,
  checkSeconds,
} from "../_checks.ts";
import { type OptionTable, parseOptions } from "../_option_table.ts";

/**
 * Settings of the client's outlier ejection (its `outlierDetection`
 * option).
 *
 * @example
 * ```ts
 * import type { OutlierOptions } from "@qtk/tcp-framework";
 * const options: OutlierOptions = { consecutiveFailures: 3, baseEjectionTime: 5 };
 * ```
 */
export interface OutlierOptions {
  /**
   * Requests in a row that fail (their connection lost after they were
   * written, or their time run out) that eject a server.
   * @default {5}
   */
  consecutiveFailures?: number;
  /**
   * Seconds an ejected server takes no request, the first time; each
   * repeat adds as much again, up to `maxEjectionTime`.
   * @default {10}
   */
  baseEjectionTime?: number;
  /**
   * Longest ejection, in seconds.
   * @default {300}
   */
  maxEjectionTime?: number;
  /**
   * Most servers ejected at once, as a percentage of the set (rounded
   * down): with the default, one of two or three, two of four.
   * @default {50}
   */
  maxEjectedPercent?: number;
  /**
   * A server whose mean reply time over a second (of at least 3 replies) is
   * this many times the median of the others' (and 50 ms more) is ejected
   * as slow; 0 turns this off.
   * @default {5}
   */
  slowFactor?: number;
}

/** The table of {@linkcode OutlierOptions}: checks, defaults, docs. */
export const OUTLIER_TABLE = {
  consecutiveFailures: {
    check: checkCount,
    default: 5,
    unit: "count",
    doc: "requests in a row that fail that eject a server",
  },
  baseEjectionTime: {
    check: checkSeconds,
    default: 10,
    unit: "s",
    doc: "first ejection's length; each repeat adds as much again",
  },
  maxEjectionTime: {
    check: checkSeconds,
    default: 300,
    unit: "s",
    doc: "longest ejection",
  },
  maxEjectedPercent: {
    check: checkPercent,
    default: 50,
    unit: "%",
    doc: "most servers ejected at once, as a share of the set",
  },
  slowFactor: {
    check: checkFactor,
    default: 5,
    doc: "times the others' median reply time that ejects as slow (0: off)",
  },
} as const satisfies OptionTable<OutlierOptions>;

/** The settings with their defaults, in ms where they are times. */
export interface OutlierSettings {
  consecutiveFailures: number;
  baseEjectionMs: number;
  maxEjectionMs: number;
  maxEjectedPercent: number;
  slowFactor: number;
}

/** How often reply times are compared. */
export const INTERVAL_MS = 1000;
/** Replies a server needs in an interval for its time to count. */
const MIN_REPLIES = 3;
/** A slow server is also at least this much slower than the median. */
const MIN_SLOWER_MS = 50;

/** What the detector asks of the client. */
export interface OutlierHooks {
  /** Take no new request to `server` until restored. */
  eject(server: string, reason: string): void;
  /** `server` may take requests again. */
  restore(server: string): void;
  /** How many servers are in the set now. */
  servers(): number;
}

/**
 * What is known of one server, shared by its links so that a reply costs
 * a property write, not a lookup.
 */
export class Health {
  failuresInRow = 0;
  /** Ejections so far, less those forgiven by good behaviour. */
  multiplier = 0;
  ejectedUntil = 0;
  ejected = false;
  /** Requests written, for timing one in four (a clock read costs). */
  writes = 0;
  /** Replies timed in this interval (a sample), and their total time. */
  replies = 0;
  replyMs = 0;
  /** Ejections, for stats. */
  ejections = 0;
}

/** Tracks each server's replies and failures, and ejects outliers. */
export class OutlierDetector {
  readonly #settings: OutlierSettings;
  readonly #hooks: OutlierHooks;
  readonly #health = new Map<string, Health>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #ejectedCount = 0;
  #closed = false;

  constructor(settings: OutlierSettings, hooks: OutlierHooks) {
    this.#settings = settings;
    this.#hooks = hooks;
  }

  /** Whether `server` is ejected now. */
  ejected(server: string): boolean {
    return this.#health.get(server)?.ejected ?? false;
  }

  /** Times `server` was ejected. */
  ejections(server: string): number {
    return this.#health.get(server)?.ejections ?? 0;
  }

  /** The record of a server that joined the set. */
  track(server: string): Health {
    let health = this.#health.get(server);
    if (health === undefined) {
      health = new Health();
      this.#health.set(server, health);
    }
    // Comparing needs two; ejecting one of one is never allowed.
    if (
      this.#timer === undefined && !this.#closed && this.#health.size >= 2
    ) {
      this.#timer = setInterval(() => this.#tick(), INTERVAL_MS);
    }
    return health;
  }

  /** A request written to `server` failed. */
  failed(server: string): void {
    const health = this.#health.get(server);
    if (health === undefined) return;
    if (
      ++health.failuresInRow >= this.#settings.consecutiveFailures &&
      !health.ejected
    ) {
      this.#eject(
        server,
        health,
        `${health.failuresInRow} requests in a row failed`,
      );
    }
  }

  /** `server` left the set. */
  forget(server: string): void {
    const health = this.#health.get(server);
    if (health?.ejected) this.#ejectedCount--;
    this.#health.delete(server);
    if (this.#health.size < 2) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #eject(server: string, health: Health, reason: string): void {
    const most = Math.floor(
      this.#hooks.servers() * this.#settings.maxEjectedPercent / 100,
    );
    if (this.#ejectedCount >= most) return;
    health.multiplier++;
    health.ejections++;
    health.ejected = true;
    health.failuresInRow = 0;
    this.#ejectedCount++;
    const ms = Math.min(
      this.#settings.baseEjectionMs * health.multiplier,
      Math.max(this.#settings.baseEjectionMs, this.#settings.maxEjectionMs),
    );
    health.ejectedUntil = performance.now() + ms;
    this.#hooks.eject(server, `${reason}: ejected for ${ms / 1000} s`);
  }

  #tick(): void {
    const now = performance.now();
    // Slow servers: each mean against the median of the others'.
    const factor = this.#settings.slowFactor;
    const means = new Map<string, number>();
    for (const [server, health] of this.#health) {
      if (health.replies >= MIN_REPLIES && !health.ejected) {
        means.set(server, health.replyMs / health.replies);
      }
    }
    if (factor > 0 && means.size >= 2) {
      for (const [server, mean] of means) {
        const others = Array.from(means).filter(([name]) => name !== server)
          .map(([, ms]) => ms).sort((a, b) => a - b);
        const median = others[others.length >> 1];
        if (mean > median * factor && mean - median > MIN_SLOWER_MS) {
          this.#eject(
            server,
            this.#health.get(server)!,
            `replies took ${mean.toFixed(0)} ms on average, others ${
              median.toFixed(0)
            } ms`,
          );
        }
      }
    }
    for (const [server, health] of this.#health) {
      if (health.ejected && now >= health.ejectedUntil) {
        health.ejected = false;
        this.#ejectedCount--;
        this.#hooks.restore(server);
      } else if (
        !health.ejected && health.multiplier > 0 &&
        now - health.ejectedUntil >=
          this.#settings.baseEjectionMs * health.multiplier
      ) {
        // As long again served without ejection: one repeat forgiven.
        health.multiplier--;
        health.ejectedUntil = now;
      }
      health.replies = 0;
      health.replyMs = 0;
    }
  }
}

/**
 * Reads the `outlierDetection` option: `true` (or unset) for the defaults,
 * `false` for none, or settings.
 * @throws {TypeError | RangeError} If it or a setting is invalid.
 */
export function parseOutlierOptions(
  value: unknown,
): OutlierSettings | undefined {
  if (value === false) return undefined;
  const options = value === undefined || value === true ? {} : value;
  const o = parseOptions(
    OUTLIER_TABLE,
    checkObject("outlierDetection", options),
    "outlierDetection option",
    "outlierDetection.",
  );
  return {
    consecutiveFailures: o.consecutiveFailures,
    baseEjectionMs: o.baseEjectionTime * 1000,
    maxEjectionMs: o.maxEjectionTime * 1000,
    maxEjectedPercent: o.maxEjectedPercent,
    slowFactor: o.slowFactor,
  };
}
