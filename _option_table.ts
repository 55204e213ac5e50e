// One table per options object (ServerOptions, ClientOptions, tls, …): each
// row is an option's check, default, unit and one-line doc. The parsing, the
// refusal of unknown keys, the defaults and the command-line flags all come
// from it, so an option is added in one place (and in its interface, which
// `satisfies OptionTable<Interface>` keeps in step with the table).

import { checkKnownKeys } from "./_known_keys.ts";

/** What an option's number counts; "s" and "ms" are durations. */
export type OptionUnit = "s" | "ms" | "bytes" | "count" | "%";

/** One option. */
export interface OptionRow<V = unknown> {
  /**
   * Checks a given value (never undefined) and returns it normalised; throws
   * the TypeError or RangeError that names the option (by `name`, as
   * messages call it: "timeout", "tls.cert") and quotes the value.
   */
  readonly check: (name: string, value: unknown) => V;
  /**
   * The value when the option is absent (not checked). Without one an absent
   * option is undefined, for the caller to derive (heartbeat from timeout),
   * unless `required`.
   */
  readonly default?: V;
  /** Absent is refused: the check is given undefined, and throws. */
  readonly required?: true;
  /** What the number counts, for the docs and the command line. */
  readonly unit?: OptionUnit;
  /** One line: what it does (the command line's help uses it). */
  readonly doc: string;
}

/** The table of the options object `O`: one row per key, no other. */
export type OptionTable<O> = { readonly [K in keyof O]-?: OptionRow };

/** Any table. */
export type AnyOptionTable = Readonly<Record<string, OptionRow>>;

/** A table's options, checked: each the check's result or the default. */
export type ParsedOptions<T extends AnyOptionTable> = {
  -readonly [K in keyof T]: T[K] extends OptionRow<infer V>
    ? T[K] extends { default: unknown } | { required: true } ? V
    : V | undefined
    : never;
};

/**
 * Checks an options object against its table: refuses any key without a row
 * (naming the row it likely meant), then checks each option in the table's
 * order, filling in defaults. The caller has checked that `value` is an
 * object (each has its own message for one that is not).
 *
 * @param keys How the unknown-key message calls a key: "option", "tls
 *   option", …
 * @param prefix Before each key in messages: "", "tls.", …
 * @throws {TypeError | RangeError} Naming the first invalid option.
 */
export function parseOptions<T extends AnyOptionTable>(
  table: T,
  value: object,
  keys = "option",
  prefix = "",
): ParsedOptions<T> {
  checkKnownKeys(keys, value, table);
  const given = value as Record<string, unknown>;
  const parsed: Record<string, unknown> = {};
  for (const key in table) {
    const row = table[key];
    const option = given[key];
    parsed[key] = option === undefined && row.required === undefined
      ? row.default
      : row.check(prefix + key, option);
  }
  return parsed as ParsedOptions<T>;
}

/**
 * The per-message form of {@linkcode parseOptions}, which allocates nothing
 * when every key is known: `send()` and `request()` then call each given
 * option's row check themselves (`TABLE.transfer.check(...)`), which costs
 * no more than the checks written out did.
 */
export function refuseUnknownKeys(
  table: AnyOptionTable,
  value: object,
  keys: string,
): void {
  for (const key in value) {
    if (!Object.hasOwn(table, key)) checkKnownKeys(keys, value, table);
  }
}

/** The defaults of a table, by key (rows without one are left out). */
export function optionDefaults(table: AnyOptionTable): Record<string, unknown> {
  const defaults: Record<string, unknown> = {};
  for (const key in table) {
    if ("default" in table[key]) defaults[key] = table[key].default;
  }
  return defaults;
}
