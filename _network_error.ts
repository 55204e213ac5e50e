// The runtime's socket errors in the framework's words: made by the socket
// adapters as a connect or listen fails, and by the framed connection when a
// write fails after the adapter handed the connection over.

import { NetworkError, type NetworkOperation, TlsError } from "./errors.ts";
import type { NetAddress } from "./transport/transport.ts";

/**
 * The runtime's socket error as a {@linkcode NetworkError} naming `address`
 * and the reason, so the words are the same on every runtime (Deno's and
 * Bun's leave out the address, Bun's listen error gives no reason). Anything
 * without a system error code (an abort reason, a TLS failure) is returned
 * as it is.
 */
export function networkError(
  operation: NetworkOperation,
  address: NetAddress,
  error: unknown,
): unknown {
  // A TlsError's codes are its own (EXPIRED is no system code).
  if (error instanceof NetworkError || error instanceof TlsError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "string" || !/^E(AI_)?[A-Z]+$/.test(code)) return error;
  return new NetworkError(operation, address, code, { cause: error });
}
