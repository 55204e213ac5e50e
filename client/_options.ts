// The tables of ClientOptions and RequestOptions: each option's check,
// default, unit and doc. Any key without a row is refused as a typo.
// client.ts, which owns the interfaces, ties each to its table with
// `satisfies` (importing them here would be an import circle).

import { CONNECTION_TABLE, SERVER_ADDRESS_TABLE } from "../_options.ts";
import {
  checkBoolean,
  checkCount,
  checkMilliseconds,
  checkNothing,
  checkOneOf,
  checkSeconds,
} from "../_checks.ts";
import { quote } from "../_quote.ts";
import { checkClientTls } from "../_tls_options.ts";
import { parseServers } from "./_membership.ts";
import { parseOutlierOptions } from "./_outliers.ts";
import { DEFAULT_MAX_ATTEMPTS } from "./_retry.ts";

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

function checkReconnect(
  name: string,
  value: unknown,
): boolean | ((attempt: number) => number) {
  if (typeof value !== "boolean" && typeof value !== "function") {
    throw new TypeError(
      `Invalid ${name} ${quote(value)}: expected a boolean or a function`,
    );
  }
  return value as boolean | ((attempt: number) => number);
}

/** The table of {@linkcode ClientOptions}. */
export const CLIENT_TABLE = {
  ...CONNECTION_TABLE,
  ...SERVER_ADDRESS_TABLE,
  servers: {
    check: (name: string, value: unknown) => parseServers(value, name),
    doc: "several servers, instead of host and port",
  },
  connectionsPerServer: {
    check: checkCount,
    default: 1,
    unit: "count",
    doc: "connections kept to each server",
  },
  shuffle: {
    check: checkBoolean,
    default: true,
    doc: "shuffle servers once at start",
  },
  balance: {
    check: checkOneOf("least-pending", "round-robin"),
    default: "least-pending",
    doc: "how a message picks its connection",
  },
  connectTimeout: {
    check: checkSeconds,
    unit: "s",
    doc: "time a connect attempt may take (default: the timeout)",
  },
  maxQueuedMessages: {
    check: checkCount,
    default: DEFAULT_MAX_QUEUED_MESSAGES,
    unit: "count",
    doc: "messages queued while disconnected",
  },
  reconnect: {
    check: checkReconnect,
    default: true,
    doc: "reconnect after a connection is lost, and with what delay",
  },
  requestTimeout: {
    check: checkSeconds,
    default: DEFAULT_REQUEST_TIMEOUT,
    unit: "s",
    doc: "default time limit of request()",
  },
  maxAttempts: {
    check: checkCount,
    default: DEFAULT_MAX_ATTEMPTS,
    unit: "count",
    doc: "times an idempotent request may be written",
  },
  outlierDetection: {
    check: (_name: string, value: unknown) => parseOutlierOptions(value),
    default: parseOutlierOptions(true),
    doc: "eject servers that fail or answer slowly (false: off)",
  },
  tls: {
    check: checkClientTls,
    doc: "speak TLS, verifying the server",
  },
} as const;

/** The table of {@linkcode RequestOptions}, read on every request. */
export const REQUEST_TABLE = {
  timeout: {
    check: checkMilliseconds,
    unit: "ms",
    doc: "time to wait for the reply (default: the client's requestTimeout)",
  },
  signal: {
    check: checkNothing<AbortSignal>,
    doc: "aborts the wait",
  },
  idempotent: {
    check: checkBoolean,
    default: false,
    doc: "may be sent again over another connection if its own is lost",
  },
  transfer: {
    check: checkBoolean,
    default: false,
    doc: "hand the payload's memory over instead of having it copied",
  },
} as const;
