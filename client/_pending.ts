// A request waiting for its reply: its uuid, deadline, abort signal, the
// connection it went out on, and how it settles.

import type { Deadline } from "../_deadlines.ts";
import { TimeoutError } from "../errors.ts";
import type { Conn } from "./_pool.ts";
import type { QueuedFrame } from "./_queue.ts";

/** What a request tells the client that keeps it. */
export interface RequestKeeper {
  /** Removes the request from the client's map, heap and signal. */
  forget(request: PendingRequest): void;
  /**
   * The request's time is up (it is still where it was): the client counts
   * it, and returns what to give as the `TimeoutError`'s cause, if anything.
   */
  expired(request: PendingRequest): unknown;
}

/**
 * A request waiting for its reply. A class rather than an object of closures:
 * `request()` is called once per message, and each closure is an allocation.
 */
export class PendingRequest implements Deadline {
  heapIndex = -1;
  /** The connection the request was written on, if it has left the queue. */
  sentOn: Conn | undefined = undefined;
  /** Where its frame starts in that connection's outgoing stream. */
  offset = 0;
  /** Its frame, while it waits in the disconnected queue. */
  queued: QueuedFrame | undefined = undefined;
  onAbort: (() => void) | undefined = undefined;
  /** When it was last written (for the server's latency). */
  sentAt = 0;
  /** Times it was written and its connection lost before the reply. */
  lostAttempts = 0;

  constructor(
    readonly uuid: string,
    readonly deadline: number,
    readonly timeout: number,
    readonly signal: AbortSignal | undefined,
    /** With `idempotent`: a copy of the payload, to send it again. */
    readonly copy: Uint8Array | undefined,
    readonly size: number,
    readonly keeper: RequestKeeper,
    readonly settled: (data: Uint8Array) => void,
    readonly failed: (error: unknown) => void,
  ) {}

  resolve(data: Uint8Array): void {
    this.keeper.forget(this);
    this.settled(data);
  }

  reject(error: unknown): void {
    this.keeper.forget(this);
    this.failed(error);
  }

  expire(): void {
    const cause = this.keeper.expired(this);
    this.reject(
      new TimeoutError(
        `No reply within ${this.timeout} ms`,
        this.timeout,
        cause === undefined ? undefined : { cause },
      ),
    );
  }
}
