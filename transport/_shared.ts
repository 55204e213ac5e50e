// Small helpers shared by the socket adapters.

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
