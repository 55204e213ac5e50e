// The table of ServerOptions (server.ts, which ties it to the interface with
// `satisfies`): each option's check, default, unit and doc. Any key without a
// row is refused as a typo.

import { CONNECTION_TABLE, DEFAULT_HOST } from "./_options.ts";
import {
  checkBoolean,
  checkCountOrInfinity,
  checkFunction,
  checkHost,
  checkPort,
  checkSeconds,
} from "./_checks.ts";
import { checkServerTls } from "./_tls_options.ts";
import { parseProxyOption } from "./_proxy_gate.ts";

/**
 * Default of `drainSpread`, in seconds.
 * @example `DEFAULT_DRAIN_SPREAD === 5`
 */
export const DEFAULT_DRAIN_SPREAD = 5;

/**
 * The table of {@linkcode ServerOptions}: its checks, defaults and docs (any
 * key without a row is refused as a typo).
 */
export const SERVER_TABLE = {
  ...CONNECTION_TABLE,
  host: {
    check: checkHost,
    default: DEFAULT_HOST,
    doc: "address to listen on",
  },
  port: {
    check: checkPort,
    required: true,
    doc: "port to listen on; 0 picks a free one",
  },
  maxConnections: {
    check: checkCountOrInfinity,
    default: Infinity,
    unit: "count",
    doc: "connections served at once",
  },
  maxConnectionAge: {
    check: checkSeconds,
    default: Infinity,
    unit: "s",
    doc: "age after which a connection is drained (Infinity: off)",
  },
  drainSpread: {
    check: checkSeconds,
    default: DEFAULT_DRAIN_SPREAD,
    unit: "s",
    doc: "time over which stop() spreads its going-away notices",
  },
  tls: {
    check: checkServerTls,
    doc: "serve TLS with this certificate and key",
  },
  authorize: {
    // server.ts narrows the socket to ServerSocket: naming it here would be
    // an import circle.
    check: checkFunction<(socket: never) => boolean>,
    doc: "decides whether to serve each connection",
  },
  proxyProtocol: {
    check: (_name: string, value: unknown) => parseProxyOption(value),
    doc: "expect a PROXY protocol v1/v2 header on every connection",
  },
  reusePort: {
    check: checkBoolean,
    default: false,
    doc: "share the port with other servers (SO_REUSEPORT; Linux)",
  },
} as const;
