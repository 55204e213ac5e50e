// Codec micro-benchmarks: `deno task bench:codec` (deno bench).
//
// `encodeFrameInto` and the FramedConnection groups run `writeHeader`, the one
// header writer the Server and Client use.
//
// Each name gives the bytes one iteration handles, so throughput is that
// figure divided by the time per iteration that `deno bench` prints.

import {
  decodeFrame,
  encodeFrame,
  encodeFrameInto,
  type Frame,
  FrameDecoder,
  SIGN_DATA,
} from "../codec.ts";
import { FramedConnection } from "../_connection.ts";
import type { TransportConnection } from "../transport/transport.ts";

const KiB = 1024;
const MiB = 1024 * 1024;
const uuid = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";

function frameOf(size: number): Frame {
  const payload = new Uint8Array(size);
  for (let i = 0; i < size; i++) payload[i] = i & 0xff;
  return { sign: SIGN_DATA, uuid, payload };
}

const sizes: Array<[string, number]> = [
  ["64 B", 64],
  ["16 KiB", 16 * KiB],
  ["1 MiB", MiB],
];

let sink = 0;

for (const [label, size] of sizes) {
  const frame = frameOf(size);
  const encoded = encodeFrame(frame);
  const target = new Uint8Array(encoded.length);
  Deno.bench({
    name: `encodeFrame ${label} (${encoded.length} B)`,
    group: `encode ${label}`,
    baseline: true,
    fn() {
      sink += encodeFrame(frame).length;
    },
  });
  Deno.bench({
    name: `encodeFrameInto ${label} (${encoded.length} B)`,
    group: `encode ${label}`,
    fn() {
      sink += encodeFrameInto(frame, target, 0, 3);
    },
  });
  Deno.bench({
    name: `decodeFrame ${label} (${encoded.length} B)`,
    group: `decode ${label}`,
    baseline: true,
    fn() {
      sink += decodeFrame(encoded).payload.length;
    },
  });
  Deno.bench({
    name: `FrameDecoder.push ${label} (${encoded.length} B)`,
    group: `decode ${label}`,
    fn() {
      new FrameDecoder().push(encoded, (decoded) => {
        sink += decoded.payload.length;
      });
    },
  });
}

// A 1 MiB stream of mixed frames — mostly 64 B ones, some of 16 KiB and one
// of 256 KiB — decoded from chunks of 1 B, 1 KiB and 64 KiB.
const stream = (() => {
  const parts: Uint8Array[] = [encodeFrame(frameOf(256 * KiB))];
  let total = parts[0].length;
  for (let i = 0; total < MiB; i++) {
    const part = encodeFrame(frameOf(i % 64 === 63 ? 16 * KiB : 64));
    parts.push(part);
    total += part.length;
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return { bytes, frames: parts.length };
})();

for (
  const [label, chunk] of [["1 B", 1], ["1 KiB", KiB], [
    "64 KiB",
    64 * KiB,
  ]] as const
) {
  // Cut once, outside the timed part, as a socket would hand them over.
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < stream.bytes.length; at += chunk) {
    chunks.push(stream.bytes.subarray(at, at + chunk));
  }
  Deno.bench({
    name:
      `decode stream in ${label} chunks (${stream.bytes.length} B, ${stream.frames} frames)`,
    group: "decode stream",
    baseline: chunk === 64 * KiB,
    fn() {
      const decoder = new FrameDecoder();
      let frames = 0;
      for (const piece of chunks) decoder.push(piece, () => frames++);
      decoder.end();
      if (frames !== stream.frames) throw new Error("lost frames");
      sink += frames;
    },
  });
}

// The path the Server and Client run: frames encoded by FramedConnection into
// its write buffers, over a transport that takes every write at once. "send"
// queues a batch and waits for its one write; "echo" decodes a batch from one
// chunk and sends each frame back, as an echo server does.
const BATCH = 64;
const fakeTransport: TransportConnection = {
  remoteAddr: { hostname: "127.0.0.1", port: 1 },
  write(bytes) {
    sink += bytes.length;
    return undefined;
  },
  close() {},
};
for (const [label, size] of [["64 B", 64], ["16 KiB", 16 * KiB]] as const) {
  const payload = frameOf(size).payload;
  const connection: FramedConnection = new FramedConnection(fakeTransport, {
    protocol: 3,
    maxFrameSize: 64 * MiB,
    maxBufferedBytes: 64 * MiB,
  }, {
    frame: (frame) => connection.send(frame.sign, frame.uuid, frame.payload),
    protocolError: (error) => {
      throw error;
    },
    closed: () => {},
  });
  const chunk = new Uint8Array(BATCH * (45 + size));
  for (let i = 0; i < BATCH; i++) {
    chunk.set(encodeFrame(frameOf(size)), i * (45 + size));
  }
  Deno.bench({
    name: `FramedConnection send ${BATCH} x ${label}`,
    group: `send path ${label}`,
    async fn() {
      for (let i = 0; i < BATCH; i++) {
        connection.send(SIGN_DATA, uuid, payload);
      }
      await connection.drained();
    },
  });
  Deno.bench({
    name: `FramedConnection echo ${BATCH} x ${label}`,
    group: `send path ${label}`,
    async fn() {
      connection.received(chunk);
      await connection.drained();
    },
  });
}

globalThis.addEventListener("unload", () => {
  if (sink === -1) console.log(sink);
});
