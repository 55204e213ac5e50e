// Which ready connection a message goes to. Only this module chooses; the
// pool tells it when a link becomes ready or stops being so.

/**
 * A connection joining while others serve takes a growing share over this
 * long (slow start): with least-pending, a newcomer with nothing in flight
 * would otherwise take every message until it caught up, a burst that every
 * client of a fleet aims at the same new server at once.
 */
export const SLOW_START_MS = 3000;

/** The least share of a newcomer, at its first moment. */
const FIRST_SHARE = 0.1;

/** What the balancer reads of a link. */
export interface Target {
  /** Its ready connection: requests in flight, and whether it is closing. */
  readonly conn:
    | {
      readonly inFlight: number;
      readonly framed: { readonly closed: boolean };
    }
    | undefined;
  /** Until when it is warming up (slow start), or 0. */
  warmUntil: number;
  /** When it last became ready. */
  readyAt: number;
}

/**
 * The ready links, and the choice among them: `"least-pending"` (fewest
 * requests in flight, ties in turn) or `"round-robin"`, with slow start for
 * links that join while others serve.
 */
export class Balancer<T extends Target> {
  #ready: T[] = [];
  /** Where the next pick starts, so ties (and round robin) take turns. */
  #turn = 0;
  /** Until when some ready link is warming up, or 0. */
  #warmUntil = 0;

  constructor(readonly roundRobin: boolean) {}

  /** Ready links. */
  get size(): number {
    return this.#ready.length;
  }

  /** A link became ready. */
  add(target: T, now = performance.now()): void {
    // Slow start only beside links that have served a while: a client's
    // first links, connecting within moments of each other, or a fleet back
    // from nothing, take traffic in full at once.
    const serving = this.#ready.some((other) =>
      other.warmUntil <= now && now - other.readyAt >= SLOW_START_MS
    );
    target.readyAt = now;
    target.warmUntil = serving ? now + SLOW_START_MS : 0;
    if (target.warmUntil > this.#warmUntil) this.#warmUntil = target.warmUntil;
    this.#ready.push(target);
  }

  /** A link is no longer ready. */
  remove(target: T): void {
    const at = this.#ready.indexOf(target);
    if (at >= 0) this.#ready.splice(at, 1);
  }

  /**
   * The link for the next message, or undefined if none is ready. Links
   * whose connection is closing are dropped first, through `unready`.
   */
  pick(unready: (target: T) => void): T | undefined {
    const ready = this.#ready;
    // A connection closing (a protocol error, a failed write, a timeout)
    // takes nothing more; it is reported lost a few turns later.
    for (let i = ready.length - 1; i >= 0; i--) {
      if (ready[i].conn!.framed.closed) unready(ready[i]);
    }
    const count = ready.length;
    if (count <= 1) return ready[0];
    const start = this.#turn++ % count;
    if (this.#turn >= count) this.#turn = 0;
    if (this.#warmUntil !== 0) {
      const now = performance.now();
      if (now < this.#warmUntil) return this.#pickWarming(start, now);
      this.#warmUntil = 0;
    }
    if (this.roundRobin) return ready[start];
    let best = ready[start];
    let least = best.conn!.inFlight;
    for (let i = 1; i < count && least > 0; i++) {
      const target = ready[(start + i) % count];
      if (target.conn!.inFlight < least) {
        best = target;
        least = target.conn!.inFlight;
      }
    }
    return best;
  }

  /** As `pick`, while some link is warming up: its share is its weight. */
  #pickWarming(start: number, now: number): T {
    const ready = this.#ready;
    const count = ready.length;
    if (this.roundRobin) {
      // A warming link is passed over in proportion to what it lacks.
      for (let i = 0; i < count; i++) {
        const target = ready[(start + i) % count];
        if (Math.random() < weight(target, now)) return target;
      }
      return ready[start];
    }
    let best = ready[start];
    let least = (best.conn!.inFlight + 1) / weight(best, now);
    for (let i = 1; i < count; i++) {
      const target = ready[(start + i) % count];
      const load = (target.conn!.inFlight + 1) / weight(target, now);
      if (load < least) {
        best = target;
        least = load;
      }
    }
    return best;
  }
}

/** A link's share: 1 once warm, growing from FIRST_SHARE while warming. */
function weight(target: Target, now: number): number {
  const left = target.warmUntil - now;
  if (left <= 0) return 1;
  return Math.max(FIRST_SHARE, 1 - left / SLOW_START_MS);
}
