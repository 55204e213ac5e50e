// _bytes.ts, the one module that asks the runtime about bytes and memory.

import assert from "node:assert/strict";
import { runtime, test } from "../_harness.ts";
import {
  allocUnsafe,
  canDetach,
  detach,
  PayloadArray,
  takePayload,
} from "../../_bytes.ts";

test("bytes: takePayload moves a whole buffer's memory, without a copy", () => {
  const data = new Uint8Array([1, 2, 3]);
  const taken = takePayload(data);
  if (!canDetach) {
    // Node.js 20 has no ArrayBuffer.prototype.transfer, and Bun's copies:
    // nothing is taken, the caller copies.
    assert.equal(taken, undefined);
    assert.deepEqual([...data], [1, 2, 3]);
    return;
  }
  assert.deepEqual([...taken!], [1, 2, 3]);
  assert.equal(data.length, 0, "the caller's view no longer reaches it");
  assert.equal(takePayload(data), undefined, "a detached buffer is not taken");
});

test("bytes: takePayload leaves part of a buffer to its owner", () => {
  const whole = new Uint8Array([1, 2, 3, 4]);
  assert.equal(takePayload(whole.subarray(1)), undefined);
  assert.equal(takePayload(whole.subarray(0, 2)), undefined);
  assert.deepEqual([...whole], [1, 2, 3, 4]);
});

test("bytes: detach refuses what cannot be detached", () => {
  if (typeof SharedArrayBuffer === "function") {
    assert.equal(detach(new SharedArrayBuffer(4)), undefined);
  }
  const buffer = new ArrayBuffer(4);
  const memory = detach(buffer);
  if (!canDetach) return assert.equal(memory, undefined);
  assert.equal(memory!.byteLength, 4);
  assert.equal(buffer.byteLength, 0);
  assert.equal(detach(buffer), undefined);
});

test("bytes: payloads are Buffers on Node.js, Uint8Arrays elsewhere", () => {
  const payload = new PayloadArray(new Uint8Array([104, 105]).buffer, 0, 2);
  assert.ok(payload instanceof Uint8Array);
  if (runtime === "node") {
    assert.ok(Buffer.isBuffer(payload));
    assert.equal(payload.toString(), "hi");
  } else {
    assert.equal(Object.getPrototypeOf(payload), Uint8Array.prototype);
  }
  const fresh = allocUnsafe?.(5) ?? new PayloadArray(5);
  assert.equal(fresh.length, 5);
  assert.equal(allocUnsafe === undefined, runtime === "deno");
});
