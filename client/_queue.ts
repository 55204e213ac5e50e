// The client's bounded queue of messages sent while no connection is ready.
// One queue for the whole client, not one per server: what waits goes to
// whichever server is ready first, so a server that leaves the set takes
// nothing queued with it.

import { type Frame, headerSize, type ProtocolVersion } from "../codec.ts";
import { takePayload } from "../_bytes.ts";
import { PayloadCopies } from "../_payload_copies.ts";
import { BufferFullError } from "../errors.ts";

/**
 * A frame in the queue. A request that settles before a connection takes it
 * withdraws it (`frame` becomes undefined), so what timed out or was aborted
 * is never sent.
 */
export interface QueuedFrame {
  frame: Frame | undefined;
  /** Bytes it counts in `bytes`: header and payload. */
  readonly size: number;
}

/** Frames waiting for a connection, bounded in count and bytes. */
export class OfflineQueue {
  #entries: QueuedFrame[] = [];
  #copies = new PayloadCopies();
  /** Entries still holding a frame. */
  messages = 0;
  /** Bytes of those entries, headers included. */
  bytes = 0;
  /** Frames refused by the bounds (for stats). */
  refusals = 0;

  constructor(
    readonly protocol: ProtocolVersion,
    readonly maxBytes: number,
    readonly maxMessages: number,
  ) {}

  /**
   * Queues a copy of `frame` (or, with `transfer`, its own memory).
   * @throws {BufferFullError} If a bound would be passed; nothing is queued.
   */
  push(frame: Frame, transfer: boolean): QueuedFrame {
    const size = frame.payload.length + headerSize(this.protocol);
    if (this.bytes > 0 && this.bytes + size > this.maxBytes) {
      this.refusals++;
      throw new BufferFullError(this.bytes, this.maxBytes, size);
    }
    if (this.messages >= this.maxMessages) {
      this.refusals++;
      throw new BufferFullError(
        this.messages,
        this.maxMessages,
        size,
        "messages",
      );
    }
    // Copied, as a connection's write buffer would: the caller may reuse its
    // payload once `send` returns.
    const queued: QueuedFrame = {
      frame: {
        sign: frame.sign,
        uuid: frame.uuid,
        payload: (transfer ? takePayload(frame.payload) : undefined) ??
          this.#copies.copy(frame.payload),
      },
      size,
    };
    this.#entries.push(queued);
    this.messages++;
    this.bytes += size;
    return queued;
  }

  /**
   * Takes `queued` out without sending it.
   * @returns True if that emptied the queue.
   */
  withdraw(queued: QueuedFrame): boolean {
    if (queued.frame === undefined) return false;
    queued.frame = undefined;
    this.bytes -= queued.size;
    if (--this.messages > 0) return false;
    this.clear();
    return true;
  }

  /** Empties the queue and returns what it held, in order. */
  takeAll(): QueuedFrame[] {
    const entries = this.#entries;
    this.clear();
    return entries;
  }

  /** Drops everything queued. */
  clear(): void {
    this.#entries = [];
    this.messages = 0;
    this.bytes = 0;
    this.#copies.release();
  }
}
