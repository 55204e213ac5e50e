// A framed connection: one transport connection plus a frame decoder on the
// way in and a coalescing, bounded write buffer on the way out. Server and
// Client each wrap one of these; it knows nothing of events or heartbeats.

import {
  type Frame,
  FrameDecoder,
  headerSize,
  type ProtocolVersion,
} from "./codec.ts";
import { encodeFrameInto } from "./codec.ts";
import { BufferFullError, ClosedError } from "./errors.ts";
import type { ConnectionHandler, TransportConnection } from "./transport.ts";

/** Frames written in one go are joined up to this many bytes. */
const BATCH_BYTES = 256 * 1024;

export interface FramedConnectionOptions {
  protocol: ProtocolVersion;
  maxFrameSize: number;
  maxBufferedBytes: number;
}

export interface FramedConnectionEvents {
  /** A whole frame arrived. */
  frame(frame: Frame): void;
  /**
   * The peer sent something that is not a frame; the connection is closing.
   */
  protocolError(error: Error): void;
  /** The connection is closed; `error` if it failed rather than ended. */
  closed(error?: unknown): void;
}

export class FramedConnection implements ConnectionHandler {
  /** performance.now() of the last byte received. */
  lastReceived = performance.now();
  /** performance.now() of the last frame queued for sending. */
  lastSent = performance.now();
  /**
   * performance.now() at which a frame header began arriving, while it is
   * still incomplete. A header is 45 bytes: a peer that takes longer than the
   * silence timeout to send one (dribbling a byte now and then) is dropped.
   */
  headerSince: number | undefined;
  #framesIn = 0;

  readonly #transport: TransportConnection;
  readonly #events: FramedConnectionEvents;
  readonly #decoder: FrameDecoder;
  readonly #protocol: ProtocolVersion;
  readonly #headerSize: number;
  readonly #maxBufferedBytes: number;
  readonly #onFrame: (frame: Frame) => void;
  #queue: Frame[] = [];
  /** Index of the first unsent frame in #queue; avoids shifting the array. */
  #head = 0;
  #queuedBytes = 0;
  #inFlightBytes = 0;
  #flushScheduled = false;
  #writing = false;
  #closing = false;
  #closed = false;
  #drainWaiters: Array<{ resolve(): void; reject(error: Error): void }> = [];
  #closedWaiters: Array<() => void> = [];

  constructor(
    transport: TransportConnection,
    options: FramedConnectionOptions,
    events: FramedConnectionEvents,
  ) {
    this.#transport = transport;
    this.#events = events;
    this.#protocol = options.protocol;
    this.#headerSize = headerSize(options.protocol);
    this.#maxBufferedBytes = options.maxBufferedBytes;
    this.#decoder = new FrameDecoder({
      maxFrameSize: options.maxFrameSize,
      protocol: options.protocol,
    });
    this.#onFrame = (frame) => {
      this.#framesIn++;
      this.#events.frame(frame);
    };
  }

  get remoteAddr() {
    return this.#transport.remoteAddr;
  }

  /** Bytes accepted by `send` and not yet taken by the runtime. */
  get bufferedAmount(): number {
    return this.#queuedBytes + this.#inFlightBytes;
  }

  get closed(): boolean {
    return this.#closing || this.#closed;
  }

  /** The last sign of progress: `headerSince` if set, else `lastReceived`. */
  get lastProgress(): number {
    return this.headerSince ?? this.lastReceived;
  }

  // ConnectionHandler: called by the transport.
  received(chunk: Uint8Array): void {
    const now = this.lastReceived = performance.now();
    if (this.#closing) return;
    const framesBefore = this.#framesIn;
    try {
      this.#decoder.push(chunk, this.#onFrame);
    } catch (error) {
      this.#closing = true;
      this.#events.protocolError(error as Error);
      this.#transport.close();
      return;
    }
    const pending = this.#decoder.pendingBytes;
    if (pending === 0 || pending >= this.#headerSize) {
      this.headerSince = undefined;
    } else if (
      this.headerSince === undefined || this.#framesIn !== framesBefore
    ) {
      this.headerSince = now; // a new header began in this chunk
    }
  }

  ended(error?: unknown): void {
    if (this.#closed) return;
    const endedMidFrame = !this.#closing && !error &&
      this.#decoder.pendingBytes > 0;
    this.#closing = this.#closed = true;
    this.#queue = [];
    this.#head = 0;
    this.#queuedBytes = this.#inFlightBytes = 0;
    if (endedMidFrame) {
      try {
        this.#decoder.end();
      } catch (truncated) {
        this.#events.protocolError(truncated as Error);
      }
    }
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const waiter of waiters) waiter.reject(new ClosedError());
    for (const resolve of this.#closedWaiters.splice(0)) resolve();
    this.#events.closed(error);
  }

  /**
   * Queues a valid frame. Frames queued in the same turn go out in one write.
   * @throws {ClosedError} If the connection is closing or closed.
   * @throws {BufferFullError} If it would pass `maxBufferedBytes`.
   */
  send(frame: Frame): void {
    if (this.#closing) throw new ClosedError();
    const size = this.#headerSize + frame.payload.length;
    const buffered = this.#queuedBytes + this.#inFlightBytes;
    // An empty buffer always takes one frame, so a frame larger than the limit
    // can still be sent on its own.
    if (buffered > 0 && buffered + size > this.#maxBufferedBytes) {
      throw new BufferFullError(buffered, this.#maxBufferedBytes, size);
    }
    this.#queue.push(frame);
    this.#queuedBytes += size;
    this.lastSent = performance.now();
    if (!this.#flushScheduled && !this.#writing) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.#flush());
    }
  }

  /** Resolves once every byte accepted so far has been taken by the runtime. */
  drained(): Promise<void> {
    if (this.#closed) return Promise.reject(new ClosedError());
    if (this.bufferedAmount === 0) return Promise.resolve();
    return new Promise((resolve, reject) =>
      this.#drainWaiters.push({ resolve, reject })
    );
  }

  /**
   * Closes the connection. With `graceMs` > 0, first lets what is buffered go
   * out, for at most that long, so no frame is cut in half.
   */
  async close(graceMs = 0): Promise<void> {
    if (this.#closed) return;
    const closed = new Promise<void>((resolve) =>
      this.#closedWaiters.push(resolve)
    );
    const wasClosing = this.#closing;
    this.#closing = true;
    if (!wasClosing && graceMs > 0 && this.bufferedAmount > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.drained().catch(() => {}),
        new Promise<void>((resolve) => timer = setTimeout(resolve, graceMs)),
      ]);
      clearTimeout(timer);
    }
    this.#transport.close();
    await closed;
  }

  #flush(): void {
    this.#flushScheduled = false;
    while (this.#head < this.#queue.length && !this.#closed) {
      const batch = this.#takeBatch();
      this.#inFlightBytes = batch.length;
      let pending: Promise<void> | undefined;
      try {
        pending = this.#transport.write(batch);
      } catch (error) {
        this.#writeFailed(error);
        return;
      }
      if (pending) {
        this.#writing = true;
        pending.then(() => {
          this.#writing = false;
          this.#inFlightBytes = 0;
          this.#flush();
        }, (error) => this.#writeFailed(error));
        return;
      }
      this.#inFlightBytes = 0;
    }
    if (this.bufferedAmount === 0 && this.#drainWaiters.length > 0) {
      const waiters = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const waiter of waiters) waiter.resolve();
    }
  }

  /** Encodes queued frames into one buffer, up to BATCH_BYTES (at least one). */
  #takeBatch(): Uint8Array {
    const queue = this.#queue;
    const header = this.#headerSize;
    const first = this.#head;
    let end = first;
    let size = 0;
    do {
      size += header + queue[end].payload.length;
      end++;
    } while (end < queue.length && size < BATCH_BYTES);
    const batch = new Uint8Array(size);
    let at = 0;
    for (let i = first; i < end; i++) {
      at = encodeFrameInto(queue[i], batch, at, this.#protocol);
    }
    if (end === queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (end > 1024 && end * 2 > queue.length) {
      // Compact now and then, so sent frames are not kept alive: amortized O(1).
      this.#queue = queue.slice(end);
      this.#head = 0;
    } else {
      this.#head = end;
    }
    this.#queuedBytes -= size;
    return batch;
  }

  #writeFailed(_error: unknown): void {
    this.#writing = false;
    // The transport reports the failure through `closed`; make sure it comes.
    this.#closing = true;
    this.#transport.close();
  }
}
