// The write path on its own, over a fake transport: each of the four named
// strategies, which frames take it, the bytes it hands the runtime, and the
// counters that every strategy keeps the same way. No socket, no timer.

import assert from "node:assert/strict";
import { runtime, test } from "../_harness.ts";
import { assertSameBytes, concatBytes, patterned } from "../_helpers.ts";
import { encodeFrame, frameLayout, SIGN_DATA, SIGN_PING } from "../../codec.ts";
import {
  BATCH_BYTES,
  FrameWriter,
  writeStrategy,
} from "../../_frame_writer.ts";
import { BufferFullError, ClosedError } from "../../errors.ts";
import type { TransportConnection } from "../../transport/transport.ts";

const uuid = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
const HEADER = frameLayout(3).headerSize;
const LARGE = BATCH_BYTES + 1000;
// transfer takes memory where ArrayBuffer.prototype.transfer moves it: not on
// Node.js 20 (none) nor on Bun (it copies).
const canTransfer =
  typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer ===
    "function" && runtime !== "bun";

/** Lets queued microtasks (the writer's flush) run. */
const turn = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** Records each write (copied: buffers are reused) and what it came from. */
class Recorder implements TransportConnection {
  readonly remoteAddr = { hostname: "127.0.0.1", port: 1 };
  readonly writes: Uint8Array[] = [];
  readonly memory: ArrayBufferLike[] = [];
  readonly takenNow: Uint8Array[] = [];
  writeNow?: (bytes: Uint8Array) => number;

  constructor(writeNowTakes?: number) {
    if (writeNowTakes !== undefined) {
      this.writeNow = (bytes) => {
        const taken = bytes.slice(0, writeNowTakes);
        this.takenNow.push(taken);
        return taken.length;
      };
    }
  }

  write(bytes: Uint8Array): Promise<void> | undefined {
    this.writes.push(bytes.slice());
    this.memory.push(bytes.buffer);
    return undefined;
  }

  close(): void {}

  /** Everything handed over, writeNow first (it only runs before writes). */
  all(): Uint8Array {
    return concatBytes(...this.takenNow, ...this.writes);
  }
}

function writerOver(
  transport: TransportConnection,
  maxBufferedBytes = 1 << 26,
  quietMicrotasks = 0,
  replyBatches = false,
) {
  const recycled: ArrayBuffer[] = [];
  const writer = new FrameWriter(transport, {
    layout: frameLayout(3),
    maxBufferedBytes,
    quietMicrotasks,
    replyBatches,
    recycle: (memory) => recycled.push(memory),
    failed: () => {},
  });
  return { writer, recycled };
}

/** The frames each strategy took. */
function strategies(writer: FrameWriter) {
  return writer.byStrategy;
}

test("writeStrategy: small frames batch; large ones go owned, direct or spread", () => {
  assert.equal(writeStrategy(HEADER, false, false), "batch");
  assert.equal(writeStrategy(BATCH_BYTES, true, true), "batch");
  assert.equal(writeStrategy(BATCH_BYTES + 1, true, true), "owned");
  assert.equal(writeStrategy(BATCH_BYTES + 1, true, false), "owned");
  assert.equal(writeStrategy(BATCH_BYTES + 1, false, true), "direct");
  assert.equal(writeStrategy(BATCH_BYTES + 1, false, false), "spread");
});

test("batch: frames of one turn are copied into one write, as encodeFrame encodes them", async () => {
  const transport = new Recorder();
  const { writer } = writerOver(transport);
  const payloads = [patterned(10), patterned(0), patterned(3000, 1)];
  for (const payload of payloads) writer.send(SIGN_DATA, uuid, payload);
  writer.send(SIGN_PING, uuid, new Uint8Array(0));
  payloads[0].fill(0); // copied at send: later changes do not go out
  await turn();
  assert.equal(transport.writes.length, 1);
  assertSameBytes(
    transport.writes[0],
    Uint8Array.from([
      ...encodeFrame({ sign: SIGN_DATA, uuid, payload: patterned(10) }),
      ...encodeFrame({ sign: SIGN_DATA, uuid, payload: payloads[1] }),
      ...encodeFrame({ sign: SIGN_DATA, uuid, payload: payloads[2] }),
      ...encodeFrame({ sign: SIGN_PING, uuid, payload: new Uint8Array(0) }),
    ]),
  );
  assert.deepEqual(strategies(writer), {
    batch: 4,
    owned: 0,
    direct: 0,
    spread: 0,
  });
  assert.equal(writer.framesOut, 4);
  assert.equal(writer.pingsOut, 1);
  assert.equal(writer.acceptedBytes, transport.writes[0].length);
  assert.equal(writer.handedBytes, writer.acceptedBytes);
  assert.equal(writer.bufferedAmount, 0);
});

test("spread: a large frame is copied over write buffers of at most BATCH_BYTES", async () => {
  const transport = new Recorder();
  const { writer } = writerOver(transport);
  const payload = patterned(LARGE, 2);
  writer.send(SIGN_DATA, uuid, patterned(50));
  writer.send(SIGN_DATA, uuid, payload);
  payload.fill(0);
  await turn();
  assert.ok(transport.writes.length >= 2);
  for (const bytes of transport.writes) assert.ok(bytes.length <= BATCH_BYTES);
  assertSameBytes(
    transport.all(),
    Uint8Array.from([
      ...encodeFrame({ sign: SIGN_DATA, uuid, payload: patterned(50) }),
      ...encodeFrame({ sign: SIGN_DATA, uuid, payload: patterned(LARGE, 2) }),
    ]),
  );
  assert.deepEqual(strategies(writer), {
    batch: 1,
    owned: 0,
    direct: 0,
    spread: 1,
  });
  assert.equal(writer.framesOut, 2);
  assert.equal(writer.handedBytes, 2 * HEADER + 50 + LARGE);
});

test("direct: with writeNow and nothing queued, what it takes is not copied; the rest follows", async () => {
  const transport = new Recorder(100_000);
  const { writer } = writerOver(transport);
  const payload = patterned(LARGE, 3);
  writer.send(SIGN_DATA, uuid, payload);
  // Header and the first 100,000 payload bytes went at once, from `payload`.
  assert.equal(transport.takenNow.length, 2);
  assert.equal(transport.takenNow[0].length, HEADER);
  assert.equal(writer.handedBytes, HEADER + 100_000);
  assert.equal(writer.bufferedAmount, LARGE - 100_000);
  payload.fill(0); // the rest was copied at send
  await turn();
  assertSameBytes(
    transport.all(),
    encodeFrame({ sign: SIGN_DATA, uuid, payload: patterned(LARGE, 3) }),
  );
  assert.deepEqual(strategies(writer), {
    batch: 0,
    owned: 0,
    direct: 1,
    spread: 0,
  });
  assert.equal(writer.bufferedAmount, 0);
});

test("direct is only for an empty queue: behind a queued frame a large one spreads", async () => {
  const transport = new Recorder(100_000);
  const { writer } = writerOver(transport);
  writer.send(SIGN_DATA, uuid, patterned(10));
  writer.send(SIGN_DATA, uuid, patterned(LARGE, 4));
  await turn();
  assert.equal(transport.takenNow.length, 0);
  assert.deepEqual(strategies(writer), {
    batch: 1,
    owned: 0,
    direct: 0,
    spread: 1,
  });
  assertSameBytes(
    transport.all(),
    Uint8Array.from([
      ...encodeFrame({ sign: SIGN_DATA, uuid, payload: patterned(10) }),
      ...encodeFrame({ sign: SIGN_DATA, uuid, payload: patterned(LARGE, 4) }),
    ]),
  );
});

test("owned: a large payload sent with transfer is written from its own memory", async () => {
  const transport = new Recorder();
  const { writer, recycled } = writerOver(transport);
  const payload = patterned(LARGE, 5);
  writer.send(SIGN_DATA, uuid, patterned(20));
  writer.send(SIGN_DATA, uuid, payload, true);
  await turn();
  assertSameBytes(
    transport.all(),
    Uint8Array.from([
      ...encodeFrame({ sign: SIGN_DATA, uuid, payload: patterned(20) }),
      ...encodeFrame({ sign: SIGN_DATA, uuid, payload: patterned(LARGE, 5) }),
    ]),
  );
  if (!canTransfer) {
    // Nothing to take it with: copied, and the caller's buffer is as it was.
    assert.equal(payload.length, LARGE);
    assert.deepEqual(strategies(writer).spread, 1);
    return;
  }
  assert.equal(payload.length, 0, "the caller's view is detached");
  assert.deepEqual(strategies(writer), {
    batch: 1,
    owned: 1,
    direct: 0,
    spread: 0,
  });
  // Two writes: the batch ending in the large frame's header, then the
  // payload's own memory, whole (not a pooled write buffer), handed back.
  assert.equal(transport.writes.length, 2);
  assert.equal(transport.writes[1].length, LARGE);
  assert.equal(transport.memory[1].byteLength, LARGE);
  assert.deepEqual(recycled, [transport.memory[1]]);
});

test("counters: one place for frames, PINGs and refusals, whatever the strategy", async () => {
  const transport = new Recorder(1000);
  const { writer } = writerOver(transport, 4096);
  writer.send(SIGN_DATA, uuid, patterned(LARGE)); // over the limit: still taken
  assert.throws(
    () => writer.send(SIGN_PING, uuid, new Uint8Array(0)),
    BufferFullError,
  );
  assert.throws(
    () => writer.send(SIGN_DATA, "é".repeat(36), patterned(5)),
    TypeError,
  );
  await turn();
  writer.send(SIGN_PING, uuid, new Uint8Array(0));
  assert.equal(writer.framesOut, 2);
  assert.equal(writer.pingsOut, 1);
  assert.equal(writer.bufferFull, 1);
  assert.deepEqual(strategies(writer), {
    batch: 1,
    owned: 0,
    direct: 1,
    spread: 0,
  });
  await turn();
  writer.close();
  assert.throws(
    () => writer.send(SIGN_DATA, uuid, patterned(5)),
    ClosedError,
  );
  assert.equal(writer.framesOut, 2);
  assert.equal(writer.end(), false, "nothing was owed at the end");
});

test("end: what never reached the runtime is kept whole, frame by frame", async () => {
  const transport = new Recorder();
  const { writer } = writerOver(transport);
  writer.send(SIGN_DATA, uuid, patterned(30, 1));
  await turn();
  writer.send(SIGN_DATA, uuid, patterned(40, 2));
  writer.send(SIGN_DATA, uuid, patterned(LARGE, 3));
  const waiting = writer.drained();
  assert.equal(writer.end(), true, "bytes were owed");
  await assert.rejects(waiting, ClosedError);
  const unsent = writer.unsentFrames();
  assert.equal(unsent.length, 2);
  assertSameBytes(unsent[0].payload, patterned(40, 2));
  assertSameBytes(unsent[1].payload, patterned(LARGE, 3));
  assertSameBytes(
    writer.unsentBytes(HEADER + 30, HEADER + 40)!,
    encodeFrame({ sign: SIGN_DATA, uuid, payload: patterned(40, 2) }),
  );
  writer.forgetUnsent();
  assert.deepEqual(writer.unsentFrames(), []);
});

/** Sends `count` frames, one every third microtask (as a piped stream does). */
async function sendSpaced(writer: FrameWriter, count: number) {
  for (let i = 0; i < count; i++) {
    writer.send(SIGN_DATA, uuid, patterned(10, i));
    for (let m = 0; m < 3; m++) await Promise.resolve();
  }
}

test("quietMicrotasks: frames a few microtasks apart leave in one write", async () => {
  const spaced = new Recorder();
  await sendSpaced(writerOver(spaced, 1 << 26, 8).writer, 20);
  await turn();
  assert.equal(spaced.writes.length, 1);
  assert.equal(spaced.writes[0].length, 20 * (HEADER + 10));
  // Without it, each frame is written once its microtask ends.
  const eager = new Recorder();
  await sendSpaced(writerOver(eager).writer, 20);
  await turn();
  assert.equal(eager.writes.length, 20);
});

/** A Recorder whose writes are done some microtasks later, as a socket's are. */
class AsyncRecorder extends Recorder {
  readonly microtasks: number;

  constructor(microtasks = 1) {
    super();
    this.microtasks = microtasks;
  }

  override async write(bytes: Uint8Array): Promise<void> {
    super.write(bytes);
    for (let i = 0; i < this.microtasks; i++) await Promise.resolve();
  }
}

test("replyBatches: a read's replies leave once the last is sent, not after a quiet spell", async () => {
  const replying = new AsyncRecorder();
  const { writer } = writerOver(replying, 1 << 26, 8, true);
  writer.repliesDue(3, writer.framesOut);
  await sendSpaced(writer, 3);
  assert.equal(replying.writes.length, 1, "written as the third was sent");
  assert.equal(replying.writes[0].length, 3 * (HEADER + 10));
  assert.equal(writer.repliesHandedOver, true);
  // Without it the same frames are still waiting for quiet microtasks.
  const quiet = new AsyncRecorder();
  await sendSpaced(writerOver(quiet, 1 << 26, 8).writer, 3);
  assert.equal(quiet.writes.length, 0);
  await turn();
  assert.equal(quiet.writes.length, 1);
});

test("replyBatches: replies sent as they were read go at once; frames past them still batch", async () => {
  // Writes outlast the gap between frames: frames come while one is under way.
  const transport = new AsyncRecorder(5);
  const { writer } = writerOver(transport, 1 << 26, 8, true);
  // Answered while it was handed over, before the read was counted.
  writer.send(SIGN_DATA, uuid, patterned(10));
  writer.repliesDue(1, 0);
  await Promise.resolve();
  await Promise.resolve();
  assert.equal(transport.writes.length, 1);
  // Two replies due, then more frames than that: the ones past the replies
  // leave together after a quiet spell, not in a write each behind the first.
  writer.repliesDue(2, writer.framesOut);
  await sendSpaced(writer, 12);
  await turn();
  assert.deepEqual(
    transport.writes.map((write) => write.length / (HEADER + 10)),
    [1, 2, 10],
  );
  assert.equal(writer.bufferedAmount, 0);
});

test("replyBatches: replies still owed to an earlier read come first", async () => {
  const transport = new AsyncRecorder();
  const { writer } = writerOver(transport, 1 << 26, 8, true);
  writer.repliesDue(1, 0);
  writer.repliesDue(2, 0); // read before the first was answered
  await sendSpaced(writer, 1);
  assert.equal(writer.repliesHandedOver, false);
  await sendSpaced(writer, 2);
  assert.deepEqual(transport.writes.map((write) => write.length), [
    3 * (HEADER + 10),
  ]);
  assert.equal(writer.repliesHandedOver, true);
});

test("replyBatches: a batch that goes for quiet forgets the replies owed", async () => {
  const transport = new AsyncRecorder();
  const { writer } = writerOver(transport, 1 << 26, 8, true);
  writer.repliesDue(3, 0);
  await sendSpaced(writer, 1); // one answer of three
  await turn();
  assert.equal(transport.writes.length, 1, "sent after a quiet spell");
  assert.equal(writer.repliesHandedOver, true);
  // The next read's reply goes as it is sent: nothing older is awaited.
  writer.repliesDue(1, writer.framesOut);
  await sendSpaced(writer, 1);
  assert.equal(transport.writes.length, 2);
});
