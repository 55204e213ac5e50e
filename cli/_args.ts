/**
 * Argument parsing, exit codes and error reporting for the command-line tool
 * (`cli/main.ts`). Private: nothing here is part of the library's API.
 *
 * @module
 */

import {
  ClosedError,
  NetworkError,
  ProtocolError,
  TimeoutError,
} from "../errors.ts";
import type { ProtocolVersion } from "../codec.ts";
import { nearestKey } from "../_known_keys.ts";

/**
 * The exit codes of the command-line tool, stable for scripts:
 * `OK` 0, `USAGE` 1 (bad command line), `CONNECTION` 2 (connection refused,
 * lost or failed, the address cannot be bound, or `serve --workers` cannot
 * run its workers), `TIMEOUT` 3 (no reply or no
 * connection in time), `PROTOCOL` 4 (the peer sent bytes that are not valid
 * frames), `IO` 5 (a local file or stdin could
 * not be read or written). Exported by `cli/main.ts`.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { ExitCode } from "@qtk/tcp-framework/cli";
 * assert.equal(ExitCode.CONNECTION, 2);
 * ```
 */
export const ExitCode: {
  /** Success. */
  readonly OK: 0;
  /** Bad command line: unknown command or option, invalid value. */
  readonly USAGE: 1;
  /**
   * Connection refused, lost or failed, or the address cannot be bound; or
   * `serve --workers` cannot run workers here, or every worker kept dying.
   */
  readonly CONNECTION: 2;
  /** No reply (or no connection) within `--timeout`. */
  readonly TIMEOUT: 3;
  /** The peer sent bytes that are not valid frames. */
  readonly PROTOCOL: 4;
  /** A local file (or stdin/stdout) could not be read or written. */
  readonly IO: 5;
} = {
  OK: 0,
  USAGE: 1,
  CONNECTION: 2,
  TIMEOUT: 3,
  PROTOCOL: 4,
  IO: 5,
};

/**
 * An error the tool reports as one line on stderr before exiting with `code`.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { CliError, ExitCode } from "./_args.ts";
 * const error = new CliError(ExitCode.USAGE, "missing --port");
 * assert.equal(error.code, 1);
 * ```
 */
export class CliError extends Error {
  /** The exit code. */
  readonly code: number;

  /**
   * Creates the error.
   *
   * @param code The exit code, one of {@linkcode ExitCode}.
   * @param message One line, without a trailing period.
   * @param options Standard error options (`cause`: what it reports).
   */
  constructor(code: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CliError";
    this.code = code;
  }
}

/**
 * A usage error: exit code 1.
 *
 * @param message What is wrong with the command line.
 * @returns The error, to throw.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { usage } from "./_args.ts";
 * assert.equal(usage("missing --port").code, 1);
 * ```
 */
export function usage(message: string): CliError {
  return new CliError(ExitCode.USAGE, message);
}

/**
 * How one option is read.
 *
 * @example
 * ```ts
 * import type { OptionSpec } from "./_args.ts";
 * const port: OptionSpec = { type: "number" };
 * ```
 */
export interface OptionSpec {
  /** A string value, a number value, or a flag without value. */
  type: "string" | "number" | "boolean";
  /** A one-letter alias, used as `-x`. */
  short?: string;
}

/**
 * One option of a subcommand: how it is read, and its line in the help.
 *
 * @example
 * ```ts
 * import type { Flag } from "./_args.ts";
 * const quiet: Flag = { type: "boolean", short: "q", help: "log nothing" };
 * ```
 */
export interface Flag extends OptionSpec {
  /** The value's placeholder in the help: `<host>`. */
  arg?: string;
  /** What it does, one sentence without a period. */
  help: string;
}

/**
 * How a subcommand offers one library option as a flag: its help is the
 * option's one-line doc from the option table, between `before` and
 * `after`, then its default (the CLI's own, else the table's).
 *
 * @example
 * ```ts
 * import type { OptionFlag } from "./_args.ts";
 * const port: OptionFlag = { type: "number", short: "p", arg: "<port>", after: " (required)" };
 * ```
 */
export interface OptionFlag extends OptionSpec {
  /** The value's placeholder in the help: `<host>`. */
  arg?: string;
  /** Help before the option's doc. */
  before?: string;
  /** Help after the option's doc, before its default. */
  after?: string;
  /** The CLI's default, where it is not the library's. */
  default?: string | number;
}

/**
 * Flags for library options, named and documented by the option's table:
 * `reusePort` is `--reuse-port`, helped by its row's doc.
 *
 * @param table An option table (`{ key: { doc, default? } }`).
 * @param flags The options offered, by key, with how each is read.
 * @returns The flags by long name, in the order of `flags`.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { optionFlags } from "./_args.ts";
 * const table = { reusePort: { doc: "share the port", default: false } };
 * const flags = optionFlags(table, { reusePort: { type: "boolean" } });
 * assert.deepEqual(flags["reuse-port"], { type: "boolean", help: "share the port" });
 * ```
 */
export function optionFlags<
  T extends Readonly<Record<string, { doc: string; default?: unknown }>>,
>(
  table: T,
  flags: { readonly [K in keyof T]?: OptionFlag },
): Record<string, Flag> {
  const made: Record<string, Flag> = {};
  for (const [key, flag] of Object.entries(flags) as [string, OptionFlag][]) {
    const { before = "", after = "", default: own, ...spec } = flag;
    const row = table[key];
    const fallback = own ??
      (spec.type === "boolean" ? undefined : row.default as string | number);
    const name = key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
    made[name] = {
      ...spec,
      help: `${before}${row.doc}${after}${
        fallback === undefined ? "" : ` (default ${fallback})`
      }`,
    };
  }
  return made;
}

/**
 * The "Options:" lines of a help text: each flag and its help, wrapped at 80
 * columns with the help aligned at `column`.
 *
 * @param flags The flags by long name.
 * @param column Where the help starts.
 * @returns The lines, each ending with a newline.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { flagHelp } from "./_args.ts";
 * assert.equal(
 *   flagHelp({ quiet: { type: "boolean", short: "q", help: "log nothing" } }),
 *   "  -q, --quiet            log nothing\n",
 * );
 * ```
 */
export function flagHelp(flags: Record<string, Flag>, column = 25): string {
  let text = "";
  for (const [name, flag] of Object.entries(flags)) {
    let line = `  ${flag.short ? `-${flag.short}, ` : ""}--${name}${
      flag.arg ? ` ${flag.arg}` : ""
    }`;
    if (line.length >= column - 1) {
      text += line + "\n";
      line = "";
    }
    line = line.padEnd(column - 1);
    for (const word of flag.help.split(" ")) {
      if (line.length + 1 + word.length > 80 && line.trim() !== "") {
        text += line + "\n";
        line = " ".repeat(column - 1);
      }
      line += " " + word;
    }
    text += line + "\n";
  }
  return text;
}

/**
 * What {@linkcode parseArgs} found.
 *
 * @example
 * ```ts
 * import type { ParsedArgs } from "./_args.ts";
 * const parsed: ParsedArgs = { values: { port: 80 }, positionals: [] };
 * ```
 */
export interface ParsedArgs {
  /** Option values by long name; absent options are absent. */
  values: Record<string, string | number | boolean>;
  /** Arguments that are not options, in order. */
  positionals: string[];
}

/**
 * Parses `--name value`, `--name=value`, `-x value`, flags and positionals;
 * `--` ends the options and a lone `-` is a positional.
 *
 * @param argv The arguments after the subcommand.
 * @param spec The accepted options by long name.
 * @returns The values and positionals.
 * @throws {CliError} With {@linkcode ExitCode.USAGE} for an unknown option,
 *   a missing value or a value that is not a number.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { parseArgs } from "./_args.ts";
 * const { values } = parseArgs(["--port=7000", "-q"], {
 *   port: { type: "number" },
 *   quiet: { type: "boolean", short: "q" },
 * });
 * assert.equal(values.port, 7000);
 * assert.equal(values.quiet, true);
 * ```
 */
export function parseArgs(
  argv: readonly string[],
  spec: Record<string, OptionSpec>,
): ParsedArgs {
  const values: ParsedArgs["values"] = {};
  const positionals: string[] = [];
  const byShort = new Map<string, string>();
  for (const [name, option] of Object.entries(spec)) {
    if (option.short) byShort.set(option.short, name);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === "-" || !arg.startsWith("-")) {
      positionals.push(arg);
      continue;
    }
    let name: string;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const equals = arg.indexOf("=");
      name = equals < 0 ? arg.slice(2) : arg.slice(2, equals);
      inline = equals < 0 ? undefined : arg.slice(equals + 1);
    } else {
      name = byShort.get(arg.slice(1)) ?? arg;
    }
    const option = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (!option) {
      const near = arg.startsWith("--")
        ? nearestKey(name, Object.keys(spec))
        : undefined;
      throw usage(
        `unknown option ${arg.split("=")[0]}${
          near === undefined ? "" : ` (did you mean --${near}?)`
        }`,
      );
    }
    if (option.type === "boolean") {
      if (inline !== undefined) throw usage(`--${name} takes no value`);
      values[name] = true;
      continue;
    }
    const raw = inline ?? argv[++i];
    if (raw === undefined) throw usage(`--${name} needs a value`);
    if (option.type === "string") {
      values[name] = raw;
      continue;
    }
    const number = raw.trim() === "" ? NaN : Number(raw);
    if (Number.isNaN(number)) {
      throw usage(`--${name}: expected a number, got "${raw}"`);
    }
    values[name] = number;
  }
  return { values, positionals };
}

/**
 * Reads a number option and checks its range.
 *
 * @param values Parsed values.
 * @param name The option's long name.
 * @param fallback The value when the option is absent (undefined: required).
 * @param check `integer`, and the inclusive `min` / `max`.
 * @returns The value.
 * @throws {CliError} With {@linkcode ExitCode.USAGE} if missing or out of range.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { numberOption } from "./_args.ts";
 * assert.equal(numberOption({}, "count", 5, { integer: true, min: 1 }), 5);
 * ```
 */
export function numberOption(
  values: ParsedArgs["values"],
  name: string,
  fallback: number | undefined,
  check: { integer?: boolean; min?: number; max?: number; above?: number } = {},
): number {
  const value = values[name] ?? fallback;
  if (value === undefined) throw usage(`--${name} is required`);
  if (typeof value !== "number") throw usage(`--${name}: expected a number`);
  if (check.integer && !Number.isInteger(value)) {
    throw usage(`--${name}: expected a whole number, got ${value}`);
  }
  if (check.min !== undefined && value < check.min) {
    throw usage(`--${name}: expected at least ${check.min}, got ${value}`);
  }
  if (check.above !== undefined && !(value > check.above)) {
    throw usage(`--${name}: expected more than ${check.above}, got ${value}`);
  }
  if (check.max !== undefined && value > check.max) {
    throw usage(`--${name}: expected at most ${check.max}, got ${value}`);
  }
  return value;
}

/**
 * Reads `--protocol` (2 or 3, default 3).
 *
 * @param values Parsed values.
 * @returns The protocol version.
 * @throws {CliError} With {@linkcode ExitCode.USAGE} for any other value.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { protocolOption } from "./_args.ts";
 * assert.equal(protocolOption({ protocol: 2 }), 2);
 * ```
 */
export function protocolOption(values: ParsedArgs["values"]): 2 | 3 {
  const protocol = values.protocol ?? 3;
  if (protocol !== 2 && protocol !== 3) {
    throw usage(`--protocol: expected 2 or 3, got ${protocol}`);
  }
  return protocol;
}

/**
 * Whether an error (or its cause) is a refused connection, on any runtime.
 *
 * @param error What a connect attempt threw.
 * @returns True for a refused connection.
 */
function isConnectionRefused(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 5; depth++) {
    const { name, code, message } = e as {
      name?: string;
      code?: string;
      message?: string;
    };
    if (name === "ConnectionRefused" || code === "ECONNREFUSED") return true;
    if (typeof message === "string" && /refused/i.test(message)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * What to suggest when a peer closes before the reply or never answers: a
 * peer that speaks the other protocol does exactly that (a protocol 3 reader
 * waits for the rest of a 2.x header; a 2.x server drops what it cannot parse).
 *
 * @param protocol The protocol the command spoke.
 * @returns The hint, in parentheses.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { protocolHint } from "./_args.ts";
 * assert.equal(protocolHint(3), "(if the peer speaks protocol 2, add --protocol 2)");
 * ```
 */
export function protocolHint(protocol: ProtocolVersion): string {
  const other = protocol === 3 ? 2 : 3;
  return `(if the peer speaks protocol ${other}, add --protocol ${other})`;
}

/**
 * Turns what a command threw into a {@linkcode CliError}: the exit code and a
 * one-line message that names the peer, with a `--protocol` hint where a
 * protocol mismatch looks like that failure.
 *
 * @param error What was thrown.
 * @param peer `host:port` of the peer, for the message.
 * @param protocol The protocol the command spoke, for the hint.
 * @returns The error to report.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { toCliError } from "./_args.ts";
 * import { TimeoutError } from "../errors.ts";
 * const error = toCliError(new TimeoutError("No reply within 5 ms", 5), "127.0.0.1:7", 3);
 * assert.equal(error.code, 3);
 * assert.equal(error.message, "timeout: no reply from 127.0.0.1:7 within 5 ms (if the peer speaks protocol 2, add --protocol 2)");
 * ```
 */
export function toCliError(
  error: unknown,
  peer: string,
  protocol: ProtocolVersion = 3,
): CliError {
  if (error instanceof CliError) return error;
  if (error instanceof TimeoutError) {
    const ms = Math.round(error.timeout);
    return new CliError(
      ExitCode.TIMEOUT,
      /^not connected/i.test(error.message)
        ? `timeout: not connected to ${peer} within ${ms} ms`
        : `timeout: no reply from ${peer} within ${ms} ms ${
          protocolHint(protocol)
        }`,
      { cause: error },
    );
  }
  const protocolError = findCause(error, ProtocolError);
  if (protocolError) {
    return new CliError(
      ExitCode.PROTOCOL,
      `protocol error from ${peer}: ${protocolError.message} ${
        protocolHint(protocol)
      }`,
      { cause: error },
    );
  }
  if (error instanceof ClosedError) {
    return new CliError(
      ExitCode.CONNECTION,
      `connection to ${peer} closed before the reply ${protocolHint(protocol)}`,
      { cause: error },
    );
  }
  if (isConnectionRefused(error)) {
    return new CliError(
      ExitCode.CONNECTION,
      `connection refused: nothing is listening on ${peer}`,
      { cause: error },
    );
  }
  const network = findCause(error, NetworkError);
  return new CliError(
    ExitCode.CONNECTION,
    `connection to ${peer} failed: ${
      network ? `${network.reason} (${network.code})` : oneLine(error)
    }`,
    { cause: error },
  );
}

/**
 * The message of an error on one line.
 *
 * @param error Anything thrown.
 * @returns Its message, whitespace collapsed.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { oneLine } from "./_args.ts";
 * assert.equal(oneLine(new Error("a\nb")), "a b");
 * ```
 */
export function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s+/g, " ").trim();
}

function findCause<T extends Error>(
  error: unknown,
  type: abstract new (...args: never[]) => T,
): T | undefined {
  for (let e = error, depth = 0; e && depth < 5; depth++) {
    if (e instanceof type) return e;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}
