/**
 * The runtime socket adapters behind one contract (`transport.ts`), and the
 * choice of the running runtime's (`runtime.ts`). Everything above sees a
 * byte-level connection with a callback for reads and a write that reports
 * when the runtime has taken the bytes, plain TCP or TLS through the
 * runtime's own TLS stack.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { runtimeTransport, type Transport } from "@qtk/tcp-framework/transport";
 * const transport: Transport = runtimeTransport();
 * assert.equal(typeof transport.listen, "function");
 * ```
 *
 * @module
 */

export type {
  Accept,
  ClientTlsOptions,
  ConnectionHandler,
  ConnectOptions,
  ListenOptions,
  NetAddress,
  PeerCertificate,
  ServerTlsOptions,
  Transport,
  TransportConnection,
  TransportListener,
} from "./transport.ts";
export { runtimeTransport } from "./runtime.ts";
