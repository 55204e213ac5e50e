// The part of the liveness tick that Server and Client share: knowing how late
// a tick runs. A tick that fires late because the event loop was blocked
// (a long synchronous handler, a GC pause, a stopped debugger) runs before
// the reads that piled up meanwhile: without this, the stall itself would be
// counted as every peer's silence and healthy peers dropped when the loop
// wakes. So each late tick excuses its lateness on every connection
// (FramedConnection.excuse) before judging it: silence is what the loop could
// have heard, not the time it was not listening.
//
// The rest of a tick differs by side (the server drains old connections and
// spares clients that said done-writing; the client pings on its own clock
// and stops after done-writing), so each side keeps its loop and calls these.

import type { FramedConnection } from "./_connection.ts";
import { type ProtocolVersion, SIGN_PING } from "./codec.ts";
import { TimeoutError } from "./errors.ts";
import { randomUuid } from "./message.ts";

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

/**
 * One connection's turn of a liveness tick: excuses the tick's lateness, dates
 * what arrived since the last tick, and returns the error to report if the
 * peer has been silent, or dribbling one frame header, for `timeoutMs`.
 */
export function silence(
  framed: FramedConnection,
  now: number,
  late: number,
  timeoutMs: number,
): TimeoutError | undefined {
  if (late > 0) framed.excuse(late, now);
  framed.stamp(now);
  if (now - framed.lastProgress < timeoutMs) return undefined;
  return new TimeoutError(
    `${
      framed.headerSince === undefined
        ? "Connection silent"
        : "Frame header incomplete"
    } for over ${timeoutMs} ms`,
    timeoutMs,
  );
}

const EMPTY = new Uint8Array(0);

/** Sends a heartbeat PING; none when the write buffer is full (not idle). */
export function ping(
  framed: FramedConnection,
  protocol: ProtocolVersion,
): void {
  try {
    framed.send(SIGN_PING, randomUuid(protocol), EMPTY);
  } catch { /* a full buffer: traffic is flowing, no PING needed */ }
}
