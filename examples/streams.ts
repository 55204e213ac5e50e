// The codec's TransformStreams on a bare socket, talking to a Server: frames
// are encoded by FrameEncoderStream into the socket's writable side, and the
// socket's readable side is decoded by FrameDecoderStream. Server and Client
// do not use these streams (they push bytes through one FrameDecoder per
// connection and write through their own buffer, which costs less per
// frame); the streams are for code that already has web streams.
//
// Run with `deno run -N examples/streams.ts`, `bun examples/streams.ts`, or
// under Node.js from the npm build (`node npm/examples/streams.js`).

import assert from "node:assert/strict";
import {
  type Frame,
  FrameDecoderStream,
  FrameEncoderStream,
  Server,
  SIGN_DATA,
} from "../mod.ts";

/**
 * A socket's two web streams, Deno's own or node:net's (Bun, Node.js), and a
 * way to end the writing side only (closing a Deno connection's writable
 * closes the whole connection).
 */
async function connect(hostname: string, port: number): Promise<{
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  closeWrite(): Promise<void>;
}> {
  if ("Deno" in globalThis) {
    const conn = await Deno.connect({ hostname, port });
    return {
      readable: conn.readable,
      writable: conn.writable,
      closeWrite: () => conn.closeWrite(),
    };
  }
  const net = await import("node:net");
  const { Duplex } = await import("node:stream");
  const socket = net.connect({ host: hostname, port });
  await new Promise<void>((resolve, reject) =>
    socket.once("connect", resolve).once("error", reject)
  );
  const { readable, writable } = Duplex.toWeb(socket);
  return {
    readable: readable as ReadableStream<Uint8Array>,
    writable,
    closeWrite: () => new Promise<void>((resolve) => socket.end(resolve)),
  };
}

const server = new Server({ host: "127.0.0.1", port: 0 });
server.on("data", (socket, { uuid, data }) => {
  socket.send({ uuid, data: new TextEncoder().encode(`echo: ${text(data)}`) });
});
await server.start();

const socket = await connect("127.0.0.1", server.port);
const encoder = new FrameEncoderStream();
const sent = encoder.readable.pipeTo(socket.writable, { preventClose: true });
const replies = socket.readable.pipeThrough(new FrameDecoderStream());

const writer = encoder.writable.getWriter();
const uuids = [crypto.randomUUID(), crypto.randomUUID()];
for (const [i, uuid] of uuids.entries()) {
  await writer.write({
    sign: SIGN_DATA,
    uuid,
    payload: new TextEncoder().encode(`hello ${i}`),
  });
}

const received: Frame[] = [];
for await (const frame of replies) {
  console.log(`${frame.uuid} ${text(frame.payload)}`);
  received.push(frame);
  // Ending our side makes the server close the connection, which ends
  // `replies` (breaking out instead would cancel the socket midway).
  if (received.length === uuids.length) {
    await writer.close();
    await sent;
    await socket.closeWrite();
  }
}
assert.deepEqual(received.map((frame) => frame.uuid), uuids);
assert.equal(text(received[1].payload), "echo: hello 1");
await server.stop();

function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
