// FramedConnection on its own, over a fake transport: what reaches the
// runtime (batching, pooled write buffers, partial writes, large frames), the
// write buffer's limit, and frames in. No socket and no timer: the fake takes
// or holds back each write as the test says.

import assert from "node:assert/strict";
import { test } from "./_harness.ts";
import { assertSameBytes, concatBytes, patterned } from "./_helpers.ts";
import {
  encodeFrame,
  type Frame,
  ProtocolError,
  SIGN_DATA,
  SIGN_PING,
} from "../mod.ts";
import { FramedConnection, sendFrame } from "../_connection.ts";
import { BufferFullError, ClosedError } from "../errors.ts";
import type { TransportConnection } from "../transport/transport.ts";

const uuid = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";

/** Lets queued microtasks (the connection's flush) run. */
const turn = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

interface FakeOptions {
  /** Hold every write back until `release()` (default: take it at once). */
  hold?: boolean;
  /** Offer writeNow, taking at most this many bytes per call. */
  writeNowTakes?: number;
}

/** A transport that records what is written, copied as it is handed over. */
class FakeTransport implements TransportConnection {
  readonly remoteAddr = { hostname: "127.0.0.1", port: 1 };
  /** Each write() as it was handed over (copied: the buffer is reused). */
  readonly writes: Uint8Array[] = [];
  /** The memory of each write(), to see buffers reused. */
  readonly buffers: ArrayBufferLike[] = [];
  /** What writeNow() took, in order. */
  readonly takenNow: Uint8Array[] = [];
  closed = 0;
  writeNow?: (bytes: Uint8Array) => number;
  #hold: boolean;
  #pending: Array<() => void> = [];

  constructor(options: FakeOptions = {}) {
    this.#hold = options.hold ?? false;
    const most = options.writeNowTakes;
    if (most !== undefined) {
      this.writeNow = (bytes) => {
        const taken = bytes.slice(0, most);
        this.takenNow.push(taken);
        return taken.length;
      };
    }
  }

  write(bytes: Uint8Array): Promise<void> | undefined {
    this.writes.push(bytes.slice());
    this.buffers.push(bytes.buffer);
    if (!this.#hold) return undefined;
    return new Promise((resolve) => this.#pending.push(resolve));
  }

  /** Completes the oldest held write. */
  release(): void {
    this.#pending.shift()?.();
  }

  get held(): number {
    return this.#pending.length;
  }

  close(): void {
    this.closed++;
  }

  /** Everything written so far, writeNow and write, in order. */
  all(): Uint8Array {
    return concatBytes(...this.takenNow, ...this.writes);
  }
}

function connect(
  transport: FakeTransport,
  options: { maxBufferedBytes?: number; protocol?: 2 | 3 } = {},
) {
  const frames: Frame[] = [];
  const errors: Error[] = [];
  let closedWith: unknown = "open";
  const connection = new FramedConnection(transport, {
    protocol: options.protocol ?? 3,
    maxFrameSize: 1 << 24,
    maxBufferedBytes: options.maxBufferedBytes ?? 1 << 24,
  }, {
    frame: (frame) => frames.push(frame),
    protocolError: (error) => errors.push(error),
    closed: (error) => closedWith = error,
  });
  return { connection, frames, errors, closed: () => closedWith };
}

test("FramedConnection: frames sent in one turn go out in one write, as encodeFrame encodes them", async () => {
  for (const protocol of [3, 2] as const) {
    const transport = new FakeTransport();
    const { connection } = connect(transport, { protocol });
    const id = protocol === 3 ? uuid : uuid.replaceAll("-", "");
    const a: Frame = { sign: SIGN_DATA, uuid: id, payload: patterned(10) };
    const b: Frame = { sign: SIGN_PING, uuid: id, payload: new Uint8Array() };
    const c: Frame = { sign: SIGN_DATA, uuid: id, payload: patterned(3000) };
    sendFrame(connection, a);
    sendFrame(connection, b);
    connection.send(SIGN_DATA, c.uuid, c.payload);
    assert.equal(transport.writes.length, 0, "nothing before the turn ends");
    assert.equal(
      connection.bufferedAmount,
      3 * (protocol === 3 ? 45 : 37) + 3010,
    );
    await connection.drained();
    assert.equal(transport.writes.length, 1);
    assertSameBytes(
      transport.writes[0],
      concatBytes(
        encodeFrame(a, protocol),
        encodeFrame(b, protocol),
        encodeFrame(c, protocol),
      ),
    );
    assert.equal(connection.bufferedAmount, 0);
  }
});

test("FramedConnection: while a write is out, what is sent waits and then goes out in one write", async () => {
  const transport = new FakeTransport({ hold: true });
  const { connection } = connect(transport);
  const frame = (i: number): Frame => ({
    sign: SIGN_DATA,
    uuid,
    payload: patterned(100, i),
  });
  sendFrame(connection, frame(0));
  await turn();
  assert.equal(transport.writes.length, 1);
  for (let i = 1; i <= 5; i++) {
    sendFrame(connection, frame(i));
    await turn();
  }
  assert.equal(transport.writes.length, 1, "one write at a time");
  assert.equal(connection.bufferedAmount, 6 * 145);
  transport.release();
  await turn();
  assert.equal(transport.writes.length, 2);
  assertSameBytes(
    transport.writes[1],
    concatBytes(...[1, 2, 3, 4, 5].map((i) => encodeFrame(frame(i)))),
  );
  assert.equal(connection.bufferedAmount, 5 * 145, "in flight until taken");
  transport.release();
  await connection.drained();
  assert.equal(connection.bufferedAmount, 0);
});

test("FramedConnection: write buffers come back to the pool and are reused; payloads are copied at send", async () => {
  const transport = new FakeTransport();
  const { connection } = connect(transport);
  const payload = patterned(200);
  connection.send(SIGN_DATA, uuid, payload);
  // The caller may reuse its payload as soon as send returns.
  payload.fill(0xaa);
  await connection.drained();
  connection.send(SIGN_DATA, uuid, payload);
  await connection.drained();
  assert.equal(transport.writes.length, 2);
  assertSameBytes(
    transport.writes[0],
    encodeFrame({ sign: SIGN_DATA, uuid, payload: patterned(200) }),
  );
  assertSameBytes(
    transport.writes[1],
    encodeFrame({ sign: SIGN_DATA, uuid, payload }),
  );
  assert.equal(
    transport.buffers[1],
    transport.buffers[0],
    "the second batch reuses the first one's memory",
  );
});

test("FramedConnection: a frame larger than a write buffer is spread over several writes, byte for byte", async () => {
  const transport = new FakeTransport({ hold: true });
  const { connection } = connect(transport);
  const small: Frame = { sign: SIGN_DATA, uuid, payload: patterned(50, 1) };
  const large: Frame = {
    sign: SIGN_DATA,
    uuid,
    payload: patterned(700 * 1024, 2),
  };
  sendFrame(connection, small);
  sendFrame(connection, large);
  sendFrame(connection, small);
  for (let i = 0; i < 20 && connection.bufferedAmount > 0; i++) {
    await turn();
    transport.release();
  }
  assert.equal(connection.bufferedAmount, 0);
  assert.ok(transport.writes.length >= 3, `${transport.writes.length} writes`);
  assert.ok(transport.writes.every((write) => write.length <= 256 * 1024));
  assertSameBytes(
    transport.all(),
    concatBytes(encodeFrame(small), encodeFrame(large), encodeFrame(small)),
  );
});

test("FramedConnection: a large frame sent with transfer after small ones in the same turn: bytes exact, counted once", async () => {
  // Its header ends the write buffer the small frames are in; they were
  // counted as queued when sent, and must not be counted again with it.
  for (const hold of [false, true]) {
    const transport = new FakeTransport({ hold });
    const { connection } = connect(transport);
    const small: Frame = { sign: SIGN_DATA, uuid, payload: patterned(60, 1) };
    const large = patterned(700 * 1024, 2);
    const expected = concatBytes(
      encodeFrame(small),
      encodeFrame({ sign: SIGN_DATA, uuid, payload: large }),
      encodeFrame(small),
    );
    sendFrame(connection, small);
    connection.send(SIGN_DATA, uuid, large.slice(), true);
    sendFrame(connection, small);
    assert.equal(connection.bufferedAmount, expected.length, `hold ${hold}`);
    for (let i = 0; i < 20 && connection.bufferedAmount > 0; i++) {
      await turn();
      transport.release();
    }
    assert.equal(connection.bufferedAmount, 0, `hold ${hold}`);
    assert.equal(transport.closed, 0, `hold ${hold}: closed`);
    assertSameBytes(transport.all(), expected, `hold ${hold}`);
  }
});

test("FramedConnection: a partial writeNow of a large frame is followed by the rest, byte for byte", async () => {
  // Less than the header, more than the header, more than a write buffer.
  for (const takes of [10, 1000, 300 * 1024]) {
    const transport = new FakeTransport({ writeNowTakes: takes });
    const { connection } = connect(transport);
    const large: Frame = {
      sign: SIGN_DATA,
      uuid,
      payload: patterned(600 * 1024, takes),
    };
    const payload = large.payload.slice();
    connection.send(SIGN_DATA, uuid, payload);
    payload.fill(0); // its bytes were taken or copied before send returned
    await connection.drained();
    assert.ok(transport.takenNow.length >= 1, `takes ${takes}`);
    assertSameBytes(transport.all(), encodeFrame(large), `takes ${takes}`);
    assert.equal(connection.bufferedAmount, 0);
  }
});

test("FramedConnection: past maxBufferedBytes a send throws BufferFullError and queues nothing", async () => {
  const transport = new FakeTransport({ hold: true });
  const { connection } = connect(transport, { maxBufferedBytes: 1000 });
  const frame: Frame = { sign: SIGN_DATA, uuid, payload: patterned(500) };
  sendFrame(connection, frame);
  assert.throws(
    () => sendFrame(connection, frame),
    (error) =>
      error instanceof BufferFullError && error.buffered === 545 &&
      error.limit === 1000 && error.frameSize === 545 &&
      error.unit === "bytes",
  );
  assert.equal(connection.bufferedAmount, 545);
  await turn();
  transport.release();
  await connection.drained();
  assert.equal(transport.writes.length, 1);
  assertSameBytes(transport.writes[0], encodeFrame(frame));

  // An empty buffer takes one frame however large, so it can still be sent.
  const big: Frame = { sign: SIGN_DATA, uuid, payload: patterned(5000) };
  sendFrame(connection, big);
  assert.throws(() => sendFrame(connection, small()), BufferFullError);
  await turn();
  transport.release();
  await connection.drained();
  assertSameBytes(transport.writes[1], encodeFrame(big));

  function small(): Frame {
    return { sign: SIGN_PING, uuid, payload: new Uint8Array() };
  }
});

test("FramedConnection: a non-ASCII uuid is refused before a byte of it is queued", async () => {
  const transport = new FakeTransport();
  const { connection } = connect(transport);
  const ok: Frame = { sign: SIGN_DATA, uuid, payload: patterned(20) };
  sendFrame(connection, ok);
  assert.throws(
    () => connection.send(SIGN_DATA, "é".repeat(36), patterned(20)),
    TypeError,
  );
  assert.throws(() =>
    connection.send(SIGN_DATA, "é".repeat(36), new Uint8Array())
  );
  sendFrame(connection, ok);
  await connection.drained();
  assertSameBytes(
    transport.all(),
    concatBytes(encodeFrame(ok), encodeFrame(ok)),
  );
});

test("FramedConnection: frames in across chunks; bytes that are not a frame close it with a ProtocolError", () => {
  const transport = new FakeTransport();
  const { connection, frames, errors, closed } = connect(transport);
  const a = encodeFrame({ sign: SIGN_DATA, uuid, payload: patterned(70) });
  const bytes = concatBytes(a, a);
  for (let at = 0; at < bytes.length; at += 33) {
    connection.received(bytes.slice(at, at + 33));
  }
  assert.equal(frames.length, 2);
  assertSameBytes(frames[1].payload, patterned(70));
  connection.received(new Uint8Array(45).fill(0x42));
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof ProtocolError);
  assert.equal(transport.closed, 1);
  assert.equal(connection.closed, true);
  connection.ended();
  assert.equal(closed(), undefined);
});

test("FramedConnection: once ended, sends throw ClosedError and waiting drained() rejects", async () => {
  const transport = new FakeTransport({ hold: true });
  const { connection, closed } = connect(transport);
  sendFrame(connection, { sign: SIGN_DATA, uuid, payload: patterned(10) });
  await turn();
  const drained = connection.drained();
  const failure = new Error("reset");
  connection.ended(failure);
  await assert.rejects(drained, ClosedError);
  assert.equal(closed(), failure);
  assert.equal(connection.bufferedAmount, 0);
  assert.throws(
    () =>
      sendFrame(connection, {
        sign: SIGN_PING,
        uuid,
        payload: new Uint8Array(),
      }),
    ClosedError,
  );
  await assert.rejects(connection.drained(), ClosedError);
  transport.release();
});
