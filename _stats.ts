// Sums of connection counters: a connection's counters live on it while it
// is open (so the data path bumps one object), and fold into its owner's
// totals when it closes.

import type { FramedConnection } from "./_connection.ts";
import type { TrafficStats } from "./stats.ts";

/** Traffic of connections that have closed, and helpers to add open ones. */
export class TrafficTotals {
  framesIn = 0;
  framesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  pingsIn = 0;
  pingsOut = 0;
  protocolErrors = 0;
  bufferFull = 0;
  controlIgnored = 0;

  /** Adds a connection's counters (when it closes). */
  add(framed: FramedConnection): void {
    this.framesIn += framed.framesIn;
    this.framesOut += framed.framesOut;
    this.bytesIn += framed.bytesIn;
    this.bytesOut += framed.acceptedBytes;
    this.pingsIn += framed.pingsIn;
    this.pingsOut += framed.pingsOut;
    this.protocolErrors += framed.protocolErrors;
    this.bufferFull += framed.bufferFull;
    this.controlIgnored += framed.controlIgnored;
  }

  /** These totals plus the open `connections`, as `TrafficStats`. */
  with(connections: Iterable<FramedConnection>): TrafficStats {
    const sum = new TrafficTotals();
    sum.addTotals(this);
    let bufferedBytes = 0;
    for (const framed of connections) {
      sum.add(framed);
      bufferedBytes += framed.bufferedAmount;
    }
    return sum.#traffic(bufferedBytes);
  }

  addTotals(other: TrafficTotals): void {
    this.framesIn += other.framesIn;
    this.framesOut += other.framesOut;
    this.bytesIn += other.bytesIn;
    this.bytesOut += other.bytesOut;
    this.pingsIn += other.pingsIn;
    this.pingsOut += other.pingsOut;
    this.protocolErrors += other.protocolErrors;
    this.bufferFull += other.bufferFull;
    this.controlIgnored += other.controlIgnored;
  }

  #traffic(bufferedBytes: number): TrafficStats {
    return {
      messagesIn: this.framesIn - this.pingsIn,
      messagesOut: this.framesOut - this.pingsOut,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      pingsIn: this.pingsIn,
      pingsOut: this.pingsOut,
      protocolErrors: this.protocolErrors,
      bufferFull: this.bufferFull,
      controlIgnored: this.controlIgnored,
      bufferedBytes,
    };
  }
}

/** One connection's traffic counters. */
export function trafficOf(framed: FramedConnection): TrafficStats {
  return new TrafficTotals().with([framed]);
}
