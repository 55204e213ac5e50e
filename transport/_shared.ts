// Small helpers shared by the socket adapters.

import { NetworkError, type NetworkOperation, TlsError } from "../errors.ts";
import type { NetAddress } from "./transport.ts";

/**
 * Why `reusePort` cannot be honoured on `os`, if it cannot: only Linux
 * spreads connections over the sockets sharing a port (other systems ignore
 * the option, or give every connection to one socket), and a server that
 * believes it has company while it serves alone is worse than one that fails.
 */
export function reusePortOsProblem(
  runtime: string,
  os: string | undefined,
): string | undefined {
  return os === "linux"
    ? undefined
    : `reusePort needs Linux; on ${
      os ?? "this system"
    } ${runtime} would ignore it or not spread connections over the processes`;
}

/**
 * Why Node.js `version` cannot listen with `reusePort`, if it cannot: the
 * option came in Node.js 22.12 and 23.1; older versions ignore it without a
 * word. (The OS is asked apart, with {@linkcode reusePortOsProblem}.)
 */
export function nodeReusePortProblem(version: string): string | undefined {
  const [major, minor] = version.split(".").map(Number);
  const known = major > 23 || (major === 23 && minor >= 1) ||
    (major === 22 && minor >= 12);
  return known
    ? undefined
    : `reusePort needs Node.js 22.12 or later (23.1 on the 23 line); Node.js ${version} would ignore it`;
}

/** Rejects at once with the signal's reason if it is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason;
}

/** The CA option as the list the runtimes take. */
export function caList(
  ca: string | string[] | undefined,
): string[] | undefined {
  return ca === undefined ? undefined : typeof ca === "string" ? [ca] : ca;
}

/**
 * Waits for `promise`; if `signal` aborts first, calls `abort` (which should
 * make `promise` settle) and rejects with the signal's reason.
 */
export async function untilAborted<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  abort: () => void,
): Promise<T> {
  if (!signal) return await promise;
  if (signal.aborted) {
    promise.catch(() => {});
    abort();
    throw signal.reason;
  }
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => {
      reject(signal.reason); // first: `abort` may make `promise` settle now
      abort();
    };
  });
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    signal.removeEventListener("abort", onAbort);
    // The loser must not be left as an unhandled rejection.
    promise.catch(() => {});
  }
}

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
