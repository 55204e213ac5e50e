// A framed connection: one transport connection plus a frame decoder on the
// way in and a frame writer (coalescing, bounded write buffers) on the way
// out. Server and Client each wrap one of these; it knows nothing of events
// or heartbeats.

import {
  type Frame,
  FrameDecoder,
  frameLayout,
  type ProtocolVersion,
  type Sign,
  SIGN_PING,
} from "./codec.ts";
import { NetworkError } from "./errors.ts";
import { FrameWriter } from "./_frame_writer.ts";
import { canDetach, detach } from "./_bytes.ts";
import type {
  ConnectionHandler,
  PeerCertificate,
  TransportConnection,
} from "./transport/transport.ts";
import { networkError } from "./_network_error.ts";

interface FramedConnectionOptions {
  protocol: ProtocolVersion;
  maxFrameSize: number;
  maxBufferedBytes: number;
  /** Lend payloads for the `frame` event's duration (see `borrowPayloads`). */
  borrowPayloads?: boolean;
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

/** `framed.send` of a whole frame (a PING, a control message, a queued one). */
export function sendFrame(
  framed: FramedConnection,
  frame: Frame,
  transfer = false,
): void {
  framed.send(frame.sign, frame.uuid, frame.payload, transfer);
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
  #headerBegan = false;
  #framesIn = 0;

  // Counters for stats(): plain integers bumped on paths that run anyway
  // (bytes in per chunk, not per frame). Frames count PINGs too; the
  // outgoing counters are the writer's.
  /** Bytes received. */
  bytesIn = 0;
  /** PING frames received. */
  pingsIn = 0;
  /** Input that was not a frame (0 or 1: the connection closes on it). */
  protocolErrors = 0;
  /** Control messages received out of their moment, and ignored. */
  controlIgnored = 0;

  readonly #transport: TransportConnection;
  readonly #events: FramedConnectionEvents;
  readonly #decoder: FrameDecoder;
  readonly #headerSize: number;
  readonly #onFrame: (frame: Frame) => void;
  readonly #writer: FrameWriter;
  #closing = false;
  #closed = false;
  #closedWaiters: Array<() => void> = [];

  constructor(
    transport: TransportConnection,
    options: FramedConnectionOptions,
    events: FramedConnectionEvents,
  ) {
    this.#transport = transport;
    this.#events = events;
    const layout = frameLayout(options.protocol);
    this.#headerSize = layout.headerSize;
    this.#borrow = options.borrowPayloads === true && canDetach;
    this.#decoder = new FrameDecoder({
      maxFrameSize: options.maxFrameSize,
      protocol: options.protocol,
      lentChunks: this.#borrow,
    });
    this.#writer = new FrameWriter(transport, {
      layout,
      maxBufferedBytes: options.maxBufferedBytes,
      recycle: (memory) => this.#decoder.recycle(memory),
      failed: () => {
        // The transport reports the failure through `ended`; make sure it
        // comes.
        this.#closing = true;
        this.#transport.close();
      },
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
    return this.#writer.bufferedAmount;
  }

  get closed(): boolean {
    return this.#closing || this.#closed;
  }

  /** Frames accepted by `send`, PINGs included. */
  get framesOut(): number {
    return this.#writer.framesOut;
  }

  /** PING frames accepted by `send`. */
  get pingsOut(): number {
    return this.#writer.pingsOut;
  }

  /** Sends refused with `BufferFullError`. */
  get bufferFull(): number {
    return this.#writer.bufferFull;
  }

  /**
   * Bytes accepted by `send` since the connection opened: a frame about to be
   * sent starts at this offset of the connection's outgoing byte stream.
   */
  get acceptedBytes(): number {
    return this.#writer.acceptedBytes;
  }

  /**
   * Bytes of the outgoing stream handed to the runtime (taken or being
   * taken): a frame that starts at or past this offset never left the
   * process.
   */
  get handedBytes(): number {
    return this.#writer.handedBytes;
  }

  /**
   * During the `closed` event only: a copy of the bytes at `offset` (of the
   * outgoing stream) and on, if none of them was handed to the runtime.
   */
  unsentBytes(offset: number, length: number): Uint8Array | undefined {
    return this.#writer.unsentBytes(offset, length);
  }

  /**
   * During the `closed` event only: the whole frames none of whose bytes
   * was handed to the runtime, in order (they never left the process).
   */
  unsentFrames(): Frame[] {
    return this.#writer.unsentFrames();
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
    if (this.#writer.sentSinceStamp) {
      this.#writer.sentSinceStamp = false;
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
        // A chunk the runtime handed over whole (a transport without
        // readTarget, such as Node.js's): detached, not reused.
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
      this.#writer.close();
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
    this.#closing = this.#closed = true;
    const writer = this.#writer;
    const unsent = writer.end();
    if (endedMidFrame) {
      try {
        this.#decoder.end();
      } catch (truncated) {
        this.protocolErrors++;
        this.#events.protocolError(truncated as Error);
      }
    }
    for (const resolve of this.#closedWaiters.splice(0)) resolve();
    const reason = error ??
      (writer.writeError === undefined
        ? undefined
        : networkError("connection", this.remoteAddr, writer.writeError));
    const quietReset = isPeerReset(reason) && !partialFrame && !unsent;
    try {
      this.#events.closed(reason, quietReset);
    } finally {
      writer.forgetUnsent();
    }
  }

  /**
   * The one way out: queues a frame, encoding it at once. The payload is
   * copied (the caller may reuse it once this returns) unless `transfer`
   * takes its memory. Frames queued in the same turn go out in one write.
   * The caller has checked that `uuid` is a string of the protocol's uuid
   * length and `payload` a `Uint8Array`; the uuid is checked to be ASCII
   * while it is encoded.
   * @throws {TypeError} If the uuid is not ASCII; nothing is queued.
   * @throws {ClosedError} If the connection is closing or closed.
   * @throws {BufferFullError} If it would pass `maxBufferedBytes`.
   */
  send(sign: Sign, uuid: string, payload: Uint8Array, transfer = false): void {
    this.#writer.send(sign, uuid, payload, transfer);
  }

  /** Resolves once every byte accepted so far has been taken by the runtime. */
  drained(): Promise<void> {
    return this.#writer.drained();
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
    this.#writer.close();
    if (!wasClosing && grace && this.bufferedAmount > 0) {
      await Promise.race([this.drained().catch(() => {}), grace]);
    }
    this.#transport.close();
    await closed;
  }
}
