/**
 * Frames ↔ bytes for the `@qtk/tcp-framework` wire protocol, and nothing else.
 *
 * Protocol 3 (the default) frames are a 45-byte header — sign (1 byte), uuid
 * (36 ASCII bytes), payload length (float64, big-endian) — then the payload.
 * Protocol 2, kept for migrating 2.x peers, has a 32-byte uuid and a uint32
 * length. The decoder trusts nothing: it checks the sign, the uuid bytes and the
 * length before it buffers a single payload byte.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { decodeFrame, encodeFrame, SIGN_DATA } from "@qtk/tcp-framework/codec";
 * const uuid = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
 * const bytes = encodeFrame({ sign: SIGN_DATA, uuid, payload: new TextEncoder().encode("echo") });
 * assert.equal(bytes.length, 49);
 * assert.equal(decodeFrame(bytes).uuid, uuid);
 * ```
 *
 * @module
 */

import { FrameTooLargeError, ProtocolError } from "./errors.ts";
import { quote } from "./_quote.ts";
import {
  allocUnsafe,
  latin1Slice,
  PayloadArray,
  slowDataView,
} from "./_bytes.ts";

/** Sign byte of a heartbeat frame. @example `frame.sign === SIGN_PING` */
export const SIGN_PING = 0x01;
/** Sign byte of a request or response frame. @example `frame.sign === SIGN_DATA` */
export const SIGN_DATA = 0x11;

/**
 * The sign byte of a frame: {@linkcode SIGN_PING} or {@linkcode SIGN_DATA}.
 *
 * @example
 * ```ts
 * import { type Sign, SIGN_PING } from "@qtk/tcp-framework/codec";
 * const sign: Sign = SIGN_PING;
 * ```
 */
export type Sign = typeof SIGN_PING | typeof SIGN_DATA;

/**
 * Wire protocol version: 3 (the `@qtk/tcp-framework` 3.x layout, the default)
 * or 2 (the legacy 2.x layout, for migration only).
 *
 * @example
 * ```ts
 * import type { ProtocolVersion } from "@qtk/tcp-framework/codec";
 * const protocol: ProtocolVersion = 3;
 * ```
 */
export type ProtocolVersion = 2 | 3;

/**
 * One frame: what travels on the wire, decoded.
 *
 * @example
 * ```ts
 * import { type Frame, SIGN_DATA } from "@qtk/tcp-framework/codec";
 * const frame: Frame = { sign: SIGN_DATA, uuid: crypto.randomUUID(), payload: new Uint8Array() };
 * ```
 */
export interface Frame {
  /** PING or DATA. */
  sign: Sign;
  /** 36 ASCII characters in protocol 3 (32 in protocol 2). */
  uuid: string;
  /** The opaque payload. Decoded payloads may be views into a larger read buffer. */
  payload: Uint8Array;
}

/**
 * Default upper bound on a received payload, in bytes (64 MiB).
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { DEFAULT_MAX_FRAME_SIZE } from "@qtk/tcp-framework/codec";
 * assert.equal(DEFAULT_MAX_FRAME_SIZE, 64 * 1024 * 1024);
 * ```
 */
export const DEFAULT_MAX_FRAME_SIZE = 64 * 1024 * 1024;

/**
 * Where a frame's fields lie on the wire under one protocol version: the sign
 * byte at 0, the uuid's ASCII bytes from 1, then the payload length
 * (big-endian), then the payload. The one definition of the layout: the
 * encoder, the decoder and the framed connection all read it from here.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { frameLayout } from "@qtk/tcp-framework/codec";
 * const { headerSize, uuidLength, lengthAt, lengthSize } = frameLayout(3);
 * assert.deepEqual([headerSize, uuidLength, lengthAt, lengthSize], [45, 36, 37, 8]);
 * ```
 */
export interface FrameLayout {
  /** The protocol version this layout belongs to. */
  readonly protocol: ProtocolVersion;
  /** Bytes before the payload: 45 (protocol 3) or 37 (protocol 2). */
  readonly headerSize: 45 | 37;
  /** Characters, and bytes, of the uuid: 36 (protocol 3) or 32 (protocol 2). */
  readonly uuidLength: 36 | 32;
  /** Offset of the payload length field: 37 (protocol 3) or 33 (protocol 2). */
  readonly lengthAt: 37 | 33;
  /**
   * Bytes of the payload length field: 8, a float64 (protocol 3), or 4, a
   * uint32 (protocol 2).
   */
  readonly lengthSize: 8 | 4;
  /** The largest payload length the field can carry. */
  readonly maxPayload: number;
}

const LAYOUT_3: FrameLayout = Object.freeze({
  protocol: 3,
  headerSize: 45,
  uuidLength: 36,
  lengthAt: 37,
  lengthSize: 8,
  maxPayload: Number.MAX_SAFE_INTEGER,
});

const LAYOUT_2: FrameLayout = Object.freeze({
  protocol: 2,
  headerSize: 37,
  uuidLength: 32,
  lengthAt: 33,
  lengthSize: 4,
  maxPayload: 0xffffffff,
});

/**
 * The wire layout of a protocol version.
 *
 * @param protocol The protocol version.
 * @returns Its layout (always the same frozen object).
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { frameLayout } from "@qtk/tcp-framework/codec";
 * assert.equal(frameLayout(2).headerSize, 37);
 * ```
 */
export function frameLayout(protocol: ProtocolVersion = 3): FrameLayout {
  return protocol === 3 ? LAYOUT_3 : LAYOUT_2;
}

/**
 * Header size in bytes for a protocol version: 45 for protocol 3, 37 for 2.
 *
 * @param protocol The protocol version.
 * @returns The header size in bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { headerSize } from "@qtk/tcp-framework/codec";
 * assert.equal(headerSize(3), 45);
 * assert.equal(headerSize(2), 37);
 * ```
 */
export function headerSize(protocol: ProtocolVersion = 3): number {
  return frameLayout(protocol).headerSize;
}

/**
 * Length of the uuid field for a protocol version: 36 for protocol 3, 32 for 2.
 *
 * @param protocol The protocol version.
 * @returns The uuid length in characters (and bytes).
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { uuidLength } from "@qtk/tcp-framework/codec";
 * assert.equal(uuidLength(3), 36);
 * assert.equal(uuidLength(2), 32);
 * ```
 */
export function uuidLength(protocol: ProtocolVersion = 3): number {
  return frameLayout(protocol).uuidLength;
}

/**
 * Checks that a uuid is `uuidLength(protocol)` ASCII characters, which is all
 * the wire needs. Anything else would shift every later frame, so it is
 * refused before a byte is written.
 *
 * @param uuid The value to check.
 * @param protocol The protocol version.
 * @throws {TypeError} If `uuid` is not a string of that many ASCII characters.
 *
 * @example
 * ```ts
 * import { assertUuid } from "@qtk/tcp-framework/codec";
 * assertUuid(crypto.randomUUID());
 * ```
 */
export function assertUuid(
  uuid: unknown,
  protocol: ProtocolVersion = 3,
): asserts uuid is string {
  const expected = uuidLength(protocol);
  if (typeof uuid !== "string" || uuid.length !== expected) {
    throw new TypeError(
      `Invalid uuid ${
        quote(uuid)
      }: expected a string of ${expected} ASCII characters`,
    );
  }
  for (let i = 0; i < expected; i++) {
    if (uuid.charCodeAt(i) > 0x7f) {
      throw new TypeError(
        `Invalid uuid ${quote(uuid)}: character ${i} is not ASCII`,
      );
    }
  }
}

/**
 * Checks a frame to be sent: a known sign, a valid uuid and a `Uint8Array`
 * payload that fits the protocol's length field.
 *
 * @param frame The frame to check.
 * @param protocol The protocol version.
 * @throws {TypeError} If the sign, uuid or payload is not valid.
 * @throws {RangeError} If the payload is too large for protocol 2's uint32 length.
 *
 * @example
 * ```ts
 * import { assertFrame, SIGN_PING } from "@qtk/tcp-framework/codec";
 * assertFrame({ sign: SIGN_PING, uuid: crypto.randomUUID(), payload: new Uint8Array() });
 * ```
 */
export function assertFrame(
  frame: Frame,
  protocol: ProtocolVersion = 3,
): void {
  if (frame === null || typeof frame !== "object") {
    throw new TypeError(`Invalid frame ${quote(frame)}: expected an object`);
  }
  if (frame.sign !== SIGN_PING && frame.sign !== SIGN_DATA) {
    throw new TypeError(
      `Invalid sign ${
        quote(frame.sign)
      }: expected ${SIGN_PING} or ${SIGN_DATA}`,
    );
  }
  assertUuid(frame.uuid, protocol);
  if (!(frame.payload instanceof Uint8Array)) {
    throw new TypeError(
      `Invalid payload ${quote(frame.payload)}: expected a Uint8Array`,
    );
  }
  if (frame.payload.length > frameLayout(protocol).maxPayload) {
    throw new RangeError(
      `Payload of ${frame.payload.length} bytes does not fit protocol 2's 32-bit length`,
    );
  }
}

/**
 * Size in bytes of a frame once encoded.
 *
 * @param frame The frame (only its payload length matters).
 * @param protocol The protocol version.
 * @returns Header size plus payload length.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { encodedSize, SIGN_DATA } from "@qtk/tcp-framework/codec";
 * const size = encodedSize({ sign: SIGN_DATA, uuid: crypto.randomUUID(), payload: new Uint8Array(4) });
 * assert.equal(size, 49);
 * ```
 */
export function encodedSize(
  frame: Frame,
  protocol: ProtocolVersion = 3,
): number {
  return headerSize(protocol) + frame.payload.length;
}

// A payload this large gets memory of its own once 1/TARGET_MAX_RESERVE of it
// is here, so the rest needs no join copy (and can be read straight into it).
const TARGET_MIN_PAYLOAD = 64 * 1024;
const TARGET_MAX_RESERVE = 8;

/**
 * Chunks at least this long are decoded through a DataView (see `push`): on
 * V8 (Deno, Node.js) that reads a header about 3× faster than byte by byte.
 * Where DataView reads are slower than byte loads (Bun), never.
 */
const VIEW_MIN_CHUNK = slowDataView ? Infinity : 256;

// One scratch buffer for the length field: reading and writing float64 through
// it costs no allocation per frame, unlike a DataView per chunk.
const scratch = new DataView(new ArrayBuffer(8));
const scratchBytes = new Uint8Array(scratch.buffer);

/**
 * Writes a frame's header into `target` at `at`: the sign, the uuid's
 * characters as bytes and the payload length, as `layout` places them. The one
 * header writer: {@linkcode encodeFrameInto} and the Server's and Client's
 * connections all write headers through it. It checks nothing, but returns
 * the bitwise OR of the uuid's character codes, so a caller that has not
 * checked the uuid can tell from `> 0x7f` that it was not ASCII (its bytes are
 * then wrong and must not be sent).
 *
 * @param target The buffer to write into; needs `layout.headerSize` bytes
 *   from `at`.
 * @param at Where the header starts in `target`.
 * @param sign The sign byte.
 * @param uuid `layout.uuidLength` characters.
 * @param payloadLength The payload's length in bytes, at most
 *   `layout.maxPayload`.
 * @param layout The protocol's layout (see {@linkcode frameLayout}).
 * @returns The bitwise OR of the uuid's character codes.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { frameLayout, SIGN_DATA, writeHeader } from "@qtk/tcp-framework/codec";
 * const layout = frameLayout(3);
 * const header = new Uint8Array(layout.headerSize);
 * const bits = writeHeader(header, 0, SIGN_DATA, crypto.randomUUID(), 4, layout);
 * assert.ok(bits <= 0x7f);
 * assert.equal(new DataView(header.buffer).getFloat64(layout.lengthAt), 4);
 * ```
 */
export function writeHeader(
  target: Uint8Array,
  at: number,
  sign: Sign,
  uuid: string,
  payloadLength: number,
  layout: FrameLayout,
): number {
  target[at] = sign;
  const idLength = layout.uuidLength;
  let highBits = 0;
  // Four characters a step (36 and 32 are multiples of 4).
  for (let i = 0, to = at + 1; i < idLength; i += 4, to += 4) {
    const a = uuid.charCodeAt(i);
    const b = uuid.charCodeAt(i + 1);
    const c = uuid.charCodeAt(i + 2);
    const d = uuid.charCodeAt(i + 3);
    highBits |= a | b | c | d;
    target[to] = a;
    target[to + 1] = b;
    target[to + 2] = c;
    target[to + 3] = d;
  }
  const lengthAt = at + layout.lengthAt;
  if (layout.lengthSize === 8) {
    // Through the scratch view: no DataView over `target` to make per call.
    scratch.setFloat64(0, payloadLength);
    target[lengthAt] = scratchBytes[0];
    target[lengthAt + 1] = scratchBytes[1];
    target[lengthAt + 2] = scratchBytes[2];
    target[lengthAt + 3] = scratchBytes[3];
    target[lengthAt + 4] = scratchBytes[4];
    target[lengthAt + 5] = scratchBytes[5];
    target[lengthAt + 6] = scratchBytes[6];
    target[lengthAt + 7] = scratchBytes[7];
  } else {
    target[lengthAt] = payloadLength >>> 24;
    target[lengthAt + 1] = payloadLength >>> 16;
    target[lengthAt + 2] = payloadLength >>> 8;
    target[lengthAt + 3] = payloadLength;
  }
  return highBits;
}

/**
 * Encodes a frame into `target` at `offset`, with no intermediate copy. The
 * frame must already be valid (see {@linkcode assertFrame}).
 *
 * @param frame A valid frame.
 * @param target The buffer to write into; needs `encodedSize(frame)` bytes free.
 * @param offset Where the frame starts in `target`.
 * @param protocol The protocol version.
 * @returns The offset just past the frame.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { encodeFrameInto, SIGN_PING } from "@qtk/tcp-framework/codec";
 * const target = new Uint8Array(90);
 * const frame = { sign: SIGN_PING, uuid: crypto.randomUUID(), payload: new Uint8Array() } as const;
 * const end = encodeFrameInto(frame, target, encodeFrameInto(frame, target, 0));
 * assert.equal(end, 90);
 * ```
 */
export function encodeFrameInto(
  frame: Frame,
  target: Uint8Array,
  offset: number,
  protocol: ProtocolVersion = 3,
): number {
  const layout = frameLayout(protocol);
  const payload = frame.payload;
  writeHeader(target, offset, frame.sign, frame.uuid, payload.length, layout);
  const at = offset + layout.headerSize;
  target.set(payload, at);
  return at + payload.length;
}

/**
 * Encodes one frame into a new buffer.
 *
 * @param frame The frame to encode.
 * @param protocol The protocol version.
 * @returns The frame's bytes.
 * @throws {TypeError} If the frame is not valid (see {@linkcode assertFrame}).
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { encodeFrame, SIGN_DATA } from "@qtk/tcp-framework/codec";
 * const bytes = encodeFrame({ sign: SIGN_DATA, uuid: crypto.randomUUID(), payload: new Uint8Array([1, 2]) });
 * assert.equal(bytes.length, 47);
 * assert.equal(bytes[0], SIGN_DATA);
 * ```
 */
export function encodeFrame(
  frame: Frame,
  protocol: ProtocolVersion = 3,
): Uint8Array {
  assertFrame(frame, protocol);
  const bytes = new Uint8Array(encodedSize(frame, protocol));
  encodeFrameInto(frame, bytes, 0, protocol);
  return bytes;
}

/**
 * Options of {@linkcode FrameDecoder} and {@linkcode FrameDecoderStream}.
 *
 * @example
 * ```ts
 * import type { DecoderOptions } from "@qtk/tcp-framework/codec";
 * const options: DecoderOptions = { maxFrameSize: 1 << 20, protocol: 3 };
 * ```
 */
export interface DecoderOptions {
  /**
   * Largest payload accepted, in bytes; a header claiming more is a
   * {@linkcode FrameTooLargeError}.
   * @default {64 MiB}
   */
  maxFrameSize?: number;
  /**
   * Wire protocol version.
   * @default {3}
   */
  protocol?: ProtocolVersion;
  /**
   * Chunks are only lent to `push`: their memory may be reused once it
   * returns, so the bytes of a frame not complete yet are copied, not kept by
   * reference. Payloads that `push` passes to `onFrame` are still views of
   * the chunk, valid as long as the chunk is.
   * @default {false}
   */
  lentChunks?: boolean;
}

/**
 * Incremental frame decoder: push byte chunks as they arrive, get whole frames
 * back through a callback. Payloads are `Buffer`s on Node.js and plain
 * `Uint8Array`s on Deno and Bun. A payload that arrives within one chunk is a
 * zero-copy view of it, and so is one split across chunks that lie end to end
 * in one buffer (a transport reading into a slab, read after read, on V8).
 * Any other split payload is copied once into memory of its own (a large one
 * as its bytes arrive, where a transport that reads into
 * {@linkcode FrameDecoder.readTarget} skips even that copy). Work is linear in
 * the bytes pushed.
 *
 * After a {@linkcode ProtocolError} the decoder is spent: every later push
 * throws the same error.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { encodeFrame, type Frame, FrameDecoder, SIGN_DATA } from "@qtk/tcp-framework/codec";
 * const bytes = encodeFrame({ sign: SIGN_DATA, uuid: crypto.randomUUID(), payload: new Uint8Array(3) });
 * const decoder = new FrameDecoder();
 * const frames: Frame[] = [];
 * decoder.push(bytes.subarray(0, 10), (frame) => frames.push(frame));
 * decoder.push(bytes.subarray(10), (frame) => frames.push(frame));
 * assert.equal(frames.length, 1);
 * assert.equal(frames[0].payload.length, 3);
 * ```
 */
export class FrameDecoder {
  readonly #maxFrameSize: number;
  readonly #protocol: ProtocolVersion;
  readonly #headerSize: number;
  readonly #uuidLength: 36 | 32;
  /** Holds a header that arrived split across chunks. */
  readonly #header: Uint8Array;
  #headerFill = 0;
  /** Payload length of the frame being read, or -1 while reading a header. */
  #payloadLength = -1;
  #sign: Sign = SIGN_DATA;
  #uuid = "";
  /** Pieces of a payload split across chunks, joined once complete. */
  #parts: Uint8Array[] = [];
  #partsBytes = 0;
  /**
   * A large payload's own memory, once enough of it is here (see
   * {@linkcode FrameDecoder.readTarget}); `#partsBytes` counts what it holds.
   */
  #target: Uint8Array | undefined;
  /** Whether readTarget() lent a view of `#target` since the last chunk. */
  #lent = false;
  /** Bytes consumed before the current chunk, for error offsets. */
  #consumed = 0;
  #frameStart = 0;
  #error: ProtocolError | undefined;
  readonly #lentChunks: boolean;
  /** Memory given back with `recycle()`, for the next payload of its own. */
  #spare: ArrayBuffer | undefined;

  /**
   * Creates the instance.
   *
   * @param options Maximum frame size and protocol version.
   * @throws {RangeError} If `maxFrameSize` is not a non-negative integer.
   */
  constructor(options: DecoderOptions = {}) {
    const maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    if (!Number.isSafeInteger(maxFrameSize) || maxFrameSize < 0) {
      throw new RangeError(
        `Invalid maxFrameSize ${
          quote(maxFrameSize)
        }: expected a non-negative integer`,
      );
    }
    const protocol = options.protocol ?? 3;
    if (protocol !== 2 && protocol !== 3) {
      throw new RangeError(
        `Invalid protocol ${quote(protocol)}: expected 2 or 3`,
      );
    }
    this.#maxFrameSize = maxFrameSize;
    this.#lentChunks = options.lentChunks === true;
    this.#protocol = protocol;
    this.#headerSize = frameLayout(protocol).headerSize;
    this.#uuidLength = frameLayout(protocol).uuidLength;
    this.#header = new Uint8Array(this.#headerSize);
  }

  /**
   * Bytes held for a frame that is not complete yet (0 between frames).
   *
   * @example
   * ```ts
   * import assert from "node:assert";
   * import { FrameDecoder } from "@qtk/tcp-framework/codec";
   * const decoder = new FrameDecoder();
   * decoder.push(new Uint8Array([0x11]), () => {});
   * assert.equal(decoder.pendingBytes, 1);
   * ```
   */
  get pendingBytes(): number {
    return this.#payloadLength < 0
      ? this.#headerFill
      : this.#headerSize + this.#partsBytes;
  }

  /**
   * Where the rest of the payload being received belongs, once the decoder has
   * given that payload memory of its own: a payload of at least 64 KiB, once
   * an eighth of it is here (a header alone reserves nothing; a peer makes the
   * decoder reserve at most 8 times what it has sent). A transport that reads
   * into memory it is given can read into this view and push the bytes read as
   * a view of it: they are taken in place, not copied. `undefined` otherwise.
   *
   * @example
   * ```ts
   * import assert from "node:assert";
   * import { encodeFrame, FrameDecoder, SIGN_DATA } from "@qtk/tcp-framework/codec";
   * const bytes = encodeFrame({ sign: SIGN_DATA, uuid: crypto.randomUUID(), payload: new Uint8Array(1 << 20) });
   * const decoder = new FrameDecoder();
   * let received: Uint8Array | undefined;
   * decoder.push(bytes.subarray(0, 200_000), (frame) => received = frame.payload);
   * const target = decoder.readTarget()!;
   * target.set(bytes.subarray(200_000)); // as a read into `target` would
   * decoder.push(target, (frame) => received = frame.payload);
   * assert.equal(received?.buffer, target.buffer);
   * ```
   */
  readTarget(): Uint8Array | undefined {
    const target = this.#target;
    if (target === undefined) return undefined;
    this.#lent = true;
    return target.subarray(this.#partsBytes);
  }

  /**
   * Decodes `chunk`, calling `onFrame` for every frame it completes, in order.
   * The decoder's state is consistent before each call, so `onFrame` may push
   * again; if it throws, the rest of the chunk is not decoded.
   *
   * @param chunk The next bytes of the stream. Kept by reference (payload views
   *   may point into it), so do not reuse its memory.
   * @param onFrame Receives each complete frame.
   * @throws {ProtocolError} On the first invalid frame (and on every later push).
   *
   * @example
   * ```ts
   * import { FrameDecoder } from "@qtk/tcp-framework/codec";
   * new FrameDecoder().push(new Uint8Array(), () => {});
   * ```
   */
  push(chunk: Uint8Array, onFrame: (frame: Frame) => void): void {
    if (this.#error) throw this.#error;
    const length = chunk.length;
    const headerLength = this.#headerSize;
    let at = 0;
    // A chunk long enough to hold several headers is read through one
    // DataView: a word at a time instead of a byte at a time.
    const view = length >= VIEW_MIN_CHUNK
      ? new DataView(chunk.buffer, chunk.byteOffset, length)
      : undefined;
    try {
      while (at < length) {
        if (this.#payloadLength < 0) {
          // Only where a frame begins, not where a split header resumes.
          if (this.#headerFill === 0) this.#frameStart = this.#consumed + at;
          if (this.#headerFill === 0 && length - at >= headerLength) {
            this.#readHeader(chunk, at, view);
            at += headerLength;
          } else {
            if (this.#headerFill === 0) this.#checkSign(chunk[at]);
            const take = Math.min(headerLength - this.#headerFill, length - at);
            this.#header.set(chunk.subarray(at, at + take), this.#headerFill);
            this.#headerFill += take;
            at += take;
            if (this.#headerFill < headerLength) break;
            this.#headerFill = 0;
            this.#readHeader(this.#header, 0, undefined);
          }
          if (this.#payloadLength === 0) {
            this.#emit(new PayloadArray(0), onFrame);
          }
          continue;
        }
        const missing = this.#payloadLength - this.#partsBytes;
        if (this.#partsBytes === 0 && length - at >= missing) {
          at += missing;
          // On V8 a view made from the buffer costs about half a subarray,
          // and is of the runtime's payload class whatever the chunk's class.
          this.#emit(
            view !== undefined
              ? new PayloadArray(
                view.buffer,
                view.byteOffset + at - missing,
                missing,
              )
              : slowDataView
              ? chunk.subarray(at - missing, at)
              : new PayloadArray(
                chunk.buffer,
                chunk.byteOffset + at - missing,
                missing,
              ),
            onFrame,
          );
          continue;
        }
        const take = Math.min(missing, length - at);
        if (
          this.#partsBytes === 0 && this.#spare !== undefined &&
          this.#payloadLength >= TARGET_MIN_PAYLOAD &&
          this.#payloadLength <= this.#spare.byteLength
        ) {
          // Memory given back is claimed at once, since it costs nothing to
          // hold: the rest of the payload is read straight into it, and its
          // first part is the only copy.
          this.#target = new Uint8Array(this.#spare, 0, this.#payloadLength);
          this.#spare = undefined;
        }
        const target = this.#target;
        if (target !== undefined) {
          // Bytes read into the view readTarget() lent are in place already.
          // (Only then is `chunk.buffer` looked at: on JavaScriptCore that
          // can cost an ArrayBuffer object per chunk.)
          const inPlace = this.#lent && chunk.buffer === target.buffer &&
            chunk.byteOffset + at === target.byteOffset + this.#partsBytes;
          this.#lent = false;
          if (!inPlace) {
            target.set(chunk.subarray(at, at + take), this.#partsBytes);
          }
        } else if (this.#lentChunks) {
          this.#parts.push(chunk.slice(at, at + take));
        } else this.#keepPart(chunk, at, take);
        this.#partsBytes += take;
        at += take;
        if (this.#partsBytes === this.#payloadLength) {
          const parts = this.#parts;
          this.#emit(
            target ??
              (parts.length === 1
                ? new PayloadArray(
                  parts[0].buffer,
                  parts[0].byteOffset,
                  parts[0].length,
                )
                : this.#join(this.#partsBytes, this.#partsBytes)),
            onFrame,
          );
        } else if (
          target === undefined && this.#payloadLength >= TARGET_MIN_PAYLOAD &&
          this.#partsBytes * TARGET_MAX_RESERVE >= this.#payloadLength
        ) {
          this.#target = this.#join(this.#partsBytes, this.#payloadLength);
          this.#parts = [];
        }
      }
    } catch (error) {
      if (error instanceof ProtocolError) this.#spend(error);
      throw error;
    } finally {
      this.#consumed += at;
    }
  }

  /**
   * Declares the end of the stream.
   *
   * @throws {ProtocolError} If the stream ended inside a frame.
   *
   * @example
   * ```ts
   * import { FrameDecoder } from "@qtk/tcp-framework/codec";
   * new FrameDecoder().end();
   * ```
   */
  end(): void {
    if (this.#error) throw this.#error;
    if (this.pendingBytes > 0) {
      throw this.#spend(
        new ProtocolError(
          `Stream ended inside a frame: ${this.pendingBytes} bytes of it received`,
          this.#frameStart,
        ),
      );
    }
  }

  /**
   * Gives the decoder memory for the next payload that needs memory of its
   * own (one split across chunks) and fits in it. Only memory no one else
   * can reach: a buffer just detached from its views with
   * `ArrayBuffer.prototype.transfer()`, for example.
   *
   * @param memory The memory to reuse.
   *
   * @example
   * ```ts
   * import { FrameDecoder } from "@qtk/tcp-framework/codec";
   * new FrameDecoder().recycle(new ArrayBuffer(1 << 20));
   * ```
   */
  recycle(memory: ArrayBuffer): void {
    if (memory.byteLength > (this.#spare?.byteLength ?? 0)) {
      this.#spare = memory;
    }
  }

  /**
   * Keeps a piece of a split payload by reference. A piece that goes on where
   * the last one ends, in the same memory, lengthens it instead: a transport
   * that reads into one slab, read after read, gets a split payload as one
   * view, without the join's fresh memory and copy (6 % of the frames at
   * 4 × 8 × 16 KiB on Deno). Not on JavaScriptCore, where `chunk.buffer` can
   * cost an object per chunk, and Bun's reads land in memory of their own.
   */
  #keepPart(chunk: Uint8Array, at: number, take: number): void {
    const parts = this.#parts;
    const last = parts.length === 0 ? undefined : parts[parts.length - 1];
    if (
      last !== undefined && !slowDataView && last.buffer === chunk.buffer &&
      last.byteOffset + last.length === chunk.byteOffset + at
    ) {
      parts[parts.length - 1] = new Uint8Array(
        last.buffer,
        last.byteOffset,
        last.length + take,
      );
    } else parts.push(chunk.subarray(at, at + take));
  }

  /** The parts so far in memory of `capacity` bytes, recycled if it fits. */
  #join(size: number, capacity: number): Uint8Array {
    const spare = this.#spare;
    if (spare !== undefined && capacity <= spare.byteLength) {
      this.#spare = undefined;
      const joined = new Uint8Array(spare, 0, capacity);
      let at = 0;
      for (const part of this.#parts) {
        joined.set(part, at);
        at += part.length;
      }
      return joined;
    }
    return join(this.#parts, size, capacity);
  }

  /** Ends decoding for good, letting go of what a partial frame held. */
  #spend(error: ProtocolError): ProtocolError {
    this.#error = error;
    this.#parts = [];
    this.#target = undefined;
    return error;
  }

  #emit(payload: Uint8Array, onFrame: (frame: Frame) => void): void {
    const frame: Frame = { sign: this.#sign, uuid: this.#uuid, payload };
    this.#payloadLength = -1;
    if (this.#partsBytes > 0) {
      if (this.#target === undefined) this.#parts = [];
      this.#target = undefined;
      this.#partsBytes = 0;
    }
    onFrame(frame);
  }

  #checkSign(sign: number): void {
    if (sign !== SIGN_PING && sign !== SIGN_DATA) {
      // A TLS record as the first bytes: a handshake (0x16, a TLS client at
      // a plaintext port) or an alert (0x15, a TLS server refusing a
      // plaintext client).
      const record = this.#frameStart !== 0
        ? undefined
        : sign === 0x16
        ? "handshake"
        : sign === 0x15
        ? "alert"
        : undefined;
      const hint = record === undefined
        ? ""
        : ` (a TLS ${record}: the peer speaks TLS, this side does not)`;
      throw new ProtocolError(
        `Unknown frame sign "0x${sign.toString(16).padStart(2, "0")}"${hint}`,
        this.#frameStart,
      );
    }
  }

  #readHeader(
    bytes: Uint8Array,
    at: number,
    view: DataView | undefined,
  ): void {
    const sign = bytes[at];
    this.#checkSign(sign);
    const idLength = this.#uuidLength;
    let highBits = 0;
    const lengthAt = at + 1 + idLength;
    if (view !== undefined) {
      for (let i = at + 1; i < lengthAt; i += 4) highBits |= view.getUint32(i);
    } else {
      // Four bytes a step (36 and 32 are multiples of 4).
      for (let i = at + 1; i < lengthAt; i += 4) {
        highBits |= bytes[i] | bytes[i + 1] | bytes[i + 2] | bytes[i + 3];
      }
    }
    if (highBits & 0x80808080) {
      throw new ProtocolError(
        "Frame uuid holds non-ASCII bytes",
        this.#frameStart,
      );
    }
    let length: number;
    if (idLength === 36) {
      if (view !== undefined) {
        length = view.getFloat64(lengthAt);
      } else {
        for (let i = 0; i < 8; i++) scratchBytes[i] = bytes[lengthAt + i];
        length = scratch.getFloat64(0);
      }
      if (!(length >= 0) || !Number.isInteger(length)) {
        throw new ProtocolError(
          `Invalid frame length "${length}": expected a whole number of bytes`,
          this.#frameStart,
        );
      }
      length += 0; // -0 reads as 0
    } else {
      for (let i = 0; i < 4; i++) scratchBytes[i] = bytes[lengthAt + i];
      length = scratch.getUint32(0);
    }
    if (length > this.#maxFrameSize) {
      throw new FrameTooLargeError(
        length,
        this.#maxFrameSize,
        this.#frameStart,
      );
    }
    this.#sign = sign as Sign;
    this.#uuid = asciiString(bytes, at + 1, idLength);
    this.#payloadLength = length;
  }
}

/**
 * Decodes exactly one frame from `bytes`.
 *
 * @param bytes One whole frame, nothing more.
 * @param options Maximum frame size and protocol version.
 * @returns The frame; its payload is a view into `bytes`.
 * @throws {ProtocolError} If `bytes` is not exactly one valid frame.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { decodeFrame, encodeFrame, SIGN_PING } from "@qtk/tcp-framework/codec";
 * const uuid = crypto.randomUUID();
 * const frame = decodeFrame(encodeFrame({ sign: SIGN_PING, uuid, payload: new Uint8Array() }));
 * assert.equal(frame.sign, SIGN_PING);
 * assert.equal(frame.uuid, uuid);
 * ```
 */
export function decodeFrame(
  bytes: Uint8Array,
  options: DecoderOptions = {},
): Frame {
  const decoder = new FrameDecoder(options);
  let frame: Frame | undefined;
  let extra = false;
  decoder.push(bytes, (decoded) => {
    if (frame) extra = true;
    frame ??= decoded;
  });
  if (extra || (frame && decoder.pendingBytes > 0)) {
    throw new ProtocolError("Expected one frame, found trailing bytes");
  }
  decoder.end();
  if (!frame) throw new ProtocolError("Expected one frame, found none");
  return frame;
}

/**
 * Turns a byte stream into a stream of frames. Cut the input anywhere: the
 * output is the same. A malformed frame errors the stream with a
 * {@linkcode ProtocolError}, as does input that ends inside a frame.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { encodeFrame, FrameDecoderStream, SIGN_DATA } from "@qtk/tcp-framework/codec";
 * const bytes = encodeFrame({ sign: SIGN_DATA, uuid: crypto.randomUUID(), payload: new Uint8Array(2) });
 * const frames = await Array.fromAsync(ReadableStream.from([bytes.subarray(0, 7), bytes.subarray(7)])
 *   .pipeThrough(new FrameDecoderStream()));
 * assert.equal(frames.length, 1);
 * ```
 */
export class FrameDecoderStream extends TransformStream<Uint8Array, Frame> {
  /**
   * Creates the instance.
   *
   * @param options Maximum frame size and protocol version.
   * @throws {RangeError} On an invalid option.
   */
  constructor(options: DecoderOptions = {}) {
    const decoder = new FrameDecoder(options);
    super({
      transform(chunk, controller) {
        decoder.push(chunk, (frame) => controller.enqueue(frame));
      },
      flush() {
        decoder.end();
      },
    });
  }
}

/**
 * Options of {@linkcode FrameEncoderStream}.
 *
 * @example
 * ```ts
 * import type { EncoderOptions } from "@qtk/tcp-framework/codec";
 * const options: EncoderOptions = { protocol: 2 };
 * ```
 */
export interface EncoderOptions {
  /**
   * Wire protocol version.
   * @default {3}
   */
  protocol?: ProtocolVersion;
}

/**
 * Frames written to a {@linkcode FrameEncoderStream} while its output waits
 * are packed into one chunk of up to this many bytes.
 */
const STREAM_BATCH_BYTES = 256 * 1024;
/** Largest slab the encoder carves its batches from. */
const STREAM_SLAB_BYTES = 256 * 1024;
/** A payload this large leaves the encoder as a chunk of its own. */
const STREAM_OWN_CHUNK = 64 * 1024;
/**
 * Microtask generations without a new frame after which the encoder's batch
 * is emitted. A frame piped from one stream to the next arrives every 3
 * (Deno) or 4 (Bun) generations; waiting for 8 quiet ones lets every frame
 * of a decoded read join the batch, while the batch still leaves in the same
 * turn of the event loop.
 */
const STREAM_QUIET_GENERATIONS = 8;

/**
 * Turns a stream of frames into bytes. Frames written in the same turn of the
 * event loop leave as one chunk (up to 256 KiB), so a socket gets one write
 * for them, not one per frame; a payload of 64 KiB or more is passed on as a
 * chunk of its own, by reference, as streams pass chunks (do not change it
 * after writing it). An invalid frame errors the stream with a `TypeError`
 * before any of its bytes are emitted.
 *
 * @example
 * ```ts
 * import assert from "node:assert";
 * import { FrameEncoderStream, SIGN_PING } from "@qtk/tcp-framework/codec";
 * const chunks = await Array.fromAsync(
 *   ReadableStream.from([{ sign: SIGN_PING, uuid: crypto.randomUUID(), payload: new Uint8Array() } as const])
 *     .pipeThrough(new FrameEncoderStream()),
 * );
 * assert.equal(chunks[0].length, 45);
 * ```
 */
export class FrameEncoderStream extends TransformStream<Frame, Uint8Array> {
  /**
   * Creates the instance.
   *
   * @param options The protocol version.
   */
  constructor(options: EncoderOptions = {}) {
    const protocol = options.protocol ?? 3;
    const layout = frameLayout(protocol);
    const header = layout.headerSize;
    let output!: TransformStreamDefaultController<Uint8Array>;
    // Batches are carved one after another out of a slab, since each leaves
    // by reference: one allocation for many batches (each allocation costs
    // its zeroing and, on V8, garbage collections driven by external memory).
    let slab: Uint8Array = new Uint8Array(0);
    /** Where the batch being filled starts in the slab, and its length. */
    let start = 0;
    let used = 0;
    /** Bytes of the last batch: slabs are sized for several such. */
    let lastBatch = 0;
    let watching = false;
    let arrived = false;
    let quiet = 0;
    const emit = () => {
      if (used === 0) return;
      const chunk = slab.subarray(start, start + used);
      lastBatch = used;
      start += used;
      used = 0;
      output.enqueue(chunk);
    };
    const watch = () => {
      if (arrived) {
        arrived = false;
        quiet = 0;
      } else if (++quiet >= STREAM_QUIET_GENERATIONS) {
        watching = false;
        try {
          emit();
        } catch { /* the stream was cancelled or errored meanwhile */ }
        return;
      }
      queueMicrotask(watch);
    };
    /** Makes room for `size` more bytes in the batch; returns its offset. */
    const reserve = (size: number) => {
      if (used + size > STREAM_BATCH_BYTES) emit();
      if (start + used + size <= slab.length) return start + used;
      const need = used + size;
      const slabSize = Math.max(
        // A batch outgrowing its slab moves to one of twice its size.
        used > 0 ? 2 * need : need,
        4096,
        Math.min(8 * lastBatch, STREAM_SLAB_BYTES),
      );
      // Unzeroed where the runtime offers it: only bytes written are emitted.
      const bigger = allocUnsafe !== undefined
        ? allocUnsafe(slabSize)
        : new Uint8Array(slabSize);
      bigger.set(slab.subarray(start, start + used));
      slab = bigger;
      start = 0;
      return used;
    };
    super({
      start(controller) {
        output = controller;
      },
      transform(frame) {
        assertFrame(frame, protocol);
        const payload = frame.payload;
        if (payload.length >= STREAM_OWN_CHUNK) {
          const at = reserve(header);
          writeHeader(slab, at, frame.sign, frame.uuid, payload.length, layout);
          used += header;
          emit();
          output.enqueue(payload);
          return;
        }
        const at = reserve(header + payload.length);
        used += encodeFrameInto(frame, slab, at, protocol) - at;
        arrived = true;
        if (!watching) {
          watching = true;
          quiet = 0;
          arrived = false;
          queueMicrotask(watch);
        }
      },
      flush() {
        emit();
      },
    });
  }
}

/**
 * The `length` (36 or 32) ASCII bytes at `at` as a string, with one
 * `fromCharCode` call with the bytes as plain arguments: several times faster
 * than spreading a typed array through `apply`, and no subarray to allocate.
 */
function asciiString(b: Uint8Array, at: number, length: 36 | 32): string {
  if (latin1Slice !== undefined) return latin1Slice.call(b, at, at + length);
  const a = at;
  if (length === 36) {
    // deno-fmt-ignore
    return String.fromCharCode(
      b[a], b[a + 1], b[a + 2], b[a + 3], b[a + 4], b[a + 5], b[a + 6],
      b[a + 7], b[a + 8], b[a + 9], b[a + 10], b[a + 11], b[a + 12],
      b[a + 13], b[a + 14], b[a + 15], b[a + 16], b[a + 17], b[a + 18],
      b[a + 19], b[a + 20], b[a + 21], b[a + 22], b[a + 23], b[a + 24],
      b[a + 25], b[a + 26], b[a + 27], b[a + 28], b[a + 29], b[a + 30],
      b[a + 31], b[a + 32], b[a + 33], b[a + 34], b[a + 35],
    );
  }
  // Protocol 2: 32 characters.
  // deno-fmt-ignore
  return String.fromCharCode(
    b[a], b[a + 1], b[a + 2], b[a + 3], b[a + 4], b[a + 5], b[a + 6],
    b[a + 7], b[a + 8], b[a + 9], b[a + 10], b[a + 11], b[a + 12],
    b[a + 13], b[a + 14], b[a + 15], b[a + 16], b[a + 17], b[a + 18],
    b[a + 19], b[a + 20], b[a + 21], b[a + 22], b[a + 23], b[a + 24],
    b[a + 25], b[a + 26], b[a + 27], b[a + 28], b[a + 29], b[a + 30],
    b[a + 31],
  );
}

function join(
  parts: Uint8Array[],
  size: number,
  capacity = size,
): Uint8Array {
  const joined = allocUnsafe !== undefined
    ? allocUnsafe(capacity)
    : new PayloadArray(capacity);
  let at = 0;
  for (const part of parts) {
    joined.set(part, at);
    at += part.length;
  }
  return joined;
}
