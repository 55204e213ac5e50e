// A framed connection: one transport connection plus a frame decoder on the
// way in and a coalescing, bounded write buffer on the way out. Server and
// Client each wrap one of these; it knows nothing of events or heartbeats.

import {
  assertUuid,
  type Frame,
  FrameDecoder,
  type FrameLayout,
  frameLayout,
  type ProtocolVersion,
  type Sign,
  SIGN_DATA,
  SIGN_PING,
  writeHeader,
} from "./codec.ts";
import { BufferFullError, ClosedError, NetworkError } from "./errors.ts";
import { takePayload } from "./message.ts";
import type {
  ConnectionHandler,
  PeerCertificate,
  TransportConnection,
} from "./transport/transport.ts";
import { networkError } from "./transport/_shared.ts";

/**
 * Frames are encoded as they are sent into a write buffer, which goes out in
 * one write once the turn ends: frames sent in the same turn share a write of
 * up to this many bytes. A larger frame is spread over several such buffers,
 * written one after another, rather than given a fresh buffer of its own
 * (a megabyte allocation costs more than its copy, and wakes the GC).
 */
const BATCH_BYTES = 256 * 1024;
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

interface FramedConnectionOptions {
  protocol: ProtocolVersion;
  maxFrameSize: number;
  maxBufferedBytes: number;
  /** Lend payloads for the `frame` event's duration (see `borrowPayloads`). */
  borrowPayloads?: boolean;
}

/** Borrowed payloads need `ArrayBuffer.prototype.transfer` to be detached. */
const canDetach =
  typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer ===
    "function";

/** Detaches `buffer` from its views; its memory, or undefined if it can't. */
function detach(buffer: ArrayBufferLike): ArrayBuffer | undefined {
  const movable = buffer as ArrayBuffer & {
    detached?: boolean;
    transfer?: () => ArrayBuffer;
  };
  if (!(movable instanceof ArrayBuffer) || movable.detached) return undefined;
  try {
    return movable.transfer!();
  } catch {
    return undefined;
  }
}

/** The read buffer of a connection that lends payloads: its sizes. */
const MIN_BORROW_READ = 16 * 1024;
const MAX_BORROW_READ = 256 * 1024;

interface FramedConnectionEvents {
  /** A whole frame arrived. */
  frame(frame: Frame): void;
  /**
   * The peer sent something that is not a frame; the connection is closing.
   */
  protocolError(error: Error): void;
  /**
   * The connection is closed; `error` if it failed rather than ended.
   * `quietReset`: the failure is the peer's reset (`ECONNRESET`) while
   * nothing was owed either way, no partial frame received and no byte
   * accepted by `send` left unwritten (a health check that connects, maybe
   * PINGs, and resets): nothing was lost, and an owner may treat it as an end.
   */
  closed(error: unknown, quietReset: boolean): void;
  /** TLS: the handshake succeeded; `peerCertificate` is set (see `secured`). */
  secured?(): void;
}

/** Whether `error` is the peer resetting the connection (TCP RST). */
function isPeerReset(error: unknown): boolean {
  return error instanceof NetworkError && error.code === "ECONNRESET";
}

export class FramedConnection implements ConnectionHandler {
  // Liveness is kept to the owner's tick, not to the byte: the hot paths set a
  // flag and the tick's `stamp(now)` turns flags into times, so no clock is
  // read per chunk or per write batch (performance.now() is an op on Deno).

  /** When bytes last arrived, as of the tick that noticed them. */
  lastReceived = performance.now();
  /** When a frame was last queued for sending, as of the tick that noticed. */
  lastSent = this.lastReceived;
  /**
   * When the frame header still incomplete began arriving, as of the tick that
   * noticed; undefined while no header is incomplete. A header is 45 bytes: a
   * peer that takes longer than the silence timeout to send one (dribbling a
   * byte now and then) is dropped.
   */
  headerSince: number | undefined;
  #receivedSinceStamp = false;
  #sentSinceStamp = false;
  #headerBegan = false;
  #framesIn = 0;

  // Counters for stats(): plain integers bumped on paths that run anyway
  // (bytes in per chunk, not per frame). Frames count PINGs too.
  /** Bytes received. */
  bytesIn = 0;
  /** Frames accepted by `send` (their bytes: `acceptedBytes`). */
  framesOut = 0;
  /** PING frames received and sent. */
  pingsIn = 0;
  pingsOut = 0;
  /** Sends refused with `BufferFullError`. */
  bufferFull = 0;
  /** Input that was not a frame (0 or 1: the connection closes on it). */
  protocolErrors = 0;
  /** Control messages received out of their moment, and ignored. */
  controlIgnored = 0;

  readonly #transport: TransportConnection;
  readonly #events: FramedConnectionEvents;
  readonly #decoder: FrameDecoder;
  readonly #protocol: ProtocolVersion;
  readonly #layout: FrameLayout;
  readonly #headerSize: number;
  readonly #maxBufferedBytes: number;
  readonly #onFrame: (frame: Frame) => void;
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
  /** While `closed` runs: what was never handed to the runtime. */
  #unsent: Uint8Array[] | undefined;
  /**
   * Start and end offsets of the large frames not yet wholly handed over:
   * the only frames a hand-over can stop inside of.
   */
  #largeFrames: number[] = [];
  #flushScheduled = false;
  #writing = false;
  #closing = false;
  #closed = false;
  #drainWaiters: Array<{ resolve(): void; reject(error: Error): void }> = [];
  #closedWaiters: Array<() => void> = [];
  /** Why a write failed, if it did before anything closed the connection. */
  #writeError: unknown;

  constructor(
    transport: TransportConnection,
    options: FramedConnectionOptions,
    events: FramedConnectionEvents,
  ) {
    this.#transport = transport;
    this.#events = events;
    this.#protocol = options.protocol;
    this.#layout = frameLayout(options.protocol);
    this.#headerSize = this.#layout.headerSize;
    this.#maxBufferedBytes = options.maxBufferedBytes;
    this.#borrow = options.borrowPayloads === true && canDetach;
    this.#decoder = new FrameDecoder({
      maxFrameSize: options.maxFrameSize,
      protocol: options.protocol,
      lentChunks: this.#borrow,
    });
    this.#onFrame = this.#borrow
      ? (frame) => {
        this.#framesIn++;
        if (frame.sign === SIGN_PING) this.pingsIn++;
        const payload = frame.payload;
        // Memory of its own (a payload split across chunks), lent as well.
        if (payload.length > 0 && payload.buffer !== this.#chunkBuffer) {
          this.#lentOwn = payload;
        }
        this.#events.frame(frame);
      }
      : (frame) => {
        this.#framesIn++;
        if (frame.sign === SIGN_PING) this.pingsIn++;
        this.#events.frame(frame);
      };
  }

  /** Frames received, PINGs included. */
  get framesIn(): number {
    return this.#framesIn;
  }

  // Lending payloads: reads go into one buffer, reused from read to read, and
  // once a chunk's frames have been handled every view handed out of it is
  // detached (its memory moves to a new ArrayBuffer with `transfer()`, no
  // copy), so a payload kept past its event reads as empty, never as the
  // bytes of a later read. A payload with memory of its own is detached too,
  // and its memory goes back to the decoder for the next such payload.
  readonly #borrow: boolean;
  #readBuffer: Uint8Array | undefined;
  /** What the transport read into: our read buffer, the decoder's target. */
  #readInto: "buffer" | "target" | undefined;
  #chunkBuffer: ArrayBufferLike | undefined;
  #lentOwn: Uint8Array | undefined;

  get remoteAddr() {
    return this.#transport.remoteAddr;
  }

  /** With TLS, the certificate the peer presented, once the handshake is done. */
  get peerCertificate(): PeerCertificate | undefined {
    return this.#transport.peerCertificate;
  }

  /** Bytes accepted by `send` and not yet taken by the runtime. */
  get bufferedAmount(): number {
    return this.#queuedBytes + this.#inFlightBytes;
  }

  get closed(): boolean {
    return this.#closing || this.#closed;
  }

  /**
   * Bytes accepted by `send` since the connection opened: a frame about to be
   * sent starts at this offset of the connection's outgoing byte stream.
   */
  get acceptedBytes(): number {
    return this.#acceptedTotal;
  }

  /**
   * Bytes of the outgoing stream handed to the runtime (taken or being
   * taken): a frame that starts at or past this offset never left the
   * process.
   */
  get handedBytes(): number {
    return this.#handedTotal;
  }

  /**
   * During the `closed` event only: a copy of the bytes at `offset` (of the
   * outgoing stream) and on, if none of them was handed to the runtime.
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
   * During the `closed` event only: the whole frames none of whose bytes
   * was handed to the runtime, in order (they never left the process).
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
      protocol: this.#protocol,
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

  /** The last sign of progress: `headerSince` if set, else `lastReceived`. */
  get lastProgress(): number {
    return this.headerSince ?? this.lastReceived;
  }

  /**
   * Does not count `ms` of the time since the last progress as silence: the
   * event loop was stalled that long and could not hear the peer. Called by a
   * late liveness tick before `stamp`, so it shifts only old times.
   */
  excuse(ms: number, now: number): void {
    this.lastReceived = Math.min(now, this.lastReceived + ms);
    if (this.headerSince !== undefined) {
      this.headerSince = Math.min(now, this.headerSince + ms);
    }
  }

  /**
   * Dates the activity seen since the last call at `now`. Called by the
   * owner's liveness tick before it reads the times above, so they are late by
   * at most one tick, never early: a timeout may fire up to a tick late.
   */
  stamp(now: number): void {
    if (this.#receivedSinceStamp) {
      this.#receivedSinceStamp = false;
      this.lastReceived = now;
    }
    if (this.#sentSinceStamp) {
      this.#sentSinceStamp = false;
      this.lastSent = now;
    }
    if (this.#headerBegan) {
      this.#headerBegan = false;
      this.headerSince = now;
    }
  }

  // ConnectionHandler: called by the transport.
  received(chunk: Uint8Array): void {
    if (!this.#borrow) return this.#received(chunk);
    const readInto = this.#readInto;
    this.#readInto = undefined;
    this.#chunkBuffer = chunk.buffer;
    const framesBefore = this.#framesIn;
    try {
      this.#received(chunk);
    } finally {
      this.#chunkBuffer = undefined;
      const own = this.#lentOwn;
      if (own !== undefined) {
        this.#lentOwn = undefined;
        const memory = detach(own.buffer);
        if (memory !== undefined) this.#decoder.recycle(memory);
      }
      if (readInto === "buffer") {
        const memory = detach(chunk.buffer);
        const full = chunk.length === this.#readBuffer!.length;
        this.#readBuffer = memory === undefined
          ? undefined
          : full && memory.byteLength < MAX_BORROW_READ
          ? new Uint8Array(memory.byteLength * 2) // reads fill it: grow
          : new Uint8Array(memory);
      } else if (readInto === "target") {
        // Read in place into a large payload's memory: lent once complete.
        if (this.#framesIn !== framesBefore) {
          const memory = detach(chunk.buffer);
          if (memory !== undefined) this.#decoder.recycle(memory);
        }
      } else if (
        chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength
      ) {
        // A chunk the runtime handed over whole (Bun): detached, not reused.
        detach(chunk.buffer);
      }
    }
  }

  #received(chunk: Uint8Array): void {
    this.#receivedSinceStamp = true;
    this.bytesIn += chunk.length;
    if (this.#closing) return;
    const framesBefore = this.#framesIn;
    try {
      this.#decoder.push(chunk, this.#onFrame);
    } catch (error) {
      this.#closing = true;
      this.protocolErrors++;
      this.#events.protocolError(error as Error);
      this.#transport.close();
      return;
    }
    const pending = this.#decoder.pendingBytes;
    if (pending === 0 || pending >= this.#headerSize) {
      this.headerSince = undefined;
      this.#headerBegan = false;
    } else if (
      (this.headerSince === undefined && !this.#headerBegan) ||
      this.#framesIn !== framesBefore
    ) {
      // A new header began in this chunk: its clock starts at the next tick.
      this.headerSince = undefined;
      this.#headerBegan = true;
    }
  }

  readTarget(): Uint8Array | undefined {
    if (this.#closing) return undefined;
    const target = this.#decoder.readTarget();
    if (!this.#borrow) return target;
    if (target !== undefined) {
      this.#readInto = "target";
      return target;
    }
    this.#readInto = "buffer";
    return this.#readBuffer ??= new Uint8Array(MIN_BORROW_READ);
  }

  secured(): void {
    this.#events.secured?.();
  }

  progressed(): void {
    // While the transport holds reads back for a write, a peer that takes
    // what is written is as alive as one that sends; and a header left
    // incomplete by the last read is not late by the peer's doing: its clock
    // starts again.
    this.#receivedSinceStamp = true;
    if (this.headerSince !== undefined) {
      this.headerSince = undefined;
      this.#headerBegan = true;
    }
  }

  ended(error?: unknown): void {
    if (this.#closed) return;
    const partialFrame = this.#decoder.pendingBytes > 0;
    const endedMidFrame = !this.#closing && !error && partialFrame;
    // Read before the buffers are dropped below: bytes queued, or in a write
    // the runtime had not finished (a failed write's stay counted).
    const unsent = this.#queuedBytes + this.#inFlightBytes > 0;
    this.#closing = this.#closed = true;
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
    if (endedMidFrame) {
      try {
        this.#decoder.end();
      } catch (truncated) {
        this.protocolErrors++;
        this.#events.protocolError(truncated as Error);
      }
    }
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const waiter of waiters) waiter.reject(new ClosedError());
    for (const resolve of this.#closedWaiters.splice(0)) resolve();
    const reason = error ??
      (this.#writeError === undefined
        ? undefined
        : networkError("connection", this.remoteAddr, this.#writeError));
    const quietReset = isPeerReset(reason) && !partialFrame && !unsent;
    try {
      this.#events.closed(reason, quietReset);
    } finally {
      this.#unsent = undefined;
    }
  }

  /**
   * Queues a valid frame, encoding it at once (the payload is copied, so the
   * caller may reuse it). Frames queued in the same turn go out in one write.
   * @throws {ClosedError} If the connection is closing or closed.
   * @throws {BufferFullError} If it would pass `maxBufferedBytes`.
   */
  send(frame: Frame, transfer = false): void {
    this.#enqueue(frame.sign, frame.uuid, frame.payload, false, transfer);
    // PINGs only come this way (sendData is for DATA frames).
    if (frame.sign === SIGN_PING) this.pingsOut++;
  }

  /**
   * Queues a DATA frame from a caller's uuid and payload, checking that the
   * uuid is ASCII while encoding it (one pass over its characters instead of
   * a check and then a copy). The caller has checked that `uuid` is a string
   * of the protocol's uuid length and `payload` a `Uint8Array`.
   * @throws {TypeError} If the uuid is not ASCII; nothing is queued.
   * @throws {ClosedError} If the connection is closing or closed.
   * @throws {BufferFullError} If it would pass `maxBufferedBytes`.
   */
  sendData(uuid: string, payload: Uint8Array, transfer = false): void {
    this.#enqueue(SIGN_DATA, uuid, payload, true, transfer);
  }

  #enqueue(
    sign: Sign,
    uuid: string,
    payload: Uint8Array,
    checkUuid: boolean,
    transfer: boolean,
  ): void {
    if (this.#closing) {
      if (checkUuid) assertUuid(uuid, this.#protocol);
      throw new ClosedError();
    }
    const size = this.#headerSize + payload.length;
    const buffered = this.#queuedBytes + this.#inFlightBytes;
    // An empty buffer always takes one frame, so a frame larger than the limit
    // can still be sent on its own.
    if (buffered > 0 && buffered + size > this.#maxBufferedBytes) {
      if (checkUuid) assertUuid(uuid, this.#protocol);
      this.bufferFull++;
      throw new BufferFullError(buffered, this.#maxBufferedBytes, size);
    }
    let out = this.#out;
    const large = size > BATCH_BYTES;
    if (
      out === undefined ||
      this.#outUsed + (large ? this.#headerSize : size) > out.length
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
      this.#layout,
    );
    if (checkUuid && highBits > 0x7f) {
      // Nothing was queued: the bytes past `#outUsed` are free space.
      if (start === 0) {
        returnBuffer(out);
        this.#out = undefined;
      }
      assertUuid(uuid, this.#protocol); // throws the TypeError
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
      out.set(payload, start + this.#headerSize);
      this.#outUsed = start + size;
    } else {
      const largeFrames = this.#largeFrames;
      while (largeFrames.length > 0 && largeFrames[1] <= this.#handedTotal) {
        largeFrames.splice(0, 2);
      }
      largeFrames.push(this.#acceptedTotal, this.#acceptedTotal + size);
      const direct = start === 0 && buffered === 0 && !this.#writing &&
        this.#transport.writeNow !== undefined;
      if (owned) queued = this.#queueOwned(out, start, payload, direct);
      else if (direct) queued = this.#writeNow(out, payload);
      else this.#outUsed = this.#spread(payload, start + this.#headerSize);
    }
    this.#sentSinceStamp = true;
    this.#acceptedTotal += size;
    this.#handedTotal += size - queued;
    this.framesOut++;
    if (queued === 0) return;
    this.#queuedBytes += queued;
    if (!this.#flushScheduled && !this.#writing) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.#flush());
    }
  }

  /**
   * Writes a large frame, whose header starts the otherwise empty write buffer
   * `out`, straight from the caller's payload: what the runtime takes at once
   * is never copied, and only the rest is, into write buffers, since the caller
   * may reuse its payload once `send` returns. Returns the bytes left queued.
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
   * Queues a large frame whose payload is the framework's own (sent with
   * `transfer`): the header ends the current write buffer and the payload is
   * written after it straight from its memory, never copied. With `direct`
   * (Bun, nothing queued) what the runtime takes at once is written now.
   * Returns the bytes left queued.
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
    } else this.#decoder.recycle(payload.buffer as ArrayBuffer); // all taken
    this.#out = undefined;
    this.#outUsed = 0;
    // The `start` bytes before the header are earlier frames', queued already.
    return headerLeft - start + rest.length;
  }

  /**
   * Copies a payload larger than a write buffer from `at` in the current one
   * on through as many fresh ones as it takes; returns the bytes used in the
   * last.
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
      out = this.#setOut(takeBuffer(BATCH_BYTES));
      at = 0;
    }
  }

  /** Makes room for `size` more bytes in the write buffer. */
  #grow(size: number): Uint8Array {
    const out = this.#out;
    const used = this.#outUsed;
    if (out === undefined) {
      this.#outUsed = 0;
      return this.#setOut(takeBuffer(
        Math.max(size, Math.min(this.#lastBatch, BATCH_BYTES)),
      ));
    }
    if (used + size <= BATCH_BYTES) {
      // A bigger buffer for a bigger batch, so it still goes out in one write.
      const bigger = takeBuffer(used + size);
      bigger.set(out.subarray(0, used));
      returnBuffer(out);
      return this.#setOut(bigger);
    }
    // The buffer is never left empty (a frame follows every takeBuffer).
    this.#full.push(out);
    this.#fullUsed.push(used);
    this.#outUsed = 0;
    return this.#setOut(takeBuffer(size));
  }

  /**
   * A buffer the runtime is done with goes back to its pool; one larger than
   * any write buffer is a payload sent with `transfer`, memory of the
   * framework's own, and goes to the decoder for the next large payload (an
   * echo of large payloads with `borrowPayloads` and `transfer` then
   * allocates nothing per message).
   */
  #release(buffer: Uint8Array): void {
    if (buffer.length > BATCH_BYTES) {
      this.#decoder.recycle(buffer.buffer as ArrayBuffer);
    } else returnBuffer(buffer);
  }

  #setOut(buffer: Uint8Array): Uint8Array {
    return this.#out = buffer;
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
   * Closes the connection. With `grace`, first lets what is buffered go out
   * until `grace` settles, so no frame is cut in half.
   */
  async close(grace?: Promise<void>): Promise<void> {
    if (this.#closed) return;
    const closed = new Promise<void>((resolve) =>
      this.#closedWaiters.push(resolve)
    );
    const wasClosing = this.#closing;
    this.#closing = true;
    if (!wasClosing && grace && this.bufferedAmount > 0) {
      await Promise.race([this.drained().catch(() => {}), grace]);
    }
    this.#transport.close();
    await closed;
  }

  #flush(): void {
    this.#flushScheduled = false;
    while (this.#queuedBytes > 0 && !this.#closed) {
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
          this.#flush();
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
    if (!this.#closing) this.#writeError ??= error;
    // The transport reports the failure through `closed`; make sure it comes.
    this.#closing = true;
    this.#transport.close();
  }
}
