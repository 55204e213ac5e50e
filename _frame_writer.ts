// The way out of a framed connection: frames are encoded as they are sent
// into pooled write buffers, which go out in one write once the turn ends.
// One way in (`send`), four named ways out (`writeStrategy`), and the
// outgoing counters, all here.

import {
  assertUuid,
  type Frame,
  FrameDecoder,
  type FrameLayout,
  type Sign,
  SIGN_PING,
  writeHeader,
} from "./codec.ts";
import { BufferFullError, ClosedError } from "./errors.ts";
import { takePayload } from "./_bytes.ts";
import type { TransportConnection } from "./transport/transport.ts";

/**
 * Frames sent in the same turn share a write of up to this many bytes. A
 * larger frame is spread over several such buffers, written one after
 * another, rather than given a fresh buffer of its own (a megabyte
 * allocation costs more than its copy, and wakes the GC).
 */
export const BATCH_BYTES = 256 * 1024;
/**
 * Write buffers come in four sizes, 4 KiB to 256 KiB, and are reused through
 * pools shared by every connection of the process (allocating a buffer costs
 * far more than filling a small one). Idle connections hold none. At most
 * this many of each size are kept: under 5 MiB in all.
 */
const POOL_SIZES = [4096, 16384, 65536, BATCH_BYTES];
const POOL_LIMITS = [32, 16, 8, 16];
const pools: Uint8Array[][] = [[], [], [], []];

/** A write buffer of at least `size` bytes: pooled, unless over BATCH_BYTES. */
function takeBuffer(size: number): Uint8Array {
  for (let i = 0; i < POOL_SIZES.length; i++) {
    if (size <= POOL_SIZES[i]) {
      return pools[i].pop() ?? new Uint8Array(POOL_SIZES[i]);
    }
  }
  return new Uint8Array(size);
}

/** Returns a write buffer the runtime is done with to its pool. */
function returnBuffer(buffer: Uint8Array): void {
  const i = POOL_SIZES.indexOf(buffer.length);
  if (i >= 0 && pools[i].length < POOL_LIMITS[i]) pools[i].push(buffer);
}

/**
 * How a frame's bytes reach the runtime:
 * - `batch`: copied into the shared write buffer behind the frames before it
 *   (every frame of at most {@linkcode BATCH_BYTES});
 * - `owned`: a larger payload that is the framework's own (sent with
 *   `transfer`): its header ends the write buffer and the payload is written
 *   from its own memory, never copied;
 * - `direct`: a larger payload with nothing queued before it, on a transport
 *   that writes synchronously (`writeNow`): what the runtime takes at once
 *   goes straight from the caller's memory, the rest is copied;
 * - `spread`: a larger payload copied across as many write buffers as it
 *   takes.
 */
export type WriteStrategy = "batch" | "owned" | "direct" | "spread";

/** The strategy for a frame of `size` bytes (see {@linkcode WriteStrategy}). */
export function writeStrategy(
  size: number,
  owned: boolean,
  direct: boolean,
): WriteStrategy {
  if (size <= BATCH_BYTES) return "batch";
  if (owned) return "owned";
  return direct ? "direct" : "spread";
}

/** What a writer needs from the connection it writes for. */
export interface FrameWriterOptions {
  layout: FrameLayout;
  maxBufferedBytes: number;
  /**
   * Takes back the memory of a payload sent with `transfer` once written
   * (the decoder reuses it for the next large payload).
   */
  recycle(memory: ArrayBuffer): void;
  /** A write failed: the writer is closing; the owner closes the transport. */
  failed(error: unknown): void;
  /**
   * Microtask generations without a new frame to wait before writing, so
   * that frames sent one per few microtasks (a web stream piped in, which
   * takes 3 or 4 per chunk) still leave in one write. 0: write once the
   * current microtask ends, for owners that send a turn's frames at once.
   */
  quietMicrotasks?: number;
  /**
   * With `quietMicrotasks`: the owner tells, with `repliesDue`, how many
   * frames it has just read, and once as many more have been sent (their
   * replies) the batch goes, without waiting for quiet. Frames queued while
   * a write was under way then wait for quiet (or for their replies) too,
   * rather than leave as soon as it is done: a batch cut short by the
   * replies is not followed by a write per frame.
   */
  replyBatches?: boolean;
}

/**
 * The most microtask generations a write waits for frames that keep coming:
 * past this the batch goes even though more are on their way.
 */
const MAX_WAIT_MICROTASKS = 256;

export class FrameWriter {
  /** Frames accepted by `send`, PINGs included. */
  framesOut = 0;
  /** PING frames accepted by `send`. */
  pingsOut = 0;
  /** Sends refused with `BufferFullError`. */
  bufferFull = 0;
  /**
   * Frames accepted by each strategy: the large ones are counted as they go,
   * `batch` (all the others) is what is left, so the common path counts
   * nothing more than `framesOut`.
   */
  get byStrategy(): Record<WriteStrategy, number> {
    const large = this.ownedFrames + this.directFrames + this.spreadFrames;
    return {
      batch: this.framesOut - large,
      owned: this.ownedFrames,
      direct: this.directFrames,
      spread: this.spreadFrames,
    };
  }
  /** Set by each accepted frame; the owner's liveness tick clears it. */
  sentSinceStamp = false;
  /** Frames accepted by the large-frame strategies (the rest are `batch`). */
  ownedFrames = 0;
  directFrames = 0;
  spreadFrames = 0;
  /** Why a write failed, if one did. */
  writeError: unknown;

  readonly #transport: TransportConnection;
  readonly #layout: FrameLayout;
  readonly #headerSize: number;
  readonly #maxBufferedBytes: number;
  readonly #recycle: (memory: ArrayBuffer) => void;
  readonly #failed: (error: unknown) => void;
  /** The write buffer frames are being encoded into, and its used length. */
  #out: Uint8Array | undefined;
  #outUsed = 0;
  /** Bytes of the last write: the next write buffer starts that large. */
  #lastBatch = 0;
  /** Full write buffers waiting their turn, and their used lengths. */
  #full: Uint8Array[] = [];
  #fullUsed: number[] = [];
  /** Bytes encoded and not yet handed to the runtime. */
  #queuedBytes = 0;
  #inFlightBytes = 0;
  /** Bytes accepted by `send` since the start, and handed to the runtime. */
  #acceptedTotal = 0;
  #handedTotal = 0;
  /** While the owner's `closed` event runs: what never reached the runtime. */
  #unsent: Uint8Array[] | undefined;
  /**
   * Start and end offsets of the large frames not yet wholly handed over:
   * the only frames a hand-over can stop inside of.
   */
  #largeFrames: number[] = [];
  #flushScheduled = false;
  readonly #quietMicrotasks: number;
  /** With quietMicrotasks: `framesOut` at the last generation. */
  #framesAtGeneration = 0;
  #quietLeft = 0;
  #waitLeft = 0;
  #writing = false;
  readonly #replyBatches: boolean;
  /** With replyBatches: the `framesOut` that completes the replies owed. */
  #dueAt = 0;
  /** The replies due are all queued: the batch goes without more quiet. */
  #replied = false;
  #closing = false;
  #ended = false;
  #drainWaiters: Array<{ resolve(): void; reject(error: Error): void }> = [];

  constructor(transport: TransportConnection, options: FrameWriterOptions) {
    this.#transport = transport;
    this.#layout = options.layout;
    this.#headerSize = options.layout.headerSize;
    this.#maxBufferedBytes = options.maxBufferedBytes;
    this.#recycle = options.recycle;
    this.#failed = options.failed;
    this.#quietMicrotasks = options.quietMicrotasks ?? 0;
    this.#replyBatches = options.replyBatches === true &&
      this.#quietMicrotasks > 0;
  }

  /** Bytes accepted by `send` and not yet taken by the runtime. */
  get bufferedAmount(): number {
    return this.#queuedBytes + this.#inFlightBytes;
  }

  /** Bytes accepted by `send` since the start of the connection. */
  get acceptedBytes(): number {
    return this.#acceptedTotal;
  }

  /** Bytes of the outgoing stream handed to the runtime. */
  get handedBytes(): number {
    return this.#handedTotal;
  }

  /**
   * With `replyBatches`: the owner has just read `count` frames, and
   * `framesOut` was `sentBefore` when it began to hand them out (a consumer
   * may answer one as it is handed over). Their replies come after those
   * still owed to earlier reads; once they are all sent, the batch goes
   * without waiting for quiet (at once if they already are). A batch that
   * goes for quiet instead forgets what was owed: a consumer that answers
   * some frames only does not hold back the batches after.
   */
  repliesDue(count: number, sentBefore: number): void {
    if (!this.#replyBatches) return;
    this.#dueAt = Math.max(this.#dueAt, sentBefore) + count;
    if (this.framesOut >= this.#dueAt && this.#queuedBytes > 0) {
      this.#replied = true;
    }
  }

  /**
   * With `replyBatches`: the replies owed have all been sent and handed to
   * the runtime (none is queued).
   */
  get repliesHandedOver(): boolean {
    return this.framesOut >= this.#dueAt && this.#queuedBytes === 0;
  }

  /** No frame is accepted any more (the connection is closing). */
  close(): void {
    this.#closing = true;
  }

  /**
   * Queues a frame, encoding it at once: the payload is copied unless it is
   * taken (`transfer`), so the caller may reuse it once this returns. Frames
   * queued in the same turn go out in one write. The uuid is checked to be
   * ASCII while it is encoded (one pass instead of a check and a copy); the
   * caller has checked that it is a string of the protocol's uuid length and
   * that `payload` is a `Uint8Array`.
   * @throws {TypeError} If the uuid is not ASCII; nothing is queued.
   * @throws {ClosedError} If the connection is closing or closed.
   * @throws {BufferFullError} If it would pass `maxBufferedBytes`.
   */
  send(sign: Sign, uuid: string, payload: Uint8Array, transfer = false): void {
    const layout = this.#layout;
    if (this.#closing) {
      assertUuid(uuid, layout.protocol);
      throw new ClosedError();
    }
    const headerSize = this.#headerSize;
    const size = headerSize + payload.length;
    const buffered = this.#queuedBytes + this.#inFlightBytes;
    // An empty buffer always takes one frame, so a frame larger than the limit
    // can still be sent on its own.
    if (buffered > 0 && buffered + size > this.#maxBufferedBytes) {
      assertUuid(uuid, layout.protocol);
      this.bufferFull++;
      throw new BufferFullError(buffered, this.#maxBufferedBytes, size);
    }
    const large = size > BATCH_BYTES;
    let out = this.#out;
    if (
      out === undefined ||
      this.#outUsed + (large ? headerSize : size) > out.length
    ) {
      out = this.#grow(large ? BATCH_BYTES : size);
    }
    const start = this.#outUsed;
    const highBits = writeHeader(
      out,
      start,
      sign,
      uuid,
      payload.length,
      layout,
    );
    if (highBits > 0x7f) {
      // Nothing was queued: the bytes past `#outUsed` are free space.
      if (start === 0) {
        returnBuffer(out);
        this.#out = undefined;
      }
      assertUuid(uuid, layout.protocol); // throws the TypeError
    }
    // Taken only now that nothing can refuse the frame.
    let owned = false;
    if (transfer) {
      const taken = takePayload(payload);
      if (taken !== undefined) {
        payload = taken;
        owned = true;
      }
    }
    let queued = size;
    if (!large) {
      out.set(payload, start + headerSize);
      this.#outUsed = start + size;
    } else queued = this.#sendLarge(out, start, payload, owned, buffered);
    this.sentSinceStamp = true;
    this.#acceptedTotal += size;
    this.#handedTotal += size - queued;
    this.framesOut++;
    if (sign === SIGN_PING) this.pingsOut++;
    if (queued === 0) return;
    this.#queuedBytes += queued;
    if (this.framesOut === this.#dueAt) this.#replied = true;
    if (!this.#flushScheduled && !this.#writing) this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    this.#flushScheduled = true;
    if (this.#quietMicrotasks === 0) queueMicrotask(() => this.#flush());
    else {
      this.#quietLeft = this.#quietMicrotasks;
      this.#waitLeft = MAX_WAIT_MICROTASKS;
      this.#framesAtGeneration = this.framesOut;
      queueMicrotask(this.#waitForQuiet);
    }
  }

  /**
   * A frame larger than a write buffer: `owned`, `direct` or `spread`.
   * Returns the bytes left queued.
   */
  #sendLarge(
    out: Uint8Array,
    start: number,
    payload: Uint8Array,
    owned: boolean,
    buffered: number,
  ): number {
    const largeFrames = this.#largeFrames;
    while (largeFrames.length > 0 && largeFrames[1] <= this.#handedTotal) {
      largeFrames.splice(0, 2);
    }
    const size = this.#headerSize + payload.length;
    largeFrames.push(this.#acceptedTotal, this.#acceptedTotal + size);
    const direct = start === 0 && buffered === 0 && !this.#writing &&
      this.#transport.writeNow !== undefined;
    switch (writeStrategy(size, owned, direct)) {
      case "owned":
        this.ownedFrames++;
        return this.#queueOwned(out, start, payload, direct);
      case "direct":
        this.directFrames++;
        return this.#writeNow(out, payload);
      default:
        this.spreadFrames++;
        this.#outUsed = this.#spread(payload, start + this.#headerSize);
        return size;
    }
  }

  /**
   * `direct`: writes a large frame, whose header starts the otherwise empty
   * write buffer `out`, straight from the caller's payload: what the runtime
   * takes at once is never copied, and only the rest is, into write buffers,
   * since the caller may reuse its payload once `send` returns. Returns the
   * bytes left queued.
   */
  #writeNow(out: Uint8Array, payload: Uint8Array): number {
    const transport = this.#transport;
    const headerSize = this.#headerSize;
    let taken = transport.writeNow!(out.subarray(0, headerSize));
    if (taken === headerSize) taken += transport.writeNow!(payload);
    const rest = headerSize + payload.length - taken;
    if (rest === 0) {
      returnBuffer(out);
      this.#out = undefined;
      this.#outUsed = 0;
      return 0;
    }
    let at = 0;
    if (taken < headerSize) {
      out.copyWithin(0, taken, headerSize);
      at = headerSize - taken;
    }
    this.#outUsed = this.#spread(
      payload.subarray(Math.max(0, taken - headerSize)),
      at,
    );
    return rest;
  }

  /**
   * `owned`: the header ends the current write buffer and the payload is
   * queued after it straight from its memory. With `direct` (nothing queued
   * before it, a transport that writes synchronously), what the runtime takes
   * at once is written now. Returns the bytes left queued.
   */
  #queueOwned(
    out: Uint8Array,
    start: number,
    payload: Uint8Array,
    direct: boolean,
  ): number {
    const headerEnd = start + this.#headerSize;
    let headerLeft = headerEnd;
    let rest = payload;
    if (direct) {
      const transport = this.#transport;
      const taken = transport.writeNow!(out.subarray(0, headerEnd));
      if (taken === headerEnd) {
        headerLeft = 0;
        rest = payload.subarray(transport.writeNow!(payload));
      } else {
        out.copyWithin(0, taken, headerEnd);
        headerLeft = headerEnd - taken;
      }
    }
    if (headerLeft > 0) {
      this.#full.push(out);
      this.#fullUsed.push(headerLeft);
    } else returnBuffer(out);
    if (rest.length > 0) {
      this.#full.push(rest);
      this.#fullUsed.push(rest.length);
    } else this.#recycle(payload.buffer as ArrayBuffer); // all taken
    this.#out = undefined;
    this.#outUsed = 0;
    // The `start` bytes before the header are earlier frames', queued already.
    return headerLeft - start + rest.length;
  }

  /**
   * `spread`: copies a payload larger than a write buffer from `at` in the
   * current one on through as many fresh ones as it takes; returns the bytes
   * used in the last.
   */
  #spread(payload: Uint8Array, at: number): number {
    let out = this.#out!;
    let from = 0;
    while (true) {
      const count = Math.min(out.length - at, payload.length - from);
      out.set(payload.subarray(from, from + count), at);
      from += count;
      at += count;
      if (from === payload.length) return at;
      this.#full.push(out);
      this.#fullUsed.push(at);
      out = this.#out = takeBuffer(BATCH_BYTES);
      at = 0;
    }
  }

  /** Makes room for `size` more bytes in the write buffer. */
  #grow(size: number): Uint8Array {
    const out = this.#out;
    const used = this.#outUsed;
    if (out === undefined) {
      this.#outUsed = 0;
      return this.#out = takeBuffer(
        Math.max(size, Math.min(this.#lastBatch, BATCH_BYTES)),
      );
    }
    if (used + size <= BATCH_BYTES) {
      // A bigger buffer for a bigger batch, so it still goes out in one write.
      const bigger = takeBuffer(used + size);
      bigger.set(out.subarray(0, used));
      returnBuffer(out);
      return this.#out = bigger;
    }
    // The buffer is never left empty (a frame follows every takeBuffer).
    this.#full.push(out);
    this.#fullUsed.push(used);
    this.#outUsed = 0;
    return this.#out = takeBuffer(size);
  }

  /**
   * A buffer the runtime is done with goes back to its pool; one larger than
   * any write buffer is a payload sent with `transfer`, memory of the
   * framework's own, and goes back for the next large payload (an echo of
   * large payloads with `borrowPayloads` and `transfer` then allocates
   * nothing per message).
   */
  #release(buffer: Uint8Array): void {
    if (buffer.length > BATCH_BYTES) {
      this.#recycle(buffer.buffer as ArrayBuffer);
    } else returnBuffer(buffer);
  }

  /** Resolves once every byte accepted so far has been taken by the runtime. */
  drained(): Promise<void> {
    if (this.#ended) return Promise.reject(new ClosedError());
    if (this.bufferedAmount === 0) return Promise.resolve();
    return new Promise((resolve, reject) =>
      this.#drainWaiters.push({ resolve, reject })
    );
  }

  /** Writes once `quietMicrotasks` generations pass without a new frame. */
  readonly #waitForQuiet = (): void => {
    // The replies due are all here: no frame is expected before them.
    if (this.#replied) {
      this.#flush();
      return;
    }
    // A frame since the last generation starts the quiet count again.
    if (this.framesOut !== this.#framesAtGeneration) {
      this.#framesAtGeneration = this.framesOut;
      this.#quietLeft = this.#quietMicrotasks;
    } else this.#quietLeft--;
    if (
      this.#quietLeft > 0 && --this.#waitLeft > 0 &&
      this.#queuedBytes < BATCH_BYTES
    ) {
      queueMicrotask(this.#waitForQuiet);
      return;
    }
    // Quiet before the replies owed: they are not coming (now).
    if (this.#quietLeft === 0 && this.#dueAt > this.framesOut) {
      this.#dueAt = this.framesOut;
    }
    this.#flush();
  };

  #flush(): void {
    this.#flushScheduled = false;
    this.#replied = false;
    while (this.#queuedBytes > 0 && !this.#ended) {
      let buffer: Uint8Array;
      let used: number;
      if (this.#full.length > 0) {
        buffer = this.#full.shift()!;
        used = this.#fullUsed.shift()!;
      } else {
        buffer = this.#out!;
        used = this.#outUsed;
        this.#out = undefined;
        this.#outUsed = 0;
      }
      this.#queuedBytes -= used;
      this.#handedTotal += used;
      this.#inFlightBytes = this.#lastBatch = used;
      let pending: Promise<void> | undefined;
      try {
        pending = this.#transport.write(buffer.subarray(0, used));
      } catch (error) {
        this.#writeFailed(error);
        return;
      }
      if (pending) {
        this.#writing = true;
        pending.then(() => {
          this.#writing = false;
          this.#inFlightBytes = 0;
          this.#release(buffer);
          // Frames that came during the write may be the start of more.
          if (
            this.#replyBatches && this.#queuedBytes > 0 &&
            this.#queuedBytes < BATCH_BYTES
          ) this.#scheduleFlush();
          else this.#flush();
        }, (error) => this.#writeFailed(error));
        return;
      }
      this.#inFlightBytes = 0;
      this.#release(buffer);
    }
    if (this.bufferedAmount === 0 && this.#drainWaiters.length > 0) {
      const waiters = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const waiter of waiters) waiter.resolve();
    }
  }

  #writeFailed(error: unknown): void {
    this.#writing = false;
    // A peer's reset can fail a write before the read hears of it; the
    // transport then reports a plain close, so the reason is kept here.
    if (!this.#closing) this.writeError ??= error;
    this.#closing = true;
    this.#failed(error);
  }

  /**
   * The connection ended: whether bytes were still owed (queued, or in a
   * write the runtime had not finished), kept for `unsentBytes` and
   * `unsentFrames` until `forgetUnsent()`. Waiting `drained()` calls reject.
   */
  end(): boolean {
    const owed = this.#queuedBytes + this.#inFlightBytes > 0;
    this.#closing = this.#ended = true;
    if (this.#queuedBytes > 0) {
      this.#unsent = this.#full.map((buffer, i) =>
        buffer.subarray(0, this.#fullUsed[i])
      );
      if (this.#out) this.#unsent.push(this.#out.subarray(0, this.#outUsed));
    }
    this.#out = undefined;
    this.#outUsed = 0;
    this.#full = [];
    this.#fullUsed = [];
    this.#queuedBytes = this.#inFlightBytes = 0;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const waiter of waiters) waiter.reject(new ClosedError());
    return owed;
  }

  /** Drops what `end()` kept. */
  forgetUnsent(): void {
    this.#unsent = undefined;
  }

  /**
   * After `end()`: a copy of the bytes at `offset` (of the outgoing stream)
   * and on, if none of them was handed to the runtime.
   */
  unsentBytes(offset: number, length: number): Uint8Array | undefined {
    const chunks = this.#unsent;
    if (chunks === undefined || offset < this.#handedTotal) return undefined;
    const bytes = new Uint8Array(length);
    let at = this.#handedTotal;
    let filled = 0;
    for (const chunk of chunks) {
      const end = at + chunk.length;
      if (end > offset + filled && filled < length) {
        const from = offset + filled - at;
        const take = Math.min(chunk.length - from, length - filled);
        bytes.set(chunk.subarray(from, from + take), filled);
        filled += take;
      }
      at = end;
    }
    return filled === length ? bytes : undefined;
  }

  /**
   * After `end()`: the whole frames none of whose bytes was handed to the
   * runtime, in order (they never left the process).
   */
  unsentFrames(): Frame[] {
    const chunks = this.#unsent;
    if (chunks === undefined) return [];
    // The first frame boundary at or after what was handed over.
    let from = this.#handedTotal;
    const large = this.#largeFrames;
    for (let i = 0; i < large.length; i += 2) {
      if (large[i] < from && from < large[i + 1]) from = large[i + 1];
    }
    const frames: Frame[] = [];
    const decoder = new FrameDecoder({
      protocol: this.#layout.protocol,
      maxFrameSize: Number.MAX_SAFE_INTEGER,
    });
    let at = this.#handedTotal;
    try {
      for (const chunk of chunks) {
        const end = at + chunk.length;
        if (end > from) {
          decoder.push(
            chunk.subarray(Math.max(0, from - at)),
            (frame) => frames.push(frame),
          );
        }
        at = end;
      }
    } catch { /* cannot be: these are frames this connection encoded */ }
    return frames;
  }
}
