// Bytes and memory, in one place: what payloads are made of (Buffers on
// Node.js), how memory is taken without zeroing it, how it is moved out of a
// caller's reach (detach), and the runtime's faster ways with bytes. The codec,
// the connection and the send path all ask here, so every probe is written
// once and runs once, at load; each answer is undefined (or false) where the
// plain web-platform way is as fast.

/** Bun: JavaScriptCore, with byte functions of its own. */
const onBun = "Bun" in globalThis;
/**
 * Whether this is Node.js: neither Deno nor Bun, with Node's global `Buffer`
 * (Deno 2 has a global `Buffer` too, so its name alone does not tell).
 */
const onNode = !("Deno" in globalThis) && !onBun &&
  typeof (globalThis as { Buffer?: unknown }).Buffer === "function";

/**
 * Whether DataView reads are slower than byte loads: so on Bun
 * (JavaScriptCore); on V8 (Deno, Node.js) a DataView reads a header about 3×
 * faster than byte by byte.
 */
export const slowDataView: boolean = onBun;

/**
 * Bun's native `Buffer.prototype.latin1Slice`, which also reads a plain
 * `Uint8Array`: there it builds a uuid string about three times faster than
 * `fromCharCode` (JavaScriptCore is slow with many arguments). Unused on Deno
 * and Node.js, whose V8 runs `fromCharCode` as fast. The bytes are checked to be
 * ASCII before, so latin1 and ASCII read them alike.
 */
export const latin1Slice:
  | ((this: Uint8Array, start: number, end: number) => string)
  | undefined = (() => {
    if (!onBun) return undefined;
    const slice =
      (globalThis as { Buffer?: { prototype?: { latin1Slice?: unknown } } })
        .Buffer?.prototype?.latin1Slice;
    if (typeof slice !== "function") return undefined;
    try {
      const probe = new Uint8Array([0x61, 0x2d, 0x7a]);
      return slice.call(probe, 1, 3) === "-z"
        ? slice as (this: Uint8Array, start: number, end: number) => string
        : undefined;
    } catch {
      return undefined;
    }
  })();

/** What the codec makes payloads with: a view, or a fresh array of a length. */
export interface PayloadConstructor {
  new (length: number): Uint8Array;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): Uint8Array;
}

/**
 * The class of the payloads the codec hands out. On Node.js a `Buffer`: code
 * written for the Node.js 3.x package calls `data.toString("utf8")`, which on
 * a plain `Uint8Array` gives `"101,99,104,111"` without any error. The class
 * is a `Uint8Array` subclass whose prototype is `Buffer.prototype` (as Node's
 * own `FastBuffer` is), so making a view costs what a plain view costs
 * (`Buffer.from(arrayBuffer, offset, length)` validates its arguments and
 * takes about twice as long). Plain `Uint8Array` on Deno and Bun, whose own
 * APIs hand out web-platform `Uint8Array`s, and where `slice()` copies (a
 * `Buffer`'s does not).
 */
export const PayloadArray: PayloadConstructor = (() => {
  if (!onNode) return Uint8Array;
  const NodeBuffer = (globalThis as unknown as {
    Buffer: { prototype: object };
  }).Buffer;
  class BufferView extends Uint8Array {}
  Object.setPrototypeOf(BufferView.prototype, NodeBuffer.prototype);
  // As on Node's own buffers: `constructor` is Buffer, whose species makes
  // `subarray` and `slice` return Buffers too.
  Object.defineProperty(BufferView.prototype, "constructor", {
    value: NodeBuffer,
    writable: true,
    configurable: true,
  });
  return BufferView;
})();

/**
 * Memory for a payload without zeroing it first, for a payload written whole
 * before anything reads it: on Bun, `Bun.allocUnsafe` (a MiB costs 20 µs
 * instead of 55 µs there), a plain `Uint8Array`; on Node.js,
 * `Buffer.allocUnsafeSlow` (a `Buffer` of its own, not a slice of Node's
 * shared pool). Undefined on Deno.
 */
export const allocUnsafe: ((size: number) => Uint8Array) | undefined = (() => {
  if (onNode) {
    const NodeBuffer = (globalThis as unknown as {
      Buffer: { allocUnsafeSlow(size: number): Uint8Array };
    }).Buffer;
    return (size: number) => NodeBuffer.allocUnsafeSlow(size);
  }
  const allocate = (globalThis as { Bun?: { allocUnsafe?: unknown } }).Bun
    ?.allocUnsafe;
  if (typeof allocate !== "function") return undefined;
  try {
    const probe = allocate(3);
    if (
      Object.getPrototypeOf(probe) === Uint8Array.prototype &&
      probe.length === 3
    ) return allocate as (size: number) => Uint8Array;
  } catch { /* not the function we know */ }
  return undefined;
})();

/**
 * Whether memory is detached from its views here: where
 * `ArrayBuffer.prototype.transfer` moves it. V8's does (Deno, Node.js 21 and
 * later: under a microsecond per MiB); Node.js 20 has none; JavaScriptCore's
 * (Bun) copies a large buffer, which costs what the framework's own copy
 * would, and Bun's reads arrive in fresh memory anyway, so there `transfer`
 * takes nothing and `borrowPayloads` lends nothing. Where this is false,
 * memory that must leave the caller's reach is copied instead.
 */
export const canDetach: boolean =
  typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer ===
    "function" && !onBun;

/**
 * Detaches `buffer` from every view of it: its memory under a new
 * `ArrayBuffer`, or undefined if it cannot be (see {@linkcode canDetach}),
 * is detached already, is a `SharedArrayBuffer`, or is memory the runtime
 * will not let go, such as a WebAssembly memory's.
 */
export function detach(buffer: ArrayBufferLike): ArrayBuffer | undefined {
  if (!canDetach) return undefined;
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

/**
 * The payload of a send with `transfer`: its memory, moved out of the caller's
 * reach by detaching its `ArrayBuffer` (no copy), or undefined where that
 * cannot be done (the caller then copies what it keeps, as without transfer).
 * Only a view of a whole buffer is taken: detaching part of one would take
 * the rest from the caller too.
 */
export function takePayload(data: Uint8Array): Uint8Array | undefined {
  if (data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength) {
    return undefined;
  }
  const memory = detach(data.buffer);
  return memory === undefined ? undefined : new Uint8Array(memory);
}
