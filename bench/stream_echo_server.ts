// An echo server composed from the codec's streams, the way the design card
// draws it: bytes → FrameDecoderStream → FrameEncoderStream → bytes, each
// frame sent back as it came (PINGs included). On Deno that is literally
//
//   conn.readable.pipeThrough(new FrameDecoderStream())
//     .pipeThrough(new FrameEncoderStream()).pipeTo(conn.writable)
//
// Bun's sockets have no streams of their own, so there the socket's `data`
// callback feeds a ReadableStream and a WritableStream writes to the socket
// (what the drain leaves is written on `drain`). `--protocol=2` for the 2.x
// layout.
//
// Protocol with the runner: prints {"port": n} once listening; on a stdin
// line "rss" collects garbage and prints {"rss": bytes, "connections": n};
// exits when stdin ends.

import { FrameDecoderStream, FrameEncoderStream } from "../codec.ts";
import { type ByteConnection, frameStream } from "../frame_stream.ts";
import {
  bun,
  type BunSocket,
  collectGarbage,
  exit,
  heapBytes,
  println,
  rssBytes,
  runtimeName,
  scriptArgs,
  stdinLines,
} from "./_runtime.ts";

const protocol = scriptArgs().includes("--protocol=2") ? 2 : 3;
/**
 * `--frame-stream`: the same echo through frameStream(), which reads the
 * connection into the decoder and writes the encoder's batches itself
 * (a Deno.Conn directly; on Bun, the same callback-fed byte streams).
 */
const direct = scriptArgs().includes("--frame-stream");
let connections = 0;

function echo(
  readable: ReadableStream<Uint8Array>,
  writable: WritableStream<Uint8Array>,
): Promise<void> {
  if (direct) {
    return echoFrames(frameStream({ readable, writable }, { protocol }));
  }
  return readable
    .pipeThrough(new FrameDecoderStream({ protocol }))
    .pipeThrough(new FrameEncoderStream({ protocol }))
    .pipeTo(writable)
    .catch(() => {/* reset by the peer, or a malformed frame */});
}

function echoFrames(frames: {
  readable: ReadableStream<unknown>;
  writable: WritableStream<unknown>;
}): Promise<void> {
  return frames.readable.pipeTo(frames.writable).catch(() => {
    /* reset by the peer, or a malformed frame */
  });
}

function listenDeno(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const conn of listener) {
      connections++;
      conn.setNoDelay(true);
      (direct
        ? echoFrames(frameStream(conn as ByteConnection, { protocol }))
        : echo(conn.readable, conn.writable)).finally(() => connections--);
    }
  })();
  return listener.addr.port;
}

interface BunState {
  input: ReadableStreamDefaultController<Uint8Array>;
  /** What the kernel did not take yet, and who waits for it. */
  unwritten: Uint8Array | undefined;
  written: (() => void) | undefined;
}

function listenBun(): number {
  const listener = bun().listen<BunState>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      binaryType: "uint8array",
      open(socket) {
        connections++;
        socket.setNoDelay?.(true);
        let input!: ReadableStreamDefaultController<Uint8Array>;
        const readable = new ReadableStream<Uint8Array>({
          start: (controller) => void (input = controller),
        });
        const state: BunState = {
          input,
          unwritten: undefined,
          written: undefined,
        };
        socket.data = state;
        const writable = new WritableStream<Uint8Array>({
          write(chunk) {
            const count = socket.write(chunk);
            if (count < 0) throw new Error("socket closed");
            if (count === chunk.length) return;
            state.unwritten = chunk.subarray(count);
            return new Promise<void>((resolve) => state.written = resolve);
          },
          close: () => socket.end(),
        });
        echo(readable, writable);
      },
      data(socket, chunk) {
        socket.data.input.enqueue(chunk);
      },
      drain(socket: BunSocket<BunState>) {
        const state = socket.data;
        const rest = state.unwritten;
        if (!rest) return;
        const count = socket.write(rest);
        if (count < 0) return;
        if (count < rest.length) {
          state.unwritten = rest.subarray(count);
          return;
        }
        const written = state.written!;
        state.unwritten = state.written = undefined;
        written();
      },
      close(socket) {
        connections--;
        try {
          socket.data.input.close();
        } catch { /* already errored */ }
      },
      error() {},
    },
  });
  return listener.port;
}

const port = runtimeName === "deno" ? listenDeno() : listenBun();
println(JSON.stringify({ port }));
for await (const line of stdinLines()) {
  if (line.trim() === "rss") {
    for (let i = 0; i < 3; i++) {
      collectGarbage();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    println(JSON.stringify({ rss: rssBytes(), ...heapBytes(), connections }));
  }
}
exit(0);
