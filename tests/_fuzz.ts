// The decoder fuzzer shared by tests/unit/fuzz.test.ts (short, in the suite)
// and tests/fuzz_long.ts (`deno task fuzz`, millions of cases). Every case is
// derived from (seed, index) alone, so any failure is reproducible from the
// two numbers it prints.
//
// A case is a byte stream (valid frames, then maybe mutated: random bytes,
// flipped sign / uuid / length bytes, truncations, insertions) cut into chunks
// in a random way. An independent reference parser, which sees the whole
// stream at once, says what the stream holds; the FrameDecoder, fed the
// chunks, must agree: the same frames in the same order, then the typed error
// (at the same offset) or a clean end. It must never throw anything else and
// never hold more than one header plus maxFrameSize bytes.

import {
  encodeFrame,
  FrameDecoder,
  headerSize,
  type ProtocolVersion,
  SIGN_DATA,
  SIGN_PING,
} from "../codec.ts";
import { FrameTooLargeError, ProtocolError } from "../errors.ts";

/** A small, fast, seedable PRNG (mulberry32); `next()` is a uint32. */
export class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

/** The seed of case `index` of a run seeded with `seed`. */
export function caseSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** One generated case. */
export interface FuzzCase {
  protocol: ProtocolVersion;
  maxFrameSize: number;
  bytes: Uint8Array;
  chunks: Uint8Array[];
  /** What was done to the stream, for failure reports. */
  mutation: string;
}

interface RefFrame {
  sign: number;
  uuid: string;
  payload: Uint8Array;
}

/** What the reference parser finds in a whole stream. */
export interface Expected {
  frames: RefFrame[];
  /** "none", an error the decoder must raise while pushing, or at `end()`. */
  error: "none" | "invalid" | "tooLarge" | "truncated";
  /** Stream offset of the offending frame's first byte. */
  offset: number;
}

/**
 * The reference parser: written from PROTOCOL.md, independently of codec.ts,
 * for a whole stream at once.
 */
export function reference(
  bytes: Uint8Array,
  protocol: ProtocolVersion,
  maxFrameSize: number,
): Expected {
  const idLength = protocol === 3 ? 36 : 32;
  const header = 1 + idLength + (protocol === 3 ? 8 : 4);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const frames: RefFrame[] = [];
  let at = 0;
  while (at < bytes.length) {
    const sign = bytes[at];
    if (sign !== 0x01 && sign !== 0x11) {
      return { frames, error: "invalid", offset: at };
    }
    if (bytes.length - at < header) {
      return { frames, error: "truncated", offset: at };
    }
    let uuid = "";
    for (let i = 0; i < idLength; i++) {
      const c = bytes[at + 1 + i];
      if (c > 0x7f) return { frames, error: "invalid", offset: at };
      uuid += String.fromCharCode(c);
    }
    let length: number;
    if (protocol === 3) {
      length = view.getFloat64(at + 1 + idLength);
      if (Number.isNaN(length) || length < 0 || length % 1 !== 0) {
        return { frames, error: "invalid", offset: at };
      }
      if (!Number.isFinite(length)) {
        return { frames, error: "invalid", offset: at };
      }
    } else {
      length = view.getUint32(at + 1 + idLength);
    }
    if (length > maxFrameSize) {
      return { frames, error: "tooLarge", offset: at };
    }
    if (bytes.length - at - header < length) {
      return { frames, error: "truncated", offset: at };
    }
    const start = at + header;
    frames.push({ sign, uuid, payload: bytes.subarray(start, start + length) });
    at = start + length;
  }
  return { frames, error: "none", offset: at };
}

const SPECIAL_LENGTHS = [
  NaN,
  Infinity,
  -Infinity,
  -1,
  -0,
  0.5,
  1e-300,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  2 ** 53 + 2,
  Number.MAX_VALUE,
  64 * 1024 * 1024,
  64 * 1024 * 1024 + 1,
];

function randomUuid(rng: Rng, length: number): string {
  if (length === 36 && rng.chance(0.5)) {
    const hex = Array.from(
      rng.bytes(16),
      (b) => b.toString(16).padStart(2, "0"),
    )
      .join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${
      hex.slice(16, 20)
    }-${hex.slice(20)}`;
  }
  let uuid = "";
  for (let i = 0; i < length; i++) uuid += String.fromCharCode(rng.int(0x80));
  return uuid;
}

/** Builds case `index` of the run seeded with `seed`. */
export function generate(seed: number, index: number): FuzzCase {
  const rng = new Rng(caseSeed(seed, index));
  const protocol: ProtocolVersion = rng.chance(0.8) ? 3 : 2;
  const idLength = protocol === 3 ? 36 : 32;
  const header = headerSize(protocol);
  const maxFrameSize = rng.pick([0, 1, 7, 64, 200, 4096, 64 * 1024 * 1024]);
  const parts: Uint8Array[] = [];
  const frameStarts: number[] = [];
  let total = 0;
  const count = rng.int(7);
  for (let i = 0; i < count; i++) {
    let length = rng.int(Math.min(maxFrameSize, 300) + 1);
    if (rng.chance(0.1)) length = Math.min(maxFrameSize, 5000);
    // Now and then a payload large enough to get memory of its own.
    if (rng.chance(0.01)) {
      length = Math.min(maxFrameSize, 65536 + rng.int(65536));
    }
    if (rng.chance(0.05)) length = Math.min(maxFrameSize, 4096) + 1; // too large
    const frame = encodeFrame({
      sign: rng.chance(0.3) ? SIGN_PING : SIGN_DATA,
      uuid: randomUuid(rng, idLength),
      payload: rng.bytes(length),
    }, protocol);
    frameStarts.push(total);
    parts.push(frame);
    total += frame.length;
  }
  let bytes: Uint8Array = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }

  // Mutations, zero to three of them.
  const mutations: string[] = [];
  const rounds = rng.chance(0.25) ? 0 : 1 + rng.int(3);
  for (let round = 0; round < rounds; round++) {
    const start = frameStarts.length > 0 && rng.chance(0.8)
      ? rng.pick(frameStarts)
      : rng.int(bytes.length + 1);
    const kind = rng.int(9);
    if (kind === 0) {
      bytes = rng.bytes(rng.int(rng.chance(0.5) ? 100 : 2000));
      frameStarts.length = 0;
      mutations.push("random");
    } else if (kind === 1 && start < bytes.length) {
      bytes[start] = rng.chance(0.5) ? rng.next() & 0xff : bytes[start] ^ 0x10;
      mutations.push(`sign@${start}`);
    } else if (kind === 2 && start + 1 + idLength <= bytes.length) {
      const i = start + 1 + rng.int(idLength);
      bytes[i] |= 0x80;
      mutations.push(`uuid@${i}`);
    } else if (kind === 3 && start + header <= bytes.length) {
      const lengthAt = start + 1 + idLength;
      const view = new DataView(bytes.buffer, bytes.byteOffset);
      if (protocol === 3) {
        view.setFloat64(
          lengthAt,
          rng.chance(0.5) ? rng.pick(SPECIAL_LENGTHS) : rng.int(10_000),
        );
      } else {
        view.setUint32(
          lengthAt,
          rng.chance(0.5) ? rng.next() : rng.int(10_000),
        );
      }
      mutations.push(`length@${lengthAt}`);
    } else if (kind === 4 && start + header <= bytes.length) {
      const i = start + 1 + idLength + rng.int(protocol === 3 ? 8 : 4);
      bytes[i] ^= 1 << rng.int(8);
      mutations.push(`lengthbit@${i}`);
    } else if (kind === 5) {
      const cut = rng.int(bytes.length + 1);
      bytes = bytes.slice(0, cut);
      mutations.push(`truncate@${cut}`);
    } else if (kind === 6) {
      const extra = rng.bytes(1 + rng.int(50));
      const joined = new Uint8Array(bytes.length + extra.length);
      const i = Math.min(start, bytes.length);
      joined.set(bytes.subarray(0, i));
      joined.set(extra, i);
      joined.set(bytes.subarray(i), i + extra.length);
      bytes = joined;
      mutations.push(`insert@${i}`);
    } else if (kind === 7 && bytes.length > 0) {
      const i = rng.int(bytes.length);
      bytes[i] ^= 1 << rng.int(8);
      mutations.push(`bit@${i}`);
    } else {
      mutations.push("none");
    }
  }

  // Chunking.
  const chunks: Uint8Array[] = [];
  const mode = rng.int(5);
  if (mode === 0) {
    chunks.push(bytes);
  } else if (mode === 1) {
    for (let i = 0; i < bytes.length; i++) {
      chunks.push(bytes.subarray(i, i + 1));
    }
  } else {
    const largest = mode === 2 ? 8 : mode === 3 ? 64 : 1024;
    let i = 0;
    while (i < bytes.length) {
      const size = rng.chance(0.05) ? 0 : 1 + rng.int(largest);
      chunks.push(bytes.subarray(i, i + size));
      i += size;
    }
  }
  // Each chunk in its own buffer, as a socket would hand it over.
  const owned = chunks.map((chunk) => chunk.slice());
  return {
    protocol,
    maxFrameSize,
    bytes,
    chunks: owned,
    mutation: mutations.join(",") || "none",
  };
}

/** Runs one case; returns undefined if the decoder behaved, else what went wrong. */
export function check(fuzzCase: FuzzCase): string | undefined {
  const { protocol, maxFrameSize, bytes, chunks } = fuzzCase;
  const expected = reference(bytes, protocol, maxFrameSize);
  const bound = headerSize(protocol) + maxFrameSize;
  const decoder = new FrameDecoder({ maxFrameSize, protocol });
  const got: RefFrame[] = [];
  const onFrame = (frame: RefFrame) => got.push(frame);
  let thrown: unknown;
  let thrownAt: "push" | "end" | undefined;
  let intoTarget = false;
  for (const chunk of chunks) {
    // Every other chunk that fits goes in through readTarget(), as a
    // transport reading into it would; the rest are copied in.
    let piece = chunk;
    const target = decoder.readTarget();
    if (
      target !== undefined && chunk.length <= target.length &&
      (intoTarget = !intoTarget)
    ) {
      target.set(chunk);
      piece = target.subarray(0, chunk.length);
    }
    try {
      decoder.push(piece, onFrame);
    } catch (error) {
      thrown = error;
      thrownAt = "push";
      break;
    }
    if (decoder.pendingBytes > bound) {
      return `holds ${decoder.pendingBytes} bytes, over header + maxFrameSize = ${bound}`;
    }
  }
  if (thrown === undefined) {
    try {
      decoder.end();
    } catch (error) {
      thrown = error;
      thrownAt = "end";
    }
  }

  if (thrown !== undefined && !(thrown instanceof ProtocolError)) {
    return `threw a non-ProtocolError: ${String(thrown)}`;
  }
  if (got.length !== expected.frames.length) {
    return `decoded ${got.length} frames, expected ${expected.frames.length} (${
      thrown ? String(thrown) : "no error"
    })`;
  }
  for (let i = 0; i < got.length; i++) {
    const a = got[i];
    const b = expected.frames[i];
    if (a.sign !== b.sign || a.uuid !== b.uuid) {
      return `frame ${i}: sign/uuid differ`;
    }
    if (a.payload.length > maxFrameSize) {
      return `frame ${i}: payload of ${a.payload.length} over maxFrameSize`;
    }
    if (!sameBytes(a.payload, b.payload)) return `frame ${i}: payload differs`;
  }
  if (expected.error === "none") {
    return thrown ? `threw ${String(thrown)} on a valid stream` : undefined;
  }
  if (!(thrown instanceof ProtocolError)) {
    return `expected a ${expected.error} error, got none`;
  }
  // A bad header must be refused as soon as it is seen, not at the end.
  const wantAt = expected.error === "truncated" ? "end" : "push";
  if (thrownAt !== wantAt) {
    return `${expected.error} error raised at ${thrownAt}, expected at ${wantAt}`;
  }
  if (
    (thrown instanceof FrameTooLargeError) !== (expected.error === "tooLarge")
  ) {
    return `expected ${expected.error}, got ${thrown.name}: ${thrown.message}`;
  }
  if (thrown.offset !== expected.offset) {
    return `error offset ${thrown.offset}, expected ${expected.offset}`;
  }
  // A spent decoder keeps refusing, with the same error.
  try {
    decoder.push(new Uint8Array([0x11]), onFrame);
    return "a push after the error was accepted";
  } catch (again) {
    if (again !== thrown) return "a push after the error threw another error";
  }
  if (got.length !== expected.frames.length) return "frames after the error";
  return undefined;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Result of a run. */
export interface FuzzReport {
  seed: number;
  cases: number;
  /** Cases that failed (only the first 20 are kept in `failures`). */
  failed: number;
  failures: Array<{ index: number; mutation: string; problem: string }>;
  /** How many cases ended in each outcome, to show the mix is varied. */
  outcomes: Record<Expected["error"], number>;
}

/** Runs cases [from, from + count) of `seed`; stops collecting after 20 failures. */
export function run(seed: number, count: number, from = 0): FuzzReport {
  const report: FuzzReport = {
    seed,
    cases: 0,
    failed: 0,
    failures: [],
    outcomes: { none: 0, invalid: 0, tooLarge: 0, truncated: 0 },
  };
  for (let index = from; index < from + count; index++) {
    const fuzzCase = generate(seed, index);
    let problem: string | undefined;
    try {
      problem = check(fuzzCase);
    } catch (error) {
      problem = `the checker itself threw: ${String(error)}`;
    }
    const { error } = reference(
      fuzzCase.bytes,
      fuzzCase.protocol,
      fuzzCase.maxFrameSize,
    );
    report.outcomes[error]++;
    report.cases++;
    if (problem !== undefined) {
      report.failed++;
      if (report.failures.length < 20) {
        report.failures.push({ index, mutation: fuzzCase.mutation, problem });
      }
    }
  }
  return report;
}
