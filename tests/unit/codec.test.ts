import assert from "node:assert/strict";
import { test } from "../_harness.ts";
import { fromHex, toHex } from "../_hex.ts";
import { assertSameBytes, concatBytes, patterned } from "../_helpers.ts";
import vectors from "../fixtures/vectors.json" with { type: "json" };
import {
  decodeFrame,
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameDecoderStream,
  FrameEncoderStream,
  frameLayout,
  type ProtocolVersion,
  SIGN_DATA,
  SIGN_PING,
  writeHeader,
} from "../../codec.ts";
import { FrameTooLargeError, ProtocolError } from "../../errors.ts";

/** `Array.fromAsync`, which Node.js 20 lacks. */
async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

interface Decoded {
  sign: number;
  uuid: string;
  payload: string;
}

function decodeChunks(
  chunks: Uint8Array[],
  protocol: ProtocolVersion = 3,
  maxFrameSize?: number,
): { frames: Decoded[]; error?: unknown } {
  const decoder = new FrameDecoder({ protocol, maxFrameSize });
  const frames: Decoded[] = [];
  try {
    for (const chunk of chunks) {
      decoder.push(
        chunk,
        (f) =>
          frames.push({
            sign: f.sign,
            uuid: f.uuid,
            payload: toHex(f.payload),
          }),
      );
    }
    decoder.end();
  } catch (error) {
    return { frames, error };
  }
  return { frames };
}

/** Deterministic PRNG so random chunkings are reproducible from the seed. */
function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomSplit(bytes: Uint8Array, random: () => number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    const size = 1 + Math.floor(random() * 60);
    chunks.push(bytes.slice(at, at + size));
    at += size;
  }
  return chunks;
}

function oneByteChunks(bytes: Uint8Array): Uint8Array[] {
  return Array.from(bytes, (b) => Uint8Array.of(b));
}

test("codec: one layout per protocol, matching the vectors' header sizes", () => {
  for (const protocol of [2, 3] as const) {
    const layout = frameLayout(protocol);
    assert.equal(layout.protocol, protocol);
    assert.equal(layout.lengthAt, 1 + layout.uuidLength);
    assert.equal(layout.headerSize, layout.lengthAt + layout.lengthSize);
    for (const vector of vectors.valid) {
      if (vector.protocol !== protocol) continue;
      assert.equal(
        vector.frame.length / 2,
        layout.headerSize + vector.payload.length / 2,
      );
    }
  }
  assert.deepEqual(
    [frameLayout(3).headerSize, frameLayout(2).headerSize],
    [45, 37],
  );
});

test("codec: writeHeader reports a non-ASCII uuid through its return value", () => {
  const layout = frameLayout(3);
  const target = new Uint8Array(layout.headerSize);
  const uuid = "é".padEnd(36, "a");
  assert.ok(writeHeader(target, 0, SIGN_DATA, uuid, 0, layout) > 0x7f);
});

for (const vector of vectors.valid) {
  const protocol = vector.protocol as ProtocolVersion;
  const frame: Frame = {
    sign: vector.sign as Frame["sign"],
    uuid: vector.uuid,
    payload: fromHex(vector.payload),
  };
  test(`codec: "${vector.name}" encodes byte for byte`, () => {
    assert.equal(toHex(encodeFrame(frame, protocol)), vector.frame);
  });
  test(`codec: "${vector.name}": writeHeader writes its header at any offset`, () => {
    const layout = frameLayout(protocol);
    const target = new Uint8Array(3 + layout.headerSize).fill(0xee);
    const bits = writeHeader(
      target,
      3,
      frame.sign,
      frame.uuid,
      frame.payload.length,
      layout,
    );
    assert.ok(bits <= 0x7f);
    assert.equal(toHex(target.subarray(0, 3)), "eeeeee");
    assert.equal(
      toHex(target.subarray(3)),
      vector.frame.slice(0, 2 * layout.headerSize),
    );
  });
  test(`codec: "${vector.name}" decodes whole and byte by byte`, () => {
    const bytes = fromHex(vector.frame);
    const expected = [{
      sign: vector.sign,
      uuid: vector.uuid,
      payload: vector.payload,
    }];
    assert.deepEqual(decodeChunks([bytes], protocol), { frames: expected });
    if (bytes.length < 5000) {
      assert.deepEqual(decodeChunks(oneByteChunks(bytes), protocol), {
        frames: expected,
      });
    }
    const single = decodeFrame(bytes, { protocol });
    assert.equal(single.uuid, vector.uuid);
    assert.equal(toHex(single.payload), vector.payload);
  });
}

test("codec: the stream vector decodes the same under every chunking", () => {
  const bytes = fromHex(vectors.stream);
  const expected = { frames: vectors.streamFrames };
  assert.deepEqual(decodeChunks([bytes]), expected);
  assert.deepEqual(decodeChunks(oneByteChunks(bytes)), expected);
  const random = mulberry32(7);
  for (let round = 0; round < 200; round++) {
    assert.deepEqual(decodeChunks(randomSplit(bytes, random)), expected);
  }
  for (let cut = 0; cut <= bytes.length; cut++) {
    assert.deepEqual(
      decodeChunks([bytes.subarray(0, cut), bytes.subarray(cut)]),
      expected,
    );
  }
});

for (const vector of vectors.invalid) {
  test(`codec: invalid "${vector.name}" is a protocol error`, () => {
    const bytes = fromHex(vector.bytes);
    const good = (vector as { framesBeforeError?: number }).framesBeforeError ??
      0;
    for (const chunks of [[bytes], oneByteChunks(bytes)]) {
      const { frames, error } = decodeChunks(chunks);
      assert.ok(error instanceof ProtocolError, `got ${error}`);
      assert.equal(frames.length, good);
    }
  });
}

test("codec: a 2^53 length is refused from the header alone", () => {
  const bytes = fromHex(
    vectors.invalid.find((v) => v.name.startsWith("length 2^53"))!.bytes,
  );
  const decoder = new FrameDecoder();
  assert.throws(
    () => decoder.push(bytes, () => assert.fail("no frame expected")),
    (error: unknown) =>
      error instanceof FrameTooLargeError && error.length === 2 ** 53 &&
      error.maxFrameSize === 64 * 1024 * 1024,
  );
  // Nothing of the claimed payload was buffered.
  assert.equal(decoder.pendingBytes, 0);
  assert.throws(() => decoder.push(new Uint8Array(1), () => {}), ProtocolError);
});

test("codec: maxFrameSize is inclusive and checked before the payload", () => {
  const uuid = crypto.randomUUID();
  const bytes = encodeFrame({
    sign: SIGN_DATA,
    uuid,
    payload: new Uint8Array(100),
  });
  assert.equal(decodeChunks([bytes], 3, 100).frames.length, 1);
  const { error } = decodeChunks([bytes.subarray(0, 45)], 3, 99);
  assert.ok(error instanceof FrameTooLargeError);
});

test("codec: -0 length reads as an empty payload", () => {
  const bytes = encodeFrame({
    sign: SIGN_PING,
    uuid: crypto.randomUUID(),
    payload: new Uint8Array(),
  });
  bytes[37] = 0x80; // sign bit of the float64 length
  assert.equal(decodeFrame(bytes).payload.length, 0);
});

test("codec: non-ASCII uuid bytes are a protocol error", () => {
  const bytes = encodeFrame({
    sign: SIGN_DATA,
    uuid: crypto.randomUUID(),
    payload: new Uint8Array(),
  });
  bytes[5] = 0xc3;
  assert.throws(() => decodeFrame(bytes), ProtocolError);
});

test("codec: a stream that ends inside a frame is a protocol error", () => {
  const bytes = encodeFrame({
    sign: SIGN_DATA,
    uuid: crypto.randomUUID(),
    payload: new Uint8Array(10),
  });
  for (const cut of [1, 44, 45, 54]) {
    const { error, frames } = decodeChunks([bytes.subarray(0, cut)]);
    assert.ok(error instanceof ProtocolError, `cut at ${cut}`);
    assert.equal(frames.length, 0);
  }
});

test("codec: payloads within one chunk are views, split ones are copied once", () => {
  const uuid = crypto.randomUUID();
  const a = encodeFrame({ sign: SIGN_DATA, uuid, payload: new Uint8Array(8) });
  const chunk = new Uint8Array(a.length * 2);
  chunk.set(a);
  chunk.set(a, a.length);
  const payloads: Uint8Array[] = [];
  new FrameDecoder().push(chunk, (f) => payloads.push(f.payload));
  assert.equal(payloads.length, 2);
  for (const payload of payloads) assert.equal(payload.buffer, chunk.buffer);

  const split: Uint8Array[] = [];
  const decoder = new FrameDecoder();
  decoder.push(a.slice(0, 50), (f) => split.push(f.payload));
  decoder.push(a.slice(50), (f) => split.push(f.payload));
  assert.equal(split.length, 1);
  assert.equal(split[0].length, 8);
});

test("codec: a payload split across chunks that lie end to end in one buffer stays a view", () => {
  // As a transport reading into one slab delivers it: read after read, each
  // chunk where the last ended. Bun (JavaScriptCore) is left out by design.
  const uuid = crypto.randomUUID();
  const frames = [patterned(5000, 1), patterned(7000, 2)].map((payload) =>
    encodeFrame({ sign: SIGN_DATA, uuid, payload })
  );
  const slab = concatBytes(...frames);
  const cuts = [0, 30, 2000, 2001, 6000, 9000, slab.length];
  const got: Uint8Array[] = [];
  const decoder = new FrameDecoder();
  for (let i = 1; i < cuts.length; i++) {
    decoder.push(
      slab.subarray(cuts[i - 1], cuts[i]),
      (f) => got.push(f.payload),
    );
  }
  assert.equal(got.length, 2);
  assertSameBytes(got[0], patterned(5000, 1));
  assertSameBytes(got[1], patterned(7000, 2));
  if (!("Bun" in globalThis)) {
    for (const payload of got) assert.equal(payload.buffer, slab.buffer);
  }

  // The same bytes in chunks of their own memory are joined, and correct.
  const copied: Uint8Array[] = [];
  const other = new FrameDecoder();
  for (let i = 1; i < cuts.length; i++) {
    other.push(slab.slice(cuts[i - 1], cuts[i]), (f) => copied.push(f.payload));
  }
  assertSameBytes(copied[0], patterned(5000, 1));
  assertSameBytes(copied[1], patterned(7000, 2));
  assert.notEqual(copied[1].buffer, slab.buffer);
});

test("codec: a 64 MiB payload in 64 KiB chunks decodes in linear time", () => {
  const size = 64 * 1024 * 1024;
  const payload = new Uint8Array(size);
  for (let i = 0; i < size; i += 4096) payload[i] = i & 0xff;
  const bytes = encodeFrame({
    sign: SIGN_DATA,
    uuid: crypto.randomUUID(),
    payload,
  });
  const decoder = new FrameDecoder();
  let received: Uint8Array | undefined;
  for (let at = 0; at < bytes.length; at += 65536) {
    decoder.push(bytes.subarray(at, at + 65536), (f) => (received = f.payload));
  }
  assert.ok(received);
  assert.equal(received.length, size);
  for (let i = 0; i < size; i += 4096) assert.equal(received[i], i & 0xff);
  // Linear work shows as the held bytes never exceeding one frame.
  assert.equal(decoder.pendingBytes, 0);
});

test("codec: a large payload gets its own memory only once an eighth of it is here", () => {
  const size = 1024 * 1024;
  const payload = patterned(size);
  const bytes = encodeFrame({
    sign: SIGN_DATA,
    uuid: crypto.randomUUID(),
    payload,
  });
  const decoder = new FrameDecoder();
  const received: Uint8Array[] = [];
  // The header and up to an eighth of the payload reserve nothing.
  decoder.push(
    bytes.subarray(0, 45 + size / 8 - 1),
    (f) => received.push(f.payload),
  );
  assert.equal(decoder.readTarget(), undefined);
  decoder.push(
    bytes.subarray(45 + size / 8 - 1, 45 + size / 8),
    (f) => received.push(f.payload),
  );
  const target = decoder.readTarget();
  assert.ok(target);
  assert.equal(target.length, size - size / 8);
  assert.equal(target.byteOffset + target.length, target.buffer.byteLength);
  // Reads straight into the target, in three pieces, as a transport would.
  let at = 45 + size / 8;
  for (const piece of [1000, 300_000]) {
    const into = decoder.readTarget()!;
    into.set(bytes.subarray(at, at + piece));
    decoder.push(into.subarray(0, piece), (f) => received.push(f.payload));
    at += piece;
  }
  assert.equal(decoder.pendingBytes, 45 + at - 45);
  const last = decoder.readTarget()!;
  assert.equal(last.length, bytes.length - at);
  last.set(bytes.subarray(at));
  decoder.push(last, (f) => received.push(f.payload));
  assert.equal(received.length, 1);
  assert.equal(received[0].buffer, target.buffer);
  assertSameBytes(received[0], payload);
  assert.equal(decoder.readTarget(), undefined);
  assert.equal(decoder.pendingBytes, 0);
});

test("codec: chunks from elsewhere are copied into the target, in order", () => {
  const sizes = [64 * 1024 - 1, 64 * 1024, 200_003];
  const frames = sizes.map((size) =>
    encodeFrame({
      sign: SIGN_DATA,
      uuid: crypto.randomUUID(),
      payload: patterned(size),
    })
  );
  const stream = new Uint8Array(frames.reduce((sum, f) => sum + f.length, 0));
  frames.reduce((at, f) => (stream.set(f, at), at + f.length), 0);
  for (const chunkSize of [1, 4093, 65536]) {
    const decoder = new FrameDecoder();
    const received: Uint8Array[] = [];
    let targets = 0;
    for (let at = 0; at < stream.length; at += chunkSize) {
      decoder.push(
        stream.subarray(at, at + chunkSize),
        (f) => received.push(f.payload),
      );
      if (decoder.readTarget()) targets++;
    }
    assert.equal(received.length, sizes.length);
    received.forEach((payload, n) =>
      assertSameBytes(payload, patterned(sizes[n]), `chunks of ${chunkSize}`)
    );
    // The payload under 64 KiB never gets a target.
    assert.ok(targets > 0 || chunkSize === 65536, `chunks of ${chunkSize}`);
  }
});

test("codec: an error or end inside a large payload lets go of its target", () => {
  const bytes = encodeFrame({
    sign: SIGN_DATA,
    uuid: crypto.randomUUID(),
    payload: patterned(256 * 1024),
  });
  const decoder = new FrameDecoder();
  decoder.push(bytes.subarray(0, 100_000), () => {});
  assert.ok(decoder.readTarget());
  assert.throws(() => decoder.end(), ProtocolError);
  assert.equal(decoder.readTarget(), undefined);
});

test("codec: encoding refuses bad uuids, signs and payloads", () => {
  const payload = new Uint8Array();
  for (const uuid of ["short", "x".repeat(37), "é".repeat(36), 42]) {
    assert.throws(
      () => encodeFrame({ sign: SIGN_DATA, uuid: uuid as string, payload }),
      TypeError,
    );
  }
  assert.throws(
    () => encodeFrame({ sign: 2 as 1, uuid: crypto.randomUUID(), payload }),
    TypeError,
  );
  assert.throws(
    () =>
      encodeFrame({
        sign: SIGN_DATA,
        uuid: crypto.randomUUID(),
        payload: "text" as unknown as Uint8Array,
      }),
    TypeError,
  );
  assert.throws(
    () =>
      encodeFrame({ sign: SIGN_DATA, uuid: crypto.randomUUID(), payload }, 2),
    TypeError,
  );
});

test("codec: decodeFrame refuses trailing bytes and empty input", () => {
  const bytes = encodeFrame({
    sign: SIGN_PING,
    uuid: crypto.randomUUID(),
    payload: new Uint8Array(),
  });
  const twice = new Uint8Array(bytes.length * 2);
  twice.set(bytes);
  twice.set(bytes, bytes.length);
  assert.throws(() => decodeFrame(twice), ProtocolError);
  assert.throws(() => decodeFrame(new Uint8Array()), ProtocolError);
  assert.throws(() => decodeFrame(twice.subarray(0, 50)), ProtocolError);
});

test("codec: encoder and decoder streams round-trip", async () => {
  const random = mulberry32(11);
  const frames: Frame[] = Array.from({ length: 50 }, (_, i) => ({
    sign: i % 5 === 0 ? SIGN_PING : SIGN_DATA,
    uuid: crypto.randomUUID(),
    payload: Uint8Array.from(
      { length: Math.floor(random() * 300) },
      (_, j) => j,
    ),
  }));
  const bytes = await collect(
    ReadableStream.from(frames).pipeThrough(new FrameEncoderStream()),
  );
  const whole = new Uint8Array(bytes.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of bytes) {
    whole.set(b, at);
    at += b.length;
  }
  const decoded = await collect(
    ReadableStream.from(randomSplit(whole, random)).pipeThrough(
      new FrameDecoderStream(),
    ),
  );
  // Payloads are Buffers on Node.js: compare their bytes.
  assert.deepEqual(
    decoded.map((frame) => ({ ...frame, payload: [...frame.payload] })),
    frames.map((frame) => ({ ...frame, payload: [...frame.payload] })),
  );
});

test("codec: the decoder stream errors on a malformed frame", async () => {
  const bad = new Uint8Array(45).fill(0x42);
  await assert.rejects(
    collect(
      ReadableStream.from([bad]).pipeThrough(new FrameDecoderStream()),
    ),
    ProtocolError,
  );
});

/** The chunks a FrameEncoderStream emits for `frames`, all written at once. */
async function encodeAtOnce(
  frames: Frame[],
  protocol: ProtocolVersion = 3,
): Promise<Uint8Array[]> {
  const encoder = new FrameEncoderStream({ protocol });
  const writer = encoder.writable.getWriter();
  const written = Promise.all(frames.map((frame) => writer.write(frame)))
    .then(() => writer.close());
  const chunks = await collect(encoder.readable);
  await written;
  return chunks;
}

test("codec: frames written to the encoder stream in one turn leave as one chunk", async () => {
  const frames: Frame[] = Array.from({ length: 100 }, (_, i) => ({
    sign: i % 10 === 0 ? SIGN_PING : SIGN_DATA,
    uuid: crypto.randomUUID(),
    payload: patterned(i * 7, i),
  }));
  const chunks = await encodeAtOnce(frames);
  assert.equal(chunks.length, 1);
  assertSameBytes(chunks[0], concatBytes(...frames.map((f) => encodeFrame(f))));

  // Frames of a later turn leave in a chunk of their own.
  const encoder = new FrameEncoderStream();
  const writer = encoder.writable.getWriter();
  const reader = encoder.readable.getReader();
  writer.write(frames[1]);
  writer.write(frames[2]);
  const first = await reader.read();
  await new Promise((resolve) => setTimeout(resolve, 1));
  writer.write(frames[3]);
  const second = await reader.read();
  writer.close();
  assert.equal((await reader.read()).done, true);
  assertSameBytes(
    first.value!,
    concatBytes(encodeFrame(frames[1]), encodeFrame(frames[2])),
  );
  assertSameBytes(second.value!, encodeFrame(frames[3]));
});

test("codec: the encoder stream's chunks stay within 256 KiB, and a payload of 64 KiB or more leaves as its own chunk", async () => {
  for (const protocol of [3, 2] as const) {
    const uuid = () =>
      protocol === 3
        ? crypto.randomUUID()
        : crypto.randomUUID().replaceAll("-", "");
    const sizes = [
      ...Array.from({ length: 40 }, (_, i) => 16 * 1024 - 45 + i),
      64 * 1024 - 1,
      64 * 1024,
      5,
      300 * 1024,
      0,
    ];
    const frames: Frame[] = sizes.map((size, i) => ({
      sign: SIGN_DATA,
      uuid: uuid(),
      payload: patterned(size, i),
    }));
    const chunks = await encodeAtOnce(frames, protocol);
    assertSameBytes(
      concatBytes(...chunks),
      concatBytes(...frames.map((f) => encodeFrame(f, protocol))),
    );
    for (const chunk of chunks) assert.ok(chunk.length <= 300 * 1024);
    for (const large of [frames[41], frames[43]]) {
      // After the chunk that ends with its header: the payload itself.
      const at = chunks.indexOf(large.payload);
      assert.ok(at > 0, "a large payload is passed on by reference");
      const header = chunks[at - 1];
      assertSameBytes(
        header.subarray(header.length - (protocol === 3 ? 45 : 37)),
        encodeFrame(large, protocol).subarray(0, protocol === 3 ? 45 : 37),
      );
    }
    const batched = chunks.filter((c) => !frames.some((f) => f.payload === c));
    assert.ok(batched.every((c) => c.length <= 256 * 1024));
    assert.ok(batched.length < 10, `${batched.length} batches`);
  }
});

test("codec: recycled memory is claimed for large payloads, and they stay exact under any chunking", () => {
  // A seeded run: large payloads of varied sizes cut at random, read in part
  // through readTarget(), with memory recycled between frames as a connection
  // does (bigger or smaller than what comes next, or the last payload's own).
  const next = mulberry32(20261129);
  const random = (n: number) => Math.floor(next() * n);
  const sizes = Array.from({ length: 40 }, () => 64 * 1024 + random(300_000));
  const frames = sizes.map((size, n) =>
    encodeFrame({
      sign: SIGN_DATA,
      uuid: crypto.randomUUID(),
      payload: patterned(size, n),
    })
  );
  const stream = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  frames.reduce((at, frame) => (stream.set(frame, at), at + frame.length), 0);
  const decoder = new FrameDecoder({ maxFrameSize: 1 << 20 });
  const got: Uint8Array[] = [];
  let claimedInPlace = 0;
  let claimedEarly = 0;
  for (let at = 0; at < stream.length;) {
    const piece = stream.subarray(at, at + 1 + random(24_000));
    at += piece.length;
    const target = decoder.readTarget();
    let chunk: Uint8Array = piece.slice();
    if (target !== undefined && piece.length <= target.length) {
      target.set(piece);
      chunk = target.subarray(0, piece.length);
      claimedInPlace++;
    }
    decoder.push(chunk, (frame) => {
      got.push(frame.payload.slice());
      const choice = random(3);
      const own = frame.payload.byteOffset === 0 &&
        frame.payload.byteLength === frame.payload.buffer.byteLength;
      if (choice === 0 && own) {
        // Its memory given back, as after a send with transfer.
        decoder.recycle(
          (frame.payload.buffer as ArrayBuffer & { transfer(): ArrayBuffer })
            .transfer?.() ?? new ArrayBuffer(frame.payload.length),
        );
      } else if (choice === 1) {
        decoder.recycle(new ArrayBuffer(64 * 1024 + random(400_000)));
      }
    });
    // Memory of its own before an eighth of the payload is here: recycled
    // memory, claimed at once.
    const received = decoder.pendingBytes - 45;
    if (
      received > 0 && received * 8 < sizes[got.length] &&
      decoder.readTarget() !== undefined
    ) claimedEarly++;
  }
  decoder.end();
  assert.equal(got.length, sizes.length);
  got.forEach((payload, n) =>
    assertSameBytes(payload, patterned(sizes[n], n), `payload ${n}`)
  );
  assert.ok(claimedInPlace > 10, `${claimedInPlace} reads in place`);
  assert.ok(claimedEarly > 3, `${claimedEarly} payloads claimed memory early`);
});
