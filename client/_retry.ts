// The client's retry budget, after gRPC's retry throttling (gRFC A6): a
// bucket of tokens that each failed attempt empties by one and each reply
// refills by a tenth. Retries are allowed only while it is more than half
// full, so when most requests fail (a message that kills every server it
// reaches, a fleet down) retries stop adding load, and resume as replies
// come back.

/** Tokens in a full bucket. */
export const RETRY_TOKENS = 10;
/** Tokens a reply puts back. */
export const RETRY_TOKEN_RATIO = 0.1;

/**
 * Default of `maxAttempts`: an idempotent request is written at most this
 * many times (the first and two retries).
 */
export const DEFAULT_MAX_ATTEMPTS = 3;

/** Whether a retry may be made now. */
export class RetryThrottle {
  #tokens = RETRY_TOKENS;

  /** A request got its reply. */
  succeeded(): void {
    this.#tokens = Math.min(RETRY_TOKENS, this.#tokens + RETRY_TOKEN_RATIO);
  }

  /** An attempt failed (its connection was lost, or its time ran out). */
  failed(): void {
    this.#tokens = Math.max(0, this.#tokens - 1);
  }

  /** Retries are allowed while more than half the tokens are left. */
  get allowed(): boolean {
    return this.#tokens > RETRY_TOKENS / 2;
  }
}
