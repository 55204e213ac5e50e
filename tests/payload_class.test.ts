// Payloads are Buffers on Node.js, so code written for the Node.js 3.x package
// (`data.toString("utf8")`, `this.send(…)` in a `function` listener) runs
// unchanged there; on Deno and Bun they stay plain Uint8Arrays.

import assert from "node:assert/strict";
import { runtime, test } from "./_harness.ts";
import { decoder, encoder, HOST, patterned } from "./_helpers.ts";
import { Client, Server, TimeoutError } from "../mod.ts";
import { encodeFrame, FrameDecoder, SIGN_DATA } from "../codec.ts";

/** What 3.x code assumes a payload is: a Node.js Buffer. */
interface NodeStyleBytes {
  toString(encoding: string): string;
}

const NodeBuffer = (globalThis as unknown as {
  Buffer?: abstract new (...args: never[]) => unknown;
})
  .Buffer;

/** Whether `bytes` is what this runtime is meant to hand out. */
function isRuntimePayload(bytes: Uint8Array): boolean {
  return runtime === "node"
    ? NodeBuffer !== undefined && bytes instanceof NodeBuffer
    : Object.getPrototypeOf(bytes) === Uint8Array.prototype;
}

test("3.x demo server, only its import changed, answers (on Node.js)", async () => {
  await using server = new Server({ host: HOST, port: 0 });
  // The 3.x demo's listener as written for the Node.js package.
  server.on("data", function (this: Server, socket, { uuid, data }) {
    switch ((data as unknown as NodeStyleBytes).toString("utf8")) {
      case "echo":
        this.send(socket, { uuid, data });
        break;
      case "delayed_echo":
        setTimeout(() => this.send(socket, { uuid, data }), 20);
        break;
      default:
        break;
    }
  });
  await server.start();
  await using client = new Client({ host: HOST, port: server.port });
  if (runtime !== "node") {
    // Deno and Bun hand out plain Uint8Arrays, whose toString ignores the
    // encoding: there the port needs TextDecoder (README, Migrating), and the
    // demo as written stays silent.
    await assert.rejects(
      client.request(encoder.encode("echo"), { timeout: 200 }),
      TimeoutError,
    );
    return;
  }
  const reply = await client.request(encoder.encode("echo"), {
    timeout: 2000,
  });
  assert.equal((reply as unknown as NodeStyleBytes).toString("utf8"), "echo");
  const delayed = await client.request(encoder.encode("delayed_echo"), {
    timeout: 2000,
  });
  assert.equal(decoder.decode(delayed), "delayed_echo");
});

test("payloads of every size are the runtime's class, both ways", async () => {
  const seen: Uint8Array[] = [];
  await using server = new Server({ host: HOST, port: 0 });
  server.on("data", (socket, message) => {
    seen.push(message.data);
    server.send(socket, message);
  });
  await server.start();
  await using client = new Client({ host: HOST, port: server.port });
  // Empty, whole in one read, and split across reads (joined, and large
  // enough for memory of its own).
  for (const size of [0, 5, 100_000, 1 << 20]) {
    const sent = patterned(size);
    const reply = await client.request(sent, { timeout: 5000 });
    const received = seen.at(-1)!;
    assert.equal(received.length, size);
    assert.ok(
      isRuntimePayload(received),
      `server got a ${received.constructor.name} of ${size} B on ${runtime}`,
    );
    assert.ok(
      isRuntimePayload(reply),
      `client got a ${reply.constructor.name} of ${size} B on ${runtime}`,
    );
    assert.deepEqual(new Uint8Array(reply), sent);
  }
});

test("FrameDecoder hands out the runtime's payload class", () => {
  const frames = [0, 3, 300].map((size) =>
    encodeFrame({
      sign: SIGN_DATA,
      uuid: crypto.randomUUID(),
      payload: patterned(size),
    })
  );
  const decoder = new FrameDecoder();
  const payloads: Uint8Array[] = [];
  for (const bytes of frames) {
    // Whole, then split in two.
    decoder.push(bytes, (frame) => payloads.push(frame.payload));
    decoder.push(
      bytes.subarray(0, 50),
      (frame) => payloads.push(frame.payload),
    );
    decoder.push(bytes.subarray(50), (frame) => payloads.push(frame.payload));
  }
  assert.equal(payloads.length, 6);
  for (const payload of payloads) {
    assert.ok(isRuntimePayload(payload), `${payload.constructor.name}`);
  }
});
