// The checks of the option tables (_option_table.ts), one of each: every
// check takes the option's name, as messages call it ("timeout",
// "tls.cert"), and the value given, and returns the value to use or throws
// the TypeError or RangeError that names the option and quotes the value.

import { quote } from "./_quote.ts";

export function checkObject(name: string, value: unknown): object {
  if (value === null || typeof value !== "object") {
    throw new TypeError(`Invalid ${name} ${quote(value)}: expected an object`);
  }
  return value;
}

export function checkBoolean(name: string, value: unknown): boolean {
  if (typeof value !== "boolean") {
    throw new TypeError(`Invalid ${name} ${quote(value)}: expected a boolean`);
  }
  return value;
}

export function checkFunction<F extends (...args: never[]) => unknown>(
  name: string,
  value: unknown,
): F {
  if (typeof value !== "function") {
    throw new TypeError(`Invalid ${name} ${quote(value)}: expected a function`);
  }
  return value as F;
}

/** A value checked by whoever uses it (a transport, an AbortSignal). */
export function checkNothing<T>(_name: string, value: unknown): T {
  return value as T;
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

/** A positive, finite duration in seconds: a deadline that must come. */
export function checkFiniteSeconds(name: string, value: unknown): number {
  const seconds = checkSeconds(name, value);
  if (!Number.isFinite(seconds)) {
    throw new RangeError(
      `Invalid ${name} ${quote(seconds)}: expected a finite number of seconds`,
    );
  }
  return seconds;
}

/** A time limit in milliseconds: 0 or more, Infinity for none. */
export function checkMilliseconds(name: string, value: unknown): number {
  if (typeof value !== "number" || !(value >= 0)) {
    throw new RangeError(
      `Invalid ${name} ${quote(value)}: expected milliseconds >= 0`,
    );
  }
  return value;
}

/** A count (bytes, messages): a positive integer. */
export function checkCount(name: string, value: unknown): number {
  return count(name, value, false);
}

/** A count that may be Infinity (no limit). */
export function checkCountOrInfinity(name: string, value: unknown): number {
  return count(name, value, true);
}

function count(name: string, value: unknown, allowInfinity: boolean): number {
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

/** A number from 0 to 100. */
export function checkPercent(name: string, value: unknown): number {
  if (typeof value !== "number" || !(value >= 0 && value <= 100)) {
    throw new RangeError(`Invalid ${name} ${quote(value)}: expected 0 to 100`);
  }
  return value;
}

/** A factor: a number, 0 or more. */
export function checkFactor(name: string, value: unknown): number {
  if (typeof value !== "number" || !(value >= 0)) {
    throw new RangeError(
      `Invalid ${name} ${quote(value)}: expected a number >= 0`,
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

/** A check that takes one of `choices` (strings), refused with a TypeError. */
export function checkOneOf<const C extends readonly string[]>(
  ...choices: C
): (name: string, value: unknown) => C[number] {
  const expected = choices.map((choice) => JSON.stringify(choice)).join(
    " or ",
  );
  return (name, value) => {
    if (!choices.includes(value as string)) {
      throw new TypeError(
        `Invalid ${name} ${quote(value)}: expected ${expected}`,
      );
    }
    return value as C[number];
  };
}
