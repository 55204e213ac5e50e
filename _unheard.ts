// Where an `exception` goes when nobody listens for it: stderr, as Node.js
// prints an unhandled `error` event, but without ending the process (a server
// must not die of one hostile peer). Rate-limited, because errors can come
// once per frame or per connection: a flood must not become a log flood.

/** Errors printed per window before the rest are only counted. */
export const UNHEARD_PER_WINDOW = 10;
/** Length of a rate-limit window, in milliseconds. */
export const UNHEARD_WINDOW_MS = 60_000;

/**
 * Prints unheard errors on stderr: up to {@linkcode UNHEARD_PER_WINDOW} per
 * {@linkcode UNHEARD_WINDOW_MS}, then how many were left out, once the next
 * one is printed. No timer: the window is judged when an error arrives.
 */
export class UnheardErrors {
  #windowStart = -Infinity;
  #printed = 0;
  #suppressed = 0;

  constructor(
    /** The emitter's name for the message (`Server`, `Client`). */
    readonly source: () => string,
    readonly now: () => number = () => performance.now(),
  ) {}

  report(error: unknown): void {
    const now = this.now();
    if (now - this.#windowStart >= UNHEARD_WINDOW_MS) {
      if (this.#suppressed > 0) {
        console.error(
          `${this.source()}: ${this.#suppressed} more unhandled "exception" events were not printed`,
        );
      }
      this.#windowStart = now;
      this.#printed = 0;
      this.#suppressed = 0;
    }
    if (this.#printed >= UNHEARD_PER_WINDOW) {
      this.#suppressed++;
      return;
    }
    this.#printed++;
    const last = this.#printed === UNHEARD_PER_WINDOW;
    console.error(
      `${this.source()}: unhandled "exception" event (add an "exception" listener to handle it${
        last ? "; further ones in the next minute are only counted" : ""
      }):`,
      error,
    );
  }
}
