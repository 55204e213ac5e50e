/**
 * Frames as web streams, straight over a connection's ends: `frameStream`
 * reads the socket into the frame decoder itself and writes the encoder's
 * batches to it itself, so a program built on streams keeps the shape of
 * `readable.pipeThrough(decoder)…pipeTo(writable)` without paying for two
 * byte streams and two transform streams per connection.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { frameStream, SIGN_DATA } from "@qtk/tcp-framework";
 *
 * // An echo server on Deno: every frame goes back as it came.
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const serving = (async () => {
 *   const conn = await listener.accept();
 *   const { readable, writable } = frameStream(conn);
 *   await readable.pipeTo(writable);
 * })();
 *
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
 * const { readable, writable } = frameStream(conn);
 * const writer = writable.getWriter();
 * const uuid = crypto.randomUUID();
 * await writer.write({ sign: SIGN_DATA, uuid, payload: new Uint8Array([1, 2, 3]) });
 * const { value } = await readable.getReader().read();
 * assert.equal(value!.uuid, uuid);
 * assert.deepEqual([...value!.payload], [1, 2, 3]);
 * await writer.close(); // ends our side; the server's pipe then ends its own
 * await serving;
 * conn.close();
 * listener.close();
 * ```
 *
 * @module
 */

import {
  assertFrame,
  DEFAULT_MAX_FRAME_SIZE,
  type Frame,
  FrameDecoder,
  frameLayout,
  type ProtocolVersion,
} from "./codec.ts";
import { FrameWriter } from "./_frame_writer.ts";

/**
 * A connection's two ends in the shape of `Deno.Conn` (also `Deno.TlsConn`):
 * `read` fills the caller's buffer, `write` takes some or all of the bytes.
 *
 * @example
 * ```ts
 * import type { ByteConnection } from "@qtk/tcp-framework";
 * // Deno.Conn is one; so is anything with these three methods:
 * const silent: ByteConnection = {
 *   read: () => Promise.resolve(null), // at once the end of the stream
 *   write: (bytes) => Promise.resolve(bytes.length),
 *   close() {},
 * };
 * silent.close();
 * ```
 */
export interface ByteConnection {
  /** Reads into `buffer`; the count read, or null at the end of the stream. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes from `bytes`; the count taken (maybe fewer than all). */
  write(bytes: Uint8Array): Promise<number>;
  /** Closes both directions. */
  close(): void;
  /** Ends the writing direction only (TCP FIN), if the connection can. */
  closeWrite?(): Promise<void> | void;
}

/**
 * A connection's two ends as byte streams (`Duplex.toWeb(socket)` on
 * Node.js and Bun, or any stream pair): the portable, slower way in.
 *
 * @example
 * ```ts
 * import type { ByteStreams } from "@qtk/tcp-framework";
 * const loop = new TransformStream<Uint8Array, Uint8Array>();
 * const ends: ByteStreams = loop;
 * await ends.writable.close();
 * ```
 */
export interface ByteStreams {
  /** The bytes the peer sends. */
  readonly readable: ReadableStream<Uint8Array>;
  /** The bytes to send to the peer. */
  readonly writable: WritableStream<Uint8Array>;
}

/**
 * Options of {@linkcode frameStream}.
 *
 * @example
 * ```ts
 * import type { FrameStreamOptions } from "@qtk/tcp-framework";
 * const options: FrameStreamOptions = { protocol: 3, highWaterMark: 64 };
 * ```
 */
export interface FrameStreamOptions {
  /**
   * Wire protocol: 3, or 2 (the 2.x layout).
   * @default {3}
   */
  protocol?: ProtocolVersion;
  /**
   * Largest frame accepted from the peer, header included (bytes); a larger
   * one errors the readable with a `FrameTooLargeError`.
   * @default {67108864}
   */
  maxFrameSize?: number;
  /**
   * Frames the readable holds before it stops reading from the connection
   * (backpressure toward the peer).
   * @default {64}
   */
  highWaterMark?: number;
  /**
   * Bytes the writable holds before its `write()` waits for the connection
   * to take them.
   * @default {262144}
   */
  writableHighWaterBytes?: number;
}

/**
 * A connection's frames: what the peer sends, and a way to send.
 *
 * @example
 * ```ts
 * import type { FrameStreamPair } from "@qtk/tcp-framework";
 * const pairs: FrameStreamPair[] = [];
 * ```
 */
export interface FrameStreamPair {
  /** Frames from the peer, PINGs included, each payload its own to keep. */
  readonly readable: ReadableStream<Frame>;
  /**
   * Frames to the peer. Each is checked and copied as it is written (the
   * payload may be reused once `write()` resolves); frames written in one
   * turn leave in one write. Closing it ends the writing direction.
   */
  readonly writable: WritableStream<Frame>;
}

/** Reads land in a slab, one subarray after another: payloads stay views. */
const MIN_SLAB = 1024;
const MAX_SLAB = 256 * 1024;
const MIN_READ = 512;

/**
 * Frames over a connection, as a readable and a writable stream. Given a
 * `Deno.Conn`-like {@linkcode ByteConnection}, it reads into the decoder's
 * memory and writes the encoder's batches itself: on Deno, an echo through
 * it runs up to 1.8 times as fast as the same echo composed from
 * `conn.readable`, `FrameDecoderStream`, `FrameEncoderStream` and
 * `conn.writable` (docs/performance.md has the figures). Given
 * {@linkcode ByteStreams}, it reads and writes them with one reader and one
 * writer, no transform streams between.
 *
 * Frames written in one turn leave in one write; frames written a few
 * microtasks apart (as a pipe writes them) too, once no new one has come for
 * a few microtasks. On a connection, once as many frames have been written
 * as the reads gave the readable (an echo's or a server's replies), they
 * leave at once, without that wait; and after a read that gave one frame,
 * the connection is read again once its reply has left (or none has come
 * for a few microtasks), not while it is being written.
 *
 * Once the peer's end has been read and the writable closed, the connection
 * is closed. Malformed input errors the readable with the decoder's `ProtocolError`
 * (or `FrameTooLargeError`) and closes the connection; an invalid frame
 * written errors the writable with a `TypeError` before any of its bytes
 * are sent. Cancelling the readable or aborting the writable closes the
 * connection.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { frameStream, SIGN_DATA } from "@qtk/tcp-framework";
 *
 * // Two ends of an in-memory pipe stand for a connection.
 * const aToB = new TransformStream<Uint8Array, Uint8Array>();
 * const bToA = new TransformStream<Uint8Array, Uint8Array>();
 * const a = frameStream({ readable: bToA.readable, writable: aToB.writable });
 * const b = frameStream({ readable: aToB.readable, writable: bToA.writable });
 * const uuid = crypto.randomUUID();
 * const writer = a.writable.getWriter();
 * await writer.write({ sign: SIGN_DATA, uuid, payload: new Uint8Array([7]) });
 * const { value } = await b.readable.getReader().read();
 * assert.equal(value!.uuid, uuid);
 * assert.deepEqual([...value!.payload], [7]);
 * await writer.close();
 * ```
 */
export function frameStream(
  connection: ByteConnection | ByteStreams,
  options: FrameStreamOptions = {},
): FrameStreamPair {
  const protocol = options.protocol ?? 3;
  if (protocol !== 2 && protocol !== 3) {
    throw new TypeError(`Invalid protocol ${protocol}: expected 2 or 3`);
  }
  const decoder = new FrameDecoder({
    protocol,
    maxFrameSize: options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE,
  });
  let ends: WriteEnds;
  let nextChunk: NextChunk;
  // On a connection, a read's replies leave as soon as they are all written
  // (see frameWritable).
  const replyBatches = "read" in connection;
  if (replyBatches) {
    ends = connection;
    nextChunk = connectionChunks(connection, decoder);
  } else {
    const streams = streamEnds(connection);
    ends = streams;
    nextChunk = streamChunks(streams.reader);
  }
  // Once both directions are done (the peer's end read, ours closed), the
  // connection is closed: nothing is left to it.
  let directionsOpen = 2;
  const directionDone = () => {
    if (--directionsOpen === 0) closeQuietly(ends);
  };
  const writable = frameWritable(
    ends,
    protocol,
    options.writableHighWaterBytes ?? 256 * 1024,
    directionDone,
    replyBatches,
  );
  return {
    readable: frameReadable(
      nextChunk,
      decoder,
      options.highWaterMark ?? 64,
      () => closeQuietly(ends),
      directionDone,
      replyBatches ? writable.writer : undefined,
    ),
    writable: writable.stream,
  };
}

/** The next chunk the peer sent, or null at the end of the stream. */
type NextChunk = () => Promise<Uint8Array | null>;

/** Reads a Deno.Conn-like connection into a slab, or into the decoder. */
function connectionChunks(
  conn: ByteConnection,
  decoder: FrameDecoder,
): NextChunk {
  let slabSize = MIN_SLAB;
  let slab = new Uint8Array(slabSize);
  let used = 0;
  return async () => {
    // A large payload's own memory, read into in place.
    const target = decoder.readTarget();
    if (target !== undefined) {
      const count = await conn.read(target);
      return count === null ? null : target.subarray(0, count);
    }
    if (slab.length - used < MIN_READ) {
      slab = new Uint8Array(slabSize);
      used = 0;
    }
    const space = slab.length - used;
    const count = await conn.read(slab.subarray(used));
    if (count === null) return null;
    const chunk = slab.subarray(used, used + count);
    used += count;
    if (count === space && slabSize < MAX_SLAB) slabSize *= 2;
    return chunk;
  };
}

function frameReadable(
  nextChunk: NextChunk,
  decoder: FrameDecoder,
  highWaterMark: number,
  close: () => void,
  ended: () => void,
  replies: FrameWriter | undefined,
): ReadableStream<Frame> {
  /** The last read gave one frame: its reply goes before the next read. */
  let single = false;
  return new ReadableStream<Frame>({
    async pull(controller) {
      let frames = 0;
      const enqueue = (frame: Frame) => {
        frames++;
        controller.enqueue(frame);
      };
      if (single) await replied(replies!);
      // Reads until a frame comes: a pull that enqueued nothing would not be
      // called again.
      while (frames === 0) {
        let chunk: Uint8Array | null;
        try {
          chunk = await nextChunk();
        } catch (error) {
          controller.error(error);
          return;
        }
        try {
          if (chunk === null) {
            decoder.end();
            controller.close();
            ended();
            return;
          }
          // The consumer may answer a frame as it is enqueued (a pipe does):
          // its replies are counted from before the push.
          const sent = replies?.framesOut ?? 0;
          decoder.push(chunk, enqueue);
          if (frames > 0 && replies !== undefined) {
            replies.repliesDue(frames, sent);
            single = frames < 2; // frames > 0: one (TS sees only 0 here)
          }
        } catch (error) {
          controller.error(error);
          close();
          return;
        }
      }
    },
    cancel: close,
  }, new CountQueuingStrategy({ highWaterMark }));
}

/**
 * Microtask generations without a new frame after which the writer sends
 * what it has, and the reading side stops waiting for a reply.
 */
const QUIET_MICROTASKS = 8;

/**
 * Resolves once `writer` has handed the connection the replies owed (see
 * `FrameWriter.repliesDue`), or once no frame has been sent for
 * `QUIET_MICROTASKS` generations: a consumer that does not answer, answers
 * later, or waits for the peer to read, is not waited for.
 *
 * Only after a read that gave one frame: a peer that sent one request and
 * waits for its reply sends nothing more before it, so reading earlier buys
 * nothing, and on Deno a read issued before the reply's write costs that
 * write's latency. After a read of many frames, the next read is issued at
 * once: what the peer sent meanwhile may join the same batch of replies.
 */
async function replied(writer: FrameWriter): Promise<void> {
  let seen = writer.framesOut;
  let quiet = QUIET_MICROTASKS;
  while (!writer.repliesHandedOver) {
    await undefined;
    if (writer.framesOut !== seen) {
      seen = writer.framesOut;
      quiet = QUIET_MICROTASKS;
    } else if (--quiet === 0) return;
  }
}

function frameWritable(
  conn: WriteEnds,
  protocol: ProtocolVersion,
  highWaterBytes: number,
  ended: () => void,
  replyBatches: boolean,
): { stream: WritableStream<Frame>; writer: FrameWriter } {
  let failure: unknown;
  const writer = new FrameWriter({
    remoteAddr: { hostname: "", port: 0 },
    write: (bytes) => writeAll(conn, bytes),
    close: () => closeQuietly(conn),
  }, {
    layout: frameLayout(protocol),
    maxBufferedBytes: Number.MAX_SAFE_INTEGER,
    recycle() {},
    // A pipe writes a frame every few microtasks: wait for a quiet spell so
    // that a read's frames leave in one write, not one write each.
    quietMicrotasks: QUIET_MICROTASKS,
    // Or, on a connection, until as many frames as the reads gave the
    // consumer are written: an echo's or a server's replies then leave as
    // soon as they are written, not after a quiet spell.
    replyBatches,
    failed: (error) => {
      failure ??= error;
      closeQuietly(conn);
    },
  });
  const stream = new WritableStream<Frame>({
    write(frame) {
      if (failure !== undefined) throw failure;
      assertFrame(frame, protocol);
      writer.send(frame.sign, frame.uuid, frame.payload);
      if (writer.bufferedAmount > highWaterBytes) {
        return writer.drained().catch(() => {
          throw failure;
        });
      }
    },
    async close() {
      await writer.drained().catch(() => {
        throw failure;
      });
      if (failure !== undefined) throw failure;
      await conn.closeWrite?.();
      ended();
    },
    abort() {
      writer.close();
      writer.end();
      closeQuietly(conn);
    },
  });
  return { stream, writer };
}

/** What the writing side and the closing need of a connection. */
type WriteEnds = Omit<ByteConnection, "read">;

/** Writes all of `bytes`, however many calls the connection takes. */
async function writeAll(conn: WriteEnds, bytes: Uint8Array) {
  let at = await conn.write(bytes);
  while (at < bytes.length) at += await conn.write(bytes.subarray(at));
}

function closeQuietly(conn: WriteEnds): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

/** The chunks of a byte stream, as they come (no copy). */
function streamChunks(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): NextChunk {
  return async () => {
    const { value, done } = await reader.read();
    return done ? null : value;
  };
}

interface StreamEnds extends WriteEnds {
  readonly reader: ReadableStreamDefaultReader<Uint8Array>;
}

/** Writing and closing over a pair of byte streams. */
function streamEnds(streams: ByteStreams): StreamEnds {
  const reader = streams.readable.getReader();
  const writer = streams.writable.getWriter();
  return {
    reader,
    async write(bytes) {
      // Resolves once the sink is done with the bytes: the frame writer
      // reuses its buffers only then.
      await writer.write(bytes);
      return bytes.length;
    },
    close() {
      reader.cancel().catch(() => {});
      writer.abort().catch(() => {});
    },
    closeWrite() {
      // The runtime may have closed it already (the peer's end, on a
      // connection that does not stay half open): nothing more to end.
      return writer.close().catch(() => {});
    },
  };
}
