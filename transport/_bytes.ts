// The running runtime's fastest ways with bytes, for the codec. Looking at the
// runtime is the transport layer's job, so the codec asks here rather than
// probing for Bun itself; each is checked once, at load, and is undefined (or
// false) where the plain web-platform way is as fast.

/**
 * Whether DataView reads are slower than byte loads: so on Bun
 * (JavaScriptCore); on V8 (Deno, Node.js) a DataView reads a header about 3×
 * faster than byte by byte.
 */
export const slowDataView: boolean = "Bun" in globalThis;

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
    if (!("Bun" in globalThis)) return undefined;
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

/**
 * On Bun, `Bun.allocUnsafe`: memory for a payload without zeroing it first (a
 * MiB costs 20 µs instead of 55 µs there), for a payload written whole before
 * anything reads it. A plain `Uint8Array`, not a Node.js `Buffer` (whose
 * `slice` would not copy). Undefined elsewhere.
 */
export const allocUnsafe: ((size: number) => Uint8Array) | undefined = (() => {
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
