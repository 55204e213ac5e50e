// The part of the liveness tick that Server and Client share: knowing how late
// a tick runs. A tick that fires late because the event loop was blocked
// (a long synchronous handler, a GC pause, a stopped debugger) runs before
// the reads that piled up meanwhile: without this, the stall itself would be
// counted as every peer's silence and healthy peers dropped when the loop
// wakes. So each late tick excuses its lateness on every connection
// (FramedConnection.excuse) before judging it: silence is what the loop could
// have heard, not the time it was not listening.

/** The clock of one repeating liveness tick. */
export class TickClock {
  #last: number;

  /**
   * @param intervalMs The tick's period.
   * @param now When the tick's timer was started.
   */
  constructor(readonly intervalMs: number, now: number = performance.now()) {
    this.#last = now;
  }

  /**
   * Records a tick at `now` and returns by how many milliseconds it is later
   * than its period (0 when on time or early).
   */
  lateness(now: number): number {
    const late = now - this.#last - this.intervalMs;
    this.#last = now;
    return late > 0 ? late : 0;
  }
}
