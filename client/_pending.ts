// A request waiting for its reply: its uuid, deadline, abort signal, the
// connection it went out on, and how it settles.

import type { Deadline } from "../_deadlines.ts";
import { TimeoutError } from "../errors.ts";
import type { Conn } from "./_pool.ts";
import type { QueuedFrame } from "./_queue.ts";

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

  constructor(
    readonly uuid: string,
    readonly deadline: number,
    readonly timeout: number,
    readonly signal: AbortSignal | undefined,
    /** With `idempotent`: a copy of the payload, to send it again. */
    readonly copy: Uint8Array | undefined,
    readonly size: number,
    /** Removes the request from the client's map, heap and signal. */
    readonly forget: (request: PendingRequest) => void,
    readonly settled: (data: Uint8Array) => void,
    readonly failed: (error: unknown) => void,
  ) {}

  resolve(data: Uint8Array): void {
    this.forget(this);
    this.settled(data);
  }

  reject(error: unknown): void {
    this.forget(this);
    this.failed(error);
  }

  expire(): void {
    this.reject(
      new TimeoutError(`No reply within ${this.timeout} ms`, this.timeout),
    );
  }
}
