// Option checks shared by Server and Client: each throws a TypeError or
// RangeError that names the option and quotes the value.

import { quote } from "./_quote.ts";

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

export function checkProtocol(name: string, value: unknown): 2 | 3 {
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
