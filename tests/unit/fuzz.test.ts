// The decoder fuzzer, short: fixed seeds, so a failure here is reproducible
// with `deno task fuzz --seed <seed> --from <index> --cases 1`. The long run
// (millions of cases) is `deno task fuzz`; see tests/_fuzz.ts for what a case
// is and what is checked.

import assert from "node:assert/strict";
import { test } from "../_harness.ts";
import { generate, reference, run } from "../_fuzz.ts";
import { generateProxy, proxyReference, runProxy } from "../_fuzz_proxy.ts";
import { encodeFrame, FrameDecoder, SIGN_DATA } from "../../codec.ts";
import { ProtocolError } from "../../errors.ts";

const SEED = 0x7c9_2025;
const CASES = 8_000;

test(`decoder fuzz: ${CASES} cases of seed ${SEED} agree with the reference parser`, () => {
  const report = run(SEED, CASES);
  assert.equal(report.cases, CASES);
  assert.deepEqual(report.failures, [], JSON.stringify(report.failures));
  // The generator must reach every outcome, or the run proves little.
  for (const [outcome, count] of Object.entries(report.outcomes)) {
    assert.ok(count > CASES / 50, `only ${count} cases ended "${outcome}"`);
  }
});

test("decoder fuzz: a case is the same bytes and chunks every time it is built", () => {
  for (const index of [0, 1, 99, 12345]) {
    const a = generate(SEED, index);
    const b = generate(SEED, index);
    assert.deepEqual(a.bytes, b.bytes);
    assert.deepEqual(a.chunks, b.chunks);
    assert.equal(a.chunks.reduce((n, c) => n + c.length, 0), a.bytes.length);
  }
});

test("decoder fuzz: the reference parser is not the decoder's twin (spot checks)", () => {
  const frame = encodeFrame({
    sign: SIGN_DATA,
    uuid: "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
    payload: new Uint8Array([1, 2, 3]),
  });
  assert.equal(reference(frame, 3, 10).error, "none");
  assert.equal(reference(frame, 3, 2).error, "tooLarge");
  assert.equal(reference(frame.subarray(0, 47), 3, 10).error, "truncated");
  const negative = frame.slice();
  new DataView(negative.buffer).setFloat64(37, -0);
  assert.equal(reference(negative, 3, 10).error, "truncated"); // -0 is 0: 3 stray bytes
  new DataView(negative.buffer).setFloat64(37, 0.5);
  assert.equal(reference(negative, 3, 10).error, "invalid");
});

// Found by the fuzzer: a header split across chunks reported its error at the
// offset where the second piece began, not where the frame began.
test("a bad header split across chunks is reported at the frame's first byte", () => {
  const good = encodeFrame({
    sign: SIGN_DATA,
    uuid: crypto.randomUUID(),
    payload: new Uint8Array(4),
  });
  const bad = good.slice();
  bad[30] = 0xff; // a non-ASCII uuid byte
  const stream = new Uint8Array(good.length + bad.length);
  stream.set(good);
  stream.set(bad, good.length);
  const decoder = new FrameDecoder();
  let frames = 0;
  decoder.push(stream.subarray(0, good.length + 10), () => frames++);
  assert.throws(
    () => decoder.push(stream.subarray(good.length + 10), () => frames++),
    (error) => error instanceof ProtocolError && error.offset === good.length,
  );
  assert.equal(frames, 1);
});

const PROXY_CASES = 10_000;

test(`PROXY header fuzz: ${PROXY_CASES} cases of seed ${SEED} agree with the reference`, () => {
  const report = runProxy(SEED, PROXY_CASES);
  assert.equal(report.cases, PROXY_CASES);
  assert.deepEqual(report.failures, [], JSON.stringify(report.failures));
  // Headers, incomplete ones and every way of being refused must all occur.
  for (
    const outcome of [
      "header",
      "incomplete",
      "signature",
      "version",
      "command",
      "family",
      "syntax",
      "address",
      "port",
      "length",
      "tooLong",
    ]
  ) {
    assert.ok((report.outcomes[outcome] ?? 0) > 0, `no "${outcome}" case`);
  }
  assert.ok(report.outcomes.header > PROXY_CASES / 4);
});

test("PROXY header fuzz: cases are reproducible and the reference is not the decoder", () => {
  const a = generateProxy(SEED, 42);
  assert.deepEqual(a.chunks, generateProxy(SEED, 42).chunks);
  const text = (s: string) => proxyReference(new TextEncoder().encode(s));
  assert.equal(text("PROXY UNKNOWN\r\n").kind, "header");
  assert.deepEqual(text("PROXY TCP6 ::1 1.2.3.4 1 2\r\n"), {
    kind: "error",
    reason: "address",
  });
  assert.deepEqual(text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), {
    kind: "error",
    reason: "syntax",
  });
  assert.equal(text("PROXY TCP4 1.2.3.4").kind, "incomplete");
});
